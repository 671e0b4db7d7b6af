package bench

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/argovisor/argovisor/hostsock"
	"github.com/argovisor/argovisor/vmm"
)

// Argo streams (docs/streams.md): a host program talking to a guest
// through the domain's stream socket, against AF_UNIX between two host
// threads (peer.unix.*) and against streams between two guests.

// streamLab is a lab with one streamecho domain ("g") behind a stream
// socket, serving stream port 5000 in role.
type streamLab struct {
	*lab
	d    *vmm.Domain
	sock string
	dir  string
}

func newStreamLab(o *Options, role string, extra map[string]string) (*streamLab, error) {
	l, err := newLab(o)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "argovisor-bench-")
	if err != nil {
		l.close()
		return nil, err
	}
	sl := &streamLab{lab: l, dir: dir, sock: filepath.Join(dir, "g.sock")}
	params := map[string]string{"role": role, "port": "5000", "verify": "0"}
	for k, v := range extra {
		params[k] = v
	}
	sl.d, err = l.v.CreateDomain(vmm.DomainConfig{Name: "g", Kernel: filepath.Join(o.Guests, "streamecho.elf"), Memory: 64 << 20, VCPUs: 1,
		Params: params, Stream: hostsock.Config{Path: sl.sock}})
	if err == nil {
		err = sl.d.Start()
	}
	if err == nil {
		err = sl.waitLine("streamecho: listening")
	}
	if err != nil {
		sl.close()
		return nil, err
	}
	return sl, nil
}

func (sl *streamLab) close() {
	sl.lab.close()
	os.RemoveAll(sl.dir)
}

// waitLine waits until the guest printed a line starting with prefix.
func (sl *streamLab) waitLine(prefix string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for _, line := range strings.Split(sl.console("g"), "\n") {
			if strings.HasPrefix(line, prefix) {
				return nil
			}
		}
		select {
		case <-sl.d.Done():
			return fmt.Errorf("%w: g ended: %v\n%s", errGuest, sl.d.Result(), sl.console("g"))
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("g never printed %q", prefix)
		}
	}
}

// connect dials the socket and does the CONNECT handshake.
func (sl *streamLab) connect() (*net.UnixConn, *bufio.Reader, error) {
	c, err := net.Dial("unix", sl.sock)
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	if _, err := io.WriteString(c, "CONNECT 5000\n"); err != nil {
		c.Close()
		return nil, nil, err
	}
	rd := bufio.NewReaderSize(c, 1<<20)
	line, err := rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "OK ") {
		c.Close()
		return nil, nil, fmt.Errorf("stream handshake: %q, %v", line, err)
	}
	return c.(*net.UnixConn), rd, nil
}

// session runs f over one connection to a fresh streamLab's guest in role.
func session(o *Options, role string, extra map[string]string, f func(sl *streamLab, c *net.UnixConn, rd *bufio.Reader) (sample, error)) (sample, error) {
	sl, err := newStreamLab(o, role, extra)
	if err != nil {
		return sample{}, err
	}
	defer sl.close()
	c, rd, err := sl.connect()
	if err != nil {
		return sample{}, err
	}
	defer c.Close()
	return f(sl, c, rd)
}

// counts are the guest's exits (less its console's) and interrupts now.
func (sl *streamLab) counts() transitions {
	st := sl.d.Stats()
	return transitions{exits: float64(st.Exits() - st.ConsoleExits), irqs: float64(st.VIRQs)}
}

func (t transitions) since(s transitions, per float64) *transitions {
	return &transitions{exits: (t.exits - s.exits) / per, irqs: (t.irqs - s.irqs) / per}
}

// streamHostRTT: a host program's round trip of size bytes to the
// guest's echo server through the socket (µs), with the guest's exits and
// interrupts per round trip.
func streamHostRTT(size int) func(*Options) (sample, error) {
	const n, warm = 5000, 200
	return func(o *Options) (sample, error) {
		return session(o, "server", nil, func(sl *streamLab, c *net.UnixConn, rd *bufio.Reader) (sample, error) {
			buf := make([]byte, size)
			var start time.Time
			var s0 transitions
			for i := range n + warm {
				if i == warm {
					start, s0 = time.Now(), sl.counts()
				}
				if _, err := c.Write(buf); err != nil {
					return sample{}, err
				}
				if _, err := io.ReadFull(rd, buf); err != nil {
					return sample{}, fmt.Errorf("round trip %d: %w", i, err)
				}
			}
			el := time.Since(start)
			return sample{v: float64(el.Nanoseconds()) / n / 1e3, t: sl.counts().since(s0, n)}, nil
		})
	}
}

// streamHost: a host program writes size-byte chunks to the guest's sink
// through the socket (MB/s until the guest, having read everything,
// closes), with the guest's exits and interrupts per chunk.
func streamHost(size int) func(*Options) (sample, error) {
	return func(o *Options) (sample, error) {
		total := 256 << 20
		if platform() != "native" {
			total = 32 << 20 // TCG: the same path, fewer bytes
		}
		count := total / size
		sink := map[string]string{"conns": "1", "ring": strconv.Itoa(streamBenchRing)}
		return session(o, "sink", sink, func(sl *streamLab, c *net.UnixConn, rd *bufio.Reader) (sample, error) {
			buf := make([]byte, size)
			start, s0 := time.Now(), sl.counts()
			for range count {
				if _, err := c.Write(buf); err != nil {
					return sample{}, err
				}
			}
			if err := c.CloseWrite(); err != nil {
				return sample{}, err
			}
			// The guest closes once it has read it all: end of file here.
			if _, err := io.Copy(io.Discard, rd); err != nil {
				return sample{}, err
			}
			el := time.Since(start)
			t := sl.counts().since(s0, float64(count))
			if err := sl.waitLine("streamecho: sink got " + strconv.Itoa(total)); err != nil {
				return sample{}, err
			}
			return sample{v: float64(total) / el.Seconds() / 1e6, t: t}, nil
		})
	}
}

// streamGuest: a guest's source sends size-byte chunks to another guest's
// sink over an Argo stream (MB/s from the sink's accept to its end of
// file, by its TSC), with both guests' exits and interrupts per chunk.
func streamGuest(size int) func(*Options) (sample, error) {
	return func(o *Options) (sample, error) {
		total := 256 << 20
		if platform() != "native" {
			total = 32 << 20
		}
		l, err := newLab(o)
		if err != nil {
			return sample{}, err
		}
		defer l.close()
		ring := strconv.Itoa(streamBenchRing)
		// A listener for other domains registers a wildcard control ring.
		sink, err := l.v.CreateDomain(vmm.DomainConfig{Name: "sink", Kernel: filepath.Join(o.Guests, "streamecho.elf"), Memory: 64 << 20, VCPUs: 1,
			Params: map[string]string{"role": "sink", "port": "5000", "verify": "0", "ring": ring}, Argo: vmm.ArgoPolicy{Wildcard: true}})
		if err == nil {
			err = sink.Start()
		}
		if err != nil {
			return sample{}, err
		}
		if err := l.ready(sink); err != nil {
			return sample{}, err
		}
		src, err := l.create("source", "streamecho", 64<<20, map[string]string{"role": "source", "peer": "1", "port": "5000",
			"verify": "0", "bytes": strconv.Itoa(total), "chunk": strconv.Itoa(size), "ring": ring})
		if err != nil {
			return sample{}, err
		}
		count := func() transitions {
			var t transitions
			for _, d := range []*vmm.Domain{sink, src} {
				st := d.Stats()
				t.exits += float64(st.Exits() - st.ConsoleExits)
				t.irqs += float64(st.VIRQs)
			}
			return t
		}
		s0 := count()
		if err := src.Start(); err != nil {
			return sample{}, err
		}
		if err := l.finish(sink, src); err != nil {
			return sample{}, err
		}
		var n, cycles float64
		if err := l.scan("sink", "streamecho: sink got", "streamecho: sink got %g bytes in %g cycles", &n, &cycles); err != nil {
			return sample{}, err
		}
		us, err := cyclesToMicros(sink, cycles)
		if err != nil {
			return sample{}, err
		}
		return sample{v: n / us, t: count().since(s0, float64(total/size))}, nil
	}
}

// streamBenchRing is the data length of the guests' connection rings in
// the stream figures: 4 MiB, so that a reader empties it, and waits,
// rarely.
const streamBenchRing = 4<<20 - 64
