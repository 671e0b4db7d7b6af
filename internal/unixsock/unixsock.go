// Package unixsock makes the VMM's listening Unix sockets (the control
// API's and each domain's stream socket) the same careful way: mode 0600
// from the start, a stale socket of a dead process replaced, a live one
// or any other file left alone.
package unixsock

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrInUse is returned by Listen when another process answers on the
// socket path.
var ErrInUse = errors.New("another process is already serving on this socket")

// Listen creates a Unix stream socket at path with mode 0600 and listens
// on it; what names the socket in errors ("api socket"). If a socket file
// is already there and a process answers on it, Listen fails with
// ErrInUse; if nobody answers (a process that died without removing it),
// the stale file is replaced. Any other file at path is left alone and is
// an error. Closing the listener removes the socket file, unless KeepFile
// was called.
//
// The socket is bound in a private directory (mode 0700), made 0600, and
// then hard-linked into place: it is never reachable with a looser mode,
// the process umask is not touched, and link fails if two processes race
// for the same path.
func Listen(path, what string) (*Listener, error) {
	fail := func(err error) (*Listener, error) { return nil, fmt.Errorf("%s %s: %w", what, path, err) }
	abs, err := filepath.Abs(path)
	if err != nil {
		return fail(err)
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(abs), ".argovisor-sock-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return fail(err)
	}
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		return fail(err)
	}
	for attempt := 0; ; attempt++ {
		err := os.Link(tmp, abs)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || attempt > 0 {
			l.Close()
			return fail(err)
		}
		if err := removeStale(abs); err != nil {
			l.Close()
			return fail(err)
		}
	}
	return &Listener{l: l, path: abs}, nil
}

// removeStale removes path if it is a socket nobody answers on.
func removeStale(path string) error {
	st, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if st.Mode()&fs.ModeSocket == 0 {
		return errors.New("a file that is not a socket is in the way")
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return ErrInUse
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("checking the existing socket: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing a stale socket: %w", err)
	}
	return nil
}

// Listener is a listening socket made by Listen. Closing it removes the
// socket file, unless KeepFile was called.
type Listener struct {
	l    *net.UnixListener
	path string
	keep atomic.Bool
}

// Accept implements net.Listener.
func (l *Listener) Accept() (net.Conn, error) { return l.l.Accept() }

// Addr implements net.Listener.
func (l *Listener) Addr() net.Addr { return l.l.Addr() }

// Path is the socket file's absolute path.
func (l *Listener) Path() string { return l.path }

// KeepFile makes Close leave the socket file in place. A process whose
// seccomp filter forbids unlinking files calls it before the filter goes
// on; the file left behind is then a stale socket, which the next Listen
// on the path replaces.
func (l *Listener) KeepFile() { l.keep.Store(true) }

// Close stops listening and removes the socket file (see KeepFile).
func (l *Listener) Close() error {
	err := l.l.Close()
	if l.keep.Load() {
		return err
	}
	if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}
