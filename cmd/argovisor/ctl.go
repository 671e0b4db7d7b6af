package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/argovisor/argovisor/control"
	"github.com/argovisor/argovisor/vmm"
)

const ctlSynopsis = `--api-sock PATH [--json] [--timeout DUR] COMMAND

Commands:
  list           every domain: id, name, state, vCPUs, memory, uptime, restarts, result
  stats NAME     one domain's counters: exits, hypercalls by op and errno, Argo, grant tables
  stop NAME      end a domain through its exit path (no restart); it stays listed
  destroy NAME   end a domain now, free it and forget it (the name can be used again)
  create FILE    create and start a domain from FILE: one domain table in JSON
                 or TOML ([[domain]] or top-level keys); relative paths in it are
                 resolved against FILE's directory, and the kernel file is read
                 here and sent to the VMM (kernel_image), which opens no file
  shutdown       stop every domain and end the VMM (it prints its summaries)
  metrics        the Prometheus text exposition`

func ctlCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("ctl", ctlSynopsis, stdout)
	sock := fs.String("api-sock", os.Getenv("ARGOVISOR_API_SOCK"), "the VMM's control socket `PATH` (default $ARGOVISOR_API_SOCK)")
	asJSON := fs.Bool("json", false, "print the API's JSON answer instead of a table")
	timeout := 30 * time.Second
	fs.Var(durationFlag{&timeout}, "timeout", "give up on the VMM after `DUR`, e.g. 30s")
	pos, code, ok := parseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "argovisor ctl: "+format+"\n", a...)
		return exitUsage
	}
	if *sock == "" {
		return fail("--api-sock PATH is required (the socket given to argovisor run --api-sock)")
	}
	if len(pos) == 0 {
		return fail("missing command: list, stats NAME, stop NAME, destroy NAME, create FILE, shutdown or metrics")
	}
	cmd, rest := pos[0], pos[1:]
	want := map[string]int{"list": 0, "stats": 1, "stop": 1, "destroy": 1, "create": 1, "shutdown": 0, "metrics": 0}
	n, known := want[cmd]
	if !known {
		return fail("unknown command %q (want list, stats, stop, destroy, create, shutdown or metrics)", cmd)
	}
	if len(rest) != n {
		arg := map[string]string{"stats": " NAME", "stop": " NAME", "destroy": " NAME", "create": " FILE"}[cmd]
		return fail("usage: argovisor ctl --api-sock PATH %s%s", cmd, arg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := control.NewClient(*sock)
	var out any
	var err error
	switch cmd {
	case "list":
		out, err = c.List(ctx)
	case "stats":
		out, err = c.Stats(ctx, rest[0])
	case "stop":
		out, err = c.Stop(ctx, rest[0])
	case "destroy":
		out, err = c.Destroy(ctx, rest[0])
	case "create":
		body, rerr := domainFile(rest[0])
		if rerr != nil {
			return fail("%v", rerr)
		}
		out, err = c.Create(ctx, body)
	case "shutdown":
		err = c.Shutdown(ctx)
		out = control.StatusBody{Status: "shutting down"}
	case "metrics":
		var text string
		text, err = c.Metrics(ctx)
		if err == nil {
			fmt.Fprint(stdout, text)
			return exitOK
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "argovisor ctl %s: %v\n", cmd, err)
		return exitFailure
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
		return exitOK
	}
	printTable(stdout, cmd, out)
	return exitOK
}

// domainFile reads a domain table from a JSON or TOML file and returns it
// as JSON, with relative kernel, console_log and stream.socket paths made
// absolute against the file's directory (the VMM may run elsewhere), and the
// kernel file's contents as kernel_image: a VMM under its seccomp filter
// cannot open the file itself.
func domainFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var table map[string]any
	if strings.HasSuffix(path, ".toml") {
		var doc map[string]any
		if _, err := toml.Decode(string(data), &doc); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		table = doc
		if ds, ok := doc["domain"]; ok {
			list, isList := ds.([]map[string]any)
			if !isList || len(list) != 1 || len(doc) != 1 {
				return nil, fmt.Errorf("%s: want exactly one [[domain]] table (or the domain's keys at top level)", path)
			}
			table = list[0]
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&table); err != nil {
			return nil, fmt.Errorf("%s: not a JSON object: %w", path, err)
		}
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	abs := func(m map[string]any, k string) {
		if p, ok := m[k].(string); ok && p != "" && !filepath.IsAbs(p) {
			m[k] = filepath.Join(dir, p)
		}
	}
	abs(table, "kernel")
	abs(table, "console_log")
	if s, ok := table["stream"].(map[string]any); ok {
		abs(s, "socket")
	}
	if _, given := table["kernel_image"]; !given {
		if k, ok := table["kernel"].(string); ok && k != "" {
			img, err := readKernelFile(k)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			table["kernel_image"] = img // encoding/json sends []byte as base64
		}
	}
	return json.Marshal(table)
}

// readKernelFile reads a kernel to send, refusing one the VMM would refuse
// for its size before sending it.
func readKernelFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("kernel %s is not a regular file", path)
	}
	if st.Size() > vmm.MaxKernelImage {
		return nil, fmt.Errorf("kernel %s is %d bytes, the VMM takes at most %d MiB", path, st.Size(), vmm.MaxKernelImage>>20)
	}
	img, err := io.ReadAll(io.LimitReader(f, vmm.MaxKernelImage+1))
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", path, err)
	}
	if len(img) > vmm.MaxKernelImage {
		return nil, fmt.Errorf("kernel %s is larger than %d MiB, the most the VMM takes", path, vmm.MaxKernelImage>>20)
	}
	return img, nil
}

// printTable prints an API answer for people.
func printTable(w io.Writer, cmd string, out any) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch v := out.(type) {
	case []control.DomainInfo:
		fmt.Fprintln(tw, "ID\tNAME\tSTATE\tVCPUS\tMEMORY\tUPTIME\tRESTARTS\tRESULT")
		for _, d := range v {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", d.ID, d.Name, d.State, d.VCPUs, size(d.Memory),
				time.Duration(d.UptimeSeconds*float64(time.Second)).Round(time.Millisecond), d.Restarts, resultText(d.Result))
		}
	case control.DomainStats:
		row := func(k string, val any) { fmt.Fprintf(tw, "%s\t%v\n", k, val) }
		row("domain", fmt.Sprintf("%s (id %d)", v.Name, v.ID))
		row("state", v.State)
		row("vcpus", v.VCPUs)
		row("memory", size(v.Memory))
		row("uptime", time.Duration(v.UptimeSeconds*float64(time.Second)).Round(time.Millisecond))
		row("restarts", v.Restarts)
		row("result", resultText(v.Result))
		row("exits", counts(v.Exits))
		row("hypercalls", fmt.Sprintf("%d: %s", v.Hypercalls, counts(v.HypercallsByOp)))
		row("hypercall errors", counts(v.HypercallErrors))
		row("virqs", v.VIRQs)
		a := v.Argo
		row("argo", fmt.Sprintf("rings=%d registers=%d out=%d msgs/%d B in=%d msgs/%d B eagain=%d notifies=%d space-wakeups=%d",
			a.Rings, a.Registers, a.MsgsOut, a.BytesOut, a.MsgsIn, a.BytesIn, a.EAGAINs, a.Notifies, a.SpaceWakeups))
		row("argo errors", counts(a.ErrorsByErrno))
		g := v.Gnttab
		row("gnttab", fmt.Sprintf("maps=%d unmaps=%d mapped=%d copies=%d/%d B revoked=%d", g.Maps, g.Unmaps, g.Mapped, g.Copies, g.CopyBytes, g.Revoked))
		errs := map[string]uint64{}
		for k, n := range g.ErrorsByStatus {
			errs[k] += n
		}
		for k, n := range g.ErrorsByErrno {
			errs[k] += n
		}
		row("gnttab errors", counts(errs))
	case control.DomainInfo:
		verb := map[string]string{"create": "created", "stop": "stopped", "destroy": "destroyed"}[cmd]
		fmt.Fprintf(tw, "%s %s (domain %d): %s\n", verb, v.Name, v.ID, resultText(v.Result))
	case control.StatusBody:
		fmt.Fprintln(tw, "VMM", v.Status)
	}
}

func resultText(r *control.ResultInfo) string {
	if r == nil {
		return "-"
	}
	return r.Text
}

func size(n uint64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprint(n)
}

// counts renders "a=1 b=2" sorted by name, "-" when empty.
func counts(m map[string]uint64) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
