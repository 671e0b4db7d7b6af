module github.com/argovisor/argovisor

go 1.26.3

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/bobuhiro11/gokvm v0.0.8-0.20231003020000-f53faca69d28
	golang.org/x/sys v0.49.0
	gvisor.dev/gvisor v0.0.0-20260527191743-a81fd9dd382e
)

require (
	golang.org/x/exp v0.0.0-20250711185948-6ae5c78190dc // indirect
	golang.org/x/time v0.15.0 // indirect
)
