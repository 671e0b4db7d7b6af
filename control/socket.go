package control

import "github.com/argovisor/argovisor/internal/unixsock"

// ErrSocketInUse is returned by Listen when another process answers on
// the socket path.
var ErrSocketInUse = unixsock.ErrInUse

// Listener is the API's listening socket (see unixsock.Listener).
type Listener = unixsock.Listener

// Listen creates the API's Unix socket at path with mode 0600 and listens
// on it, replacing a stale socket nobody answers on (unixsock.Listen).
func Listen(path string) (*Listener, error) { return unixsock.Listen(path, "api socket") }
