// Package tools pins the versions of the analysis tools CI runs (the
// checklocks analyzer). It is a separate module so that the tools'
// dependencies stay out of argovisor's own go.mod.
package tools
