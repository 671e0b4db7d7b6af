module github.com/argovisor/argovisor/tools

go 1.26.3

tool gvisor.dev/gvisor/tools/checklocks/cmd/checklocks

require github.com/cavaliergopher/cpio v1.0.1

require (
	golang.org/x/mod v0.34.0 // indirect
	golang.org/x/sync v0.20.0 // indirect
	golang.org/x/tools v0.43.0 // indirect
	gvisor.dev/gvisor v0.0.0-20260527191743-a81fd9dd382e // indirect
)
