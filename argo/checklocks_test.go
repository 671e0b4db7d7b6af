package argo

// checklocksProbe touches guarded state without the locks. It is never
// called; it exists so that CI proves the checklocks analyzer is really
// checking this package: each "+checklocksfail" line must be reported, and
// the analyzer fails if one is not.
func checklocksProbe(a *Argo, st *domainArgo, r *ring) int {
	n := len(a.state)  // +checklocksfail
	n += len(st.rings) // +checklocksfail
	n += int(r.tx)     // +checklocksfail
	return n
}

var _ = checklocksProbe
