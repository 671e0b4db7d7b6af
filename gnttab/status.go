package gnttab

import "fmt"

// numStatus is one more than the largest -GNTST_* value.
const numStatus = -GNTSTNoSpace + 1

// statusNames are Xen's GNTST_* names, index -status.
var statusNames = [numStatus]string{
	"GNTST_okay", "GNTST_general_error", "GNTST_bad_domain", "GNTST_bad_gntref",
	"GNTST_bad_handle", "GNTST_bad_virt_addr", "GNTST_bad_dev_addr",
	"GNTST_no_device_space", "GNTST_permission_denied", "GNTST_bad_page",
	"GNTST_bad_copy_arg", "GNTST_address_too_big", "GNTST_eagain", "GNTST_no_space",
}

// StatusName is the GNTST_* name of a per-element status.
func StatusName(st int16) string {
	if i := -int(st); i >= 0 && i < numStatus {
		return statusNames[i]
	}
	return fmt.Sprintf("GNTST_%d", st)
}

// StatusCounts counts failed elements by status: index i holds GNTST -i.
type StatusCounts [numStatus]uint64

// ByName returns the non-zero counts keyed by GNTST_* name.
func (c *StatusCounts) ByName() map[string]uint64 {
	m := map[string]uint64{}
	for i, n := range c {
		if n != 0 {
			m[statusNames[i]] = n
		}
	}
	return m
}
