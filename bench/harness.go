package bench

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/argovisor/argovisor/vmm"
)

// lab is one VMM for one measurement run, with the console captured.
type lab struct {
	o *Options
	v *vmm.VMM

	// mu guards lines and marks. Leaf.
	mu    sync.Mutex
	lines map[string][]string
	// marks are each domain's counters at each console line it printed
	// (counters.go).
	marks map[string][]mark
}

func newLab(o *Options) (*lab, error) {
	l := &lab{o: o, lines: map[string][]string{}, marks: map[string][]mark{}}
	v, err := vmm.New(vmm.Options{Console: func(d *vmm.Domain, line string) {
		// This runs on the printing vCPU's goroutine during the exit
		// that ends the line, so the counters are exact for that point
		// of the guest's program.
		m := mark{line: line, at: time.Now(), vm: d.Stats(), argo: d.ArgoStats()}
		l.mu.Lock()
		l.lines[d.Name()] = append(l.lines[d.Name()], line)
		l.marks[d.Name()] = append(l.marks[d.Name()], m)
		l.mu.Unlock()
	}, Doorbell: o.Doorbell})
	if err != nil {
		return nil, err
	}
	l.v = v
	return l, nil
}

func (l *lab) close() { l.v.Close() }

// create makes a domain of a guest program with params (not started).
func (l *lab) create(name, prog string, mem uint64, params map[string]string) (*vmm.Domain, error) {
	return l.v.CreateDomain(vmm.DomainConfig{Name: name, Kernel: filepath.Join(l.o.Guests, prog+".elf"), Memory: mem, VCPUs: 1, Params: params})
}

// start creates and starts a domain.
func (l *lab) start(name, prog string, mem uint64, params map[string]string) (*vmm.Domain, error) {
	d, err := l.create(name, prog, mem, params)
	if err != nil {
		return nil, err
	}
	return d, d.Start()
}

// ready waits for the domain's first console line.
func (l *lab) ready(d *vmm.Domain) error {
	select {
	case <-d.FirstOutput():
		return nil
	case <-d.Done():
		return fmt.Errorf("%s ended before it was ready: %v\n%s", d.Name(), d.Result(), l.console(d.Name()))
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("%s never printed", d.Name())
	}
}

// finish waits for the domains to exit 0.
func (l *lab) finish(ds ...*vmm.Domain) error {
	for _, d := range ds {
		select {
		case <-d.Done():
		case <-time.After(5 * time.Minute):
			d.Stop("benchmark deadline")
			<-d.Done()
		}
		if r := d.Result(); !r.OK() {
			return fmt.Errorf("%w: %s: %v\n%s", errGuest, d.Name(), r, l.console(d.Name()))
		}
	}
	return nil
}

func (l *lab) console(name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines[name], "\n")
}

// scan parses the first console line of name that starts with prefix and
// matches format.
func (l *lab) scan(name, prefix, format string, args ...any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines[name] {
		if strings.HasPrefix(line, prefix) {
			if _, err := fmt.Sscanf(line, format, args...); err == nil {
				return nil
			}
		}
	}
	return fmt.Errorf("%s printed no line matching %q", name, format)
}

// cyclesToMicros converts guest TSC cycles to microseconds.
func cyclesToMicros(d *vmm.Domain, cycles float64) (float64, error) {
	khz, err := d.TSCKHz()
	if err != nil || khz == 0 {
		return 0, fmt.Errorf("guest TSC frequency: %v", err)
	}
	return cycles / float64(khz) * 1e3, nil
}
