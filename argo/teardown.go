package argo

// Teardown removes a domain's Argo state when it exits, crashes or is
// stopped (reference §6.6), while other domains keep running:
//
//  1. every ring it owns is removed (pending requests dropped unsignalled);
//  2. every unicast ring another domain registered with it as the partner
//     is removed from that domain (sends to it then get -ECONNREFUSED);
//  3. its pending requests on other domains' wildcard rings are cancelled;
//  4. its Argo state is dropped. The domain stays known, so senders get
//     -ECONNREFUSED (not -ESRCH) until RemoveDomain.
//
// Better than Xen: the partners' records of rings the dying domain owned
// are removed too, instead of staying stale until the partner dies; and
// senders waiting for space on a removed ring are signalled, so they retry
// and get -ECONNREFUSED instead of waiting forever.
// Teardown is idempotent.
func (a *Argo) Teardown(id DomainID) {
	var sig signals
	a.l1.Lock()
	a.teardownLocked(id, &sig)
	a.l1.Unlock()
	a.raise(&sig)
}

// RemoveDomain tears the domain down and forgets it: later lookups give
// -ESRCH. The VMM calls it when it releases the domain.
func (a *Argo) RemoveDomain(id DomainID) {
	var sig signals
	a.l1.Lock()
	a.teardownLocked(id, &sig)
	delete(a.known, id)
	a.l1.Unlock()
	a.raise(&sig)
}

// teardownLocked does the work of Teardown. Every lower lock it takes is
// uncontended under W(L1); they are still taken so that the checkers see
// the same discipline everywhere. Snapshots are taken before crossing to
// another lock class so the lock order is never inverted.
// Senders waiting for space on a removed ring are collected in sig (see
// removeRingLocked); the dying domain itself is not signalled.
// Preconditions: W(L1).
// +checklocks:a.l1
func (a *Argo) teardownLocked(id DomainID, sig *signals) {
	a.assertWriteL1()
	if d := a.known[id]; d != nil {
		d.ended.Store(true)
	}
	st := a.state[id]
	if st == nil {
		return
	}
	// 1. Own rings.
	st.ringsL2.Lock()
	for _, r := range st.rings {
		a.removeRingLocked(st, r, sig)
		if r.key.partner != DomainAny {
			if pst := a.state[r.key.partner]; pst != nil {
				pst.sendL2.Lock()
				delete(pst.sendInfo, ringRef{owner: id, port: r.key.port})
				pst.sendL2.Unlock()
			}
		}
	}
	st.ringsL2.Unlock()

	// 2. Other domains' unicast rings whose partner this domain is.
	st.sendL2.Lock()
	partnered := make([]ringRef, 0, len(st.sendInfo))
	for ref := range st.sendInfo {
		partnered = append(partnered, ref)
	}
	clear(st.sendInfo)
	st.sendL2.Unlock()
	for _, ref := range partnered {
		owner := a.state[ref.owner]
		if owner == nil {
			continue
		}
		owner.ringsL2.Lock()
		if r := owner.rings[ringKey{port: ref.port, partner: id}]; r != nil {
			a.removeRingLocked(owner, r, sig)
		}
		owner.ringsL2.Unlock()
	}

	// 3. Pending requests on other domains' wildcard rings.
	st.wildcardL2.Lock()
	waits := make([]ringRef, 0, len(st.wildcardPending))
	for ref := range st.wildcardPending {
		waits = append(waits, ref)
	}
	clear(st.wildcardPending)
	st.wildcardL2.Unlock()
	for _, ref := range waits {
		owner := a.state[ref.owner]
		if owner == nil {
			continue
		}
		owner.ringsL2.RLock()
		if r := owner.rings[ringKey{port: ref.port, partner: DomainAny}]; r != nil {
			r.l3.Lock()
			if i := r.findPending(id); i >= 0 {
				r.removePending(i)
			}
			r.l3.Unlock()
		}
		owner.ringsL2.RUnlock()
	}

	// 4. Drop the state, and do not signal the dead.
	delete(a.state, id)
	sig.remove(id)
}
