// Command driver measures the daemon against baselines built in the same
// run, and prints a table of medians and ratios. bench/run.sh builds
// everything and runs it; see docs/performance.md for what each row means.
//
// The machine it runs on is shared and noisy, so the ratios are the result,
// not the absolute numbers: each measurement alternates between the daemon
// and its baselines, and every server is started, pinned and loaded the
// same way. Nothing here passes or fails; a missed goal is reported.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"example.com/daemon/internal/config"
)

type options struct {
	daemon, bare, bareDeps string // binaries
	config                 string // the daemon's config file ("" for built-in defaults)
	phases                 string
	path                   string // what the request path measures: GET of this path

	starts, warmStarts int
	reloads            int
	rounds             int
	duration           time.Duration
	conns              int
	requests           int
	memRounds          int
	slowlorisFor       time.Duration
	serverCPU          string
	clientCPU          string
	wrk                string
	micro              []string // go test -bench outputs to summarise
}

type bench struct {
	opts     options
	dir      string
	notify   *notifySocket
	daemon   *server
	bare     *server
	bareDeps *server
	// bare (a) with the daemon's server timeouts, to tell their price from
	// the rest of the daemon's in the request path runs.
	bareTimeouts *server
	rows         []row
	notes        []string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "exec" {
		execWrapper(os.Args[2:])
		return
	}
	var o options
	flag.StringVar(&o.daemon, "daemon", "", "the daemon `binary`")
	flag.StringVar(&o.bare, "bare", "", "baseline (a): the bare server `binary`")
	flag.StringVar(&o.bareDeps, "bare-deps", "", "baseline (b): the bare server linked with the daemon's dependencies")
	flag.StringVar(&o.config, "config", "", "the daemon's configuration `file`, installed as $CONFIGURATION_DIRECTORY/config.toml (default: none, the built-in defaults)")
	phases := "start,reload,http,tls,memory,slowloris"
	phases += ",notes" // example:line
	flag.StringVar(&o.phases, "phases", phases, "which measurements to make")
	// A kit route, which every service on the kit answers, whatever its
	// app: the figures are the kit's own, and comparable between apps.
	flag.StringVar(&o.path, "path", "/readyz", "the `path` the request, memory and slowloris phases GET")
	flag.DurationVar(&o.slowlorisFor, "slowloris-for", time.Minute, "how long the slowloris attack lasts")
	flag.IntVar(&o.starts, "starts", 40, "starts measured per server")
	flag.IntVar(&o.warmStarts, "warm-starts", 3, "starts per server before measuring (page cache)")
	flag.IntVar(&o.reloads, "reloads", 200, "reloads measured per server")
	flag.IntVar(&o.rounds, "rounds", 10, "wrk runs per server, alternating")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "length of one wrk run")
	flag.IntVar(&o.conns, "conns", 32, "connections of the load generator")
	flag.IntVar(&o.requests, "requests", 100000, "requests before the second RSS reading")
	flag.IntVar(&o.memRounds, "memory-rounds", 3, "fresh starts per server for the RSS readings")
	flag.StringVar(&o.serverCPU, "server-cpu", "0", "CPU list the servers run on under load (\"all\": no pinning)")
	flag.StringVar(&o.clientCPU, "client-cpu", "1", "CPU list the driver and the load generator run on (\"all\": no pinning)")
	flag.StringVar(&o.wrk, "wrk", "wrk", "the wrk `binary`")
	flag.Parse()
	o.micro = flag.Args()
	if o.daemon == "" || o.bare == "" || o.bareDeps == "" {
		fmt.Fprintln(os.Stderr, "driver: -daemon, -bare and -bare-deps are needed; bench/run.sh passes them")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "driver: %v\n", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.clientCPU != "all" {
		// Pin every thread of the driver now, before the load starts;
		// threads made later inherit the mask, and so do wrk and the exec
		// wrapper (which then pins the server where it belongs).
		if err := pinProcess(o.clientCPU); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{opts: o, dir: dir}
	if b.notify, err = listenNotify(dir); err != nil {
		return err
	}
	defer b.notify.Close()
	for _, d := range []string{"config", "state", "logs"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if o.config != "" {
		data, err := os.ReadFile(o.config)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "config", "config.toml"), data, 0o644); err != nil {
			return err
		}
	}
	b.daemon = &server{name: "daemon", path: o.daemon, args: []string{"-state-dir", filepath.Join(dir, "state")}}
	b.bare = &server{name: "bare (a)", path: o.bare}
	b.bareDeps = &server{name: "bare+deps (b)", path: o.bareDeps}
	cfg := config.Default()
	if o.config != "" {
		// The daemon's settings; the app's, whatever they are, go to a
		// map that takes any key.
		if cfg, _, err = (config.File[map[string]any]{Path: o.config}).Load(); err != nil {
			return err
		}
	}
	b.bareTimeouts = &server{name: "bare+timeouts (a+t)", path: o.bare, env: []string{
		"BARE_READ_HEADER_TIMEOUT=" + cfg.HTTP.ReadHeaderTimeout.String(),
		"BARE_READ_TIMEOUT=" + cfg.HTTP.ReadTimeout.String(),
		"BARE_WRITE_TIMEOUT=" + cfg.HTTP.WriteTimeout.String(),
		"BARE_IDLE_TIMEOUT=" + cfg.HTTP.IdleTimeout.String(),
	}}
	// The baselines answer GET path with what the daemon answers, whatever
	// its app: asked once, before any measurement.
	body, err := b.daemonsAnswer()
	if err != nil {
		return fmt.Errorf("GET %s of the daemon: %w", o.path, err)
	}
	for _, s := range []*server{b.bare, b.bareDeps, b.bareTimeouts} {
		s.env = append(s.env, "BARE_PATH="+o.path, "BARE_BODY="+body)
	}

	fmt.Print(machine(o))
	for _, phase := range strings.Split(o.phases, ",") {
		t0, stall0 := time.Now(), cpuPressure()
		var err error
		switch phase {
		case "start":
			err = b.measureStart()
		case "reload":
			err = b.measureReload()
		case "http":
			err = b.measureHTTP()
		case "memory":
			err = b.measureMemory()
		case "notes": // example:line
			err = b.measureNotes() // example:line
		case "slowloris":
			err = b.measureSlowloris()
		case "tls":
			err = b.measureTLS()
		default:
			err = fmt.Errorf("unknown phase %q", phase)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", phase, err)
		}
		busy := float64(cpuPressure()-stall0) / float64(time.Since(t0))
		fmt.Fprintf(os.Stderr, "bench: %s done in %.1fs\n", phase, time.Since(t0).Seconds())
		b.note("%s phase: some task waited for a CPU %.0f%% of the time (/proc/pressure/cpu, the whole machine: other processes, and in the start phase the servers starting)", phase, busy*100)
	}
	b.printMicro(os.Stdout)
	b.printTable(os.Stdout)
	return nil
}

// env is the environment every server gets, besides the socket activation
// and notify variables: the same for all of them. GOGC, GOMAXPROCS and the
// like pass through, to all alike. The directories are those systemd would
// set (the daemon is given -state-dir as well); with them, -bare can name a
// second build of the daemon, to compare two builds.
func (b *bench) env() []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"CONFIGURATION_DIRECTORY=" + filepath.Join(b.dir, "config"),
		"STATE_DIRECTORY=" + filepath.Join(b.dir, "state"),
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k == "GOGC" || k == "GOMEMLIMIT" || k == "GODEBUG" || k == "GOMAXPROCS" {
			env = append(env, kv)
		}
	}
	return env
}

func (b *bench) logPath(s *server) string {
	return filepath.Join(b.dir, "logs", strings.NewReplacer(" ", "", "(", "", ")", "", "+", "-").Replace(s.name)+".log")
}

// logTail is the end of a server's log, for an error message.
func (b *bench) logTail(s *server) string {
	data, _ := os.ReadFile(b.logPath(s))
	if len(data) == 0 {
		return ""
	}
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return "\n--- " + s.name + " log ---\n" + string(data)
}

func (b *bench) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

// rotate returns s turned by i places: which server goes first changes
// from round to round, so that none is always measured after the same one.
func rotate[T any](s []T, i int) []T {
	i %= len(s)
	return append(slices.Clone(s[i:]), s[:i]...)
}

// pinProcess sets the CPU affinity of every thread of this process.
func pinProcess(cpus string) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	if err := setAffinity(cpus); err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			return err
		}
		if err := setAffinityOf(tid, cpus); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
	}
	return nil
}

func machine(o options) string {
	var sb strings.Builder
	model := "unknown"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "unknown"
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		first, _, _ := strings.Cut(string(data), "\n")
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(first, "MemTotal:")), " kB"), 10, 64)
		if err == nil {
			mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	kernel := "unknown"
	var uts syscall.Utsname
	if err := syscall.Uname(&uts); err == nil {
		kernel = utsString(uts.Release[:])
	}
	online, _ := os.ReadFile("/sys/devices/system/cpu/online")
	fmt.Fprintf(&sb, "machine: %d CPUs (online %s), %s, %s memory, Linux %s, %s\n",
		cpusOnline(), strings.TrimSpace(string(online)), model, mem, kernel, runtime.Version())
	fmt.Fprintf(&sb, "servers on CPU %s under load, driver and load generator on CPU %s\n\n", o.serverCPU, o.clientCPU)
	return sb.String()
}

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func cpusOnline() int {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.NumCPU()
	}
	return strings.Count(string(data), "\nprocessor") + boolInt(strings.HasPrefix(string(data), "processor"))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// printMicro repeats the result lines of the go test benchmarks run.sh ran.
func (b *bench) printMicro(w io.Writer) {
	for _, path := range b.opts.micro {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var lines []string
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "Benchmark") || strings.HasPrefix(line, "pkg:") || strings.Contains(line, "SKIP") {
				lines = append(lines, line)
			}
		}
		if len(lines) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s\n", strings.TrimSuffix(filepath.Base(path), ".txt"))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		for _, line := range lines {
			if strings.HasPrefix(line, "Benchmark") {
				fmt.Fprintln(tw, strings.Join(strings.Fields(line), "\t")+"\t")
			} else {
				tw.Flush()
				fmt.Fprintln(w, line)
			}
		}
		tw.Flush()
	}
}

// daemonsAnswer starts the daemon and returns the body of its GET path.
func (b *bench) daemonsAnswer() (string, error) {
	p, url, err := b.serve(b.daemon)
	if err != nil {
		return "", err
	}
	defer func() { _ = p.stop() }() // a measurement, not this probe, reports a bad stop
	resp, err := http.Get(url + b.opts.path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}
