package control

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ErrSocketInUse is returned by Listen when another process answers on
// the socket path.
var ErrSocketInUse = errors.New("another VMM is already serving on this socket")

// Listen creates the API's Unix socket at path with mode 0600 and listens
// on it. If a socket file is already there and a process answers on it,
// Listen fails with ErrSocketInUse; if nobody answers (a VMM that died
// without removing it), the stale file is replaced. Any other file at
// path is left alone and is an error. Closing the listener removes the
// socket file.
//
// The socket is bound in a private directory (mode 0700), made 0600, and
// then hard-linked into place: it is never reachable with a looser mode,
// the process umask is not touched, and link fails if two VMMs race for
// the same path.
func Listen(path string) (net.Listener, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(abs), ".argovisor-api-")
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	for attempt := 0; ; attempt++ {
		err := os.Link(tmp, abs)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || attempt > 0 {
			l.Close()
			return nil, fmt.Errorf("api socket %s: %w", path, err)
		}
		if err := removeStale(abs); err != nil {
			l.Close()
			return nil, err
		}
	}
	return &unixListener{UnixListener: l, path: abs}, nil
}

// removeStale removes path if it is a socket nobody answers on.
func removeStale(path string) error {
	st, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("api socket %s: %w", path, err)
	}
	if st.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("api socket %s: a file that is not a socket is in the way", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("api socket %s: %w", path, ErrSocketInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("api socket %s: checking the existing socket: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("api socket %s: removing a stale socket: %w", path, err)
	}
	return nil
}

// unixListener removes its socket file when closed.
type unixListener struct {
	*net.UnixListener
	path string
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}
