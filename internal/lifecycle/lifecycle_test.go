package lifecycle_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"example.com/daemon/internal/config"
	"example.com/daemon/internal/lifecycle"
	"example.com/daemon/internal/metrics"
	"example.com/daemon/internal/systemd"
	"example.com/daemon/internal/systemd/systemdtest"
)

// These tests run the real lifecycle with a real notify socket, real
// sockets and a real configuration file. Stops and reloads come in through
// the channels Run is given, as the signals main catches do, so each test
// has its own and most run in parallel; that main wires real signals to
// them is tested at the process boundary (internal/service). The app is
// testApp below, not the example service: whatever app plugs in, the
// lifecycle behaves the same.
//
// Each step's tests are in a file of the step's name (listen_test.go,
// start_test.go, …, stop_test.go, in docs/lifecycle.md's order); this file
// is what they share. A few do not run in parallel: those that time the
// watchdog's pings, which a busy machine would delay, and those that load
// the machine themselves.

const wait = 10 * time.Second

// watchdogPing is the message that feeds the watchdog.
const watchdogPing = "WATCHDOG=1"

// testConfig is testApp's part of the configuration file.
type testConfig struct {
	Greeting string `toml:"greeting"`
}

// testApp is an app with the knobs the tests need: a start that can be held
// or made to fail, a health check that can be wedged, a slow endpoint and
// one that panics.
type testApp struct {
	greeting atomic.Pointer[string]
	// hold, when not nil, keeps Start waiting until it is closed or
	// Start's context ends; startErr is what Start then returns.
	hold     chan struct{}
	startErr error
	progress []string // STATUS texts Start reports, each asking for 30 s
	starting chan struct{}
	startCtx chan error // what Start's context said when Start returned
	closed   atomic.Int32
	wedged   atomic.Bool
	// hung makes Check hang until release is closed, whatever its
	// context says, as a stat(2) on a stuck disk does.
	hung    atomic.Bool
	release chan struct{}
	events  events // what happened, in order: "slept", "closed"
	// released counts ReleaseMemory calls.
	released atomic.Int32
}

// events is a list of what happened, safe for several goroutines.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(ev string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, ev)
}

func (e *events) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

func newTestApp() *testApp {
	return &testApp{starting: make(chan struct{}), startCtx: make(chan error, 1), release: make(chan struct{})}
}

func (a *testApp) Start(ctx context.Context, progress lifecycle.Progress) error {
	close(a.starting)
	defer func() { a.startCtx <- ctx.Err() }()
	for _, p := range a.progress {
		progress(p, 30*time.Second)
	}
	if a.hold != nil {
		select {
		case <-a.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return a.startErr
}

func (a *testApp) Routes(handle func(string, http.Handler)) {
	handle("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, *a.greeting.Load()+"\n")
	}))
	handle("GET /items/{id}", http.NotFoundHandler())
	handle("GET /sleep", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		select {
		case <-time.After(d):
			fmt.Fprintf(w, "slept %s\n", d)
			a.events.add("slept")
		case <-r.Context().Done():
		}
	}))
	handle("GET /panic", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("test panic") }))
	// A WebSocket, as far as the server can tell: the handler takes the
	// connection over, says so, and holds it until the client closes it.
	handle("GET /hijack", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer c.Close()
		io.WriteString(c, "hijacked\n")
		io.Copy(io.Discard, c)
	}))
}

// Check fails, once wedged, by hanging until its context ends, as a check
// of a stuck work loop does.
func (a *testApp) Check(ctx context.Context) error {
	if a.hung.Load() {
		<-a.release
		return errors.New("hung")
	}
	if a.wedged.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (a *testApp) Apply(c testConfig) { a.greeting.Store(&c.Greeting) }

// ReleaseMemory makes testApp a lifecycle.MemoryReleaser.
func (a *testApp) ReleaseMemory() { a.released.Add(1) }

func (a *testApp) Close() error {
	a.closed.Add(1)
	a.events.add("closed")
	return nil
}

type daemon struct {
	registry   *prometheus.Registry
	notify     *systemdtest.NotifySocket
	ln         net.Listener // the socket passed in
	url        string
	app        *testApp
	logs       *systemdtest.SyncBuffer
	configPath string
	// stops and reloads are the daemon's Signals, held as main's are,
	// one signal each until Run takes it.
	stops, reloads chan os.Signal
	done           chan struct{} // closed when Run returned, with err set
	err            error
}

type options struct {
	config   string        // config.toml content
	watchdog time.Duration // WATCHDOG_USEC
	// listener is the socket systemd passes in; nil for a new one.
	listener net.Listener
	app      *testApp // nil for newTestApp()
	// notify is where the daemon sends its messages; empty for a
	// NotifySocket of the test's (daemon.notify).
	notify string
	// storeListener is -fd-store; extra are more sockets passed in.
	storeListener bool
	extra         systemd.Listeners
	// pressure is $MEMORY_PRESSURE_WATCH and $MEMORY_PRESSURE_WRITE.
	pressure systemd.MemoryPressure
	// credentials is $CREDENTIALS_DIRECTORY; none when empty.
	credentials systemd.Credentials
}

func start(t *testing.T, o options) *daemon {
	t.Helper()
	dir := t.TempDir()
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(o.config), 0o600); err != nil {
		t.Fatal(err)
	}
	file := config.File[testConfig]{Path: configPath}
	cfg, appCfg, err := file.Load()
	if err != nil {
		t.Fatal(err)
	}
	a := o.app
	if a == nil {
		a = newTestApp()
	}
	a.Apply(appCfg)
	logs := &systemdtest.SyncBuffer{}
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel.Level)
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter{t}), &slog.HandlerOptions{Level: level}))
	reg := prometheus.NewRegistry()
	// The socket systemd would pass in: already listening.
	ln := o.listener
	if ln == nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	d := &daemon{
		registry:   reg,
		ln:         ln,
		url:        "http://" + ln.Addr().String(),
		app:        a,
		logs:       logs,
		configPath: configPath,
		stops:      make(chan os.Signal, 1),
		reloads:    make(chan os.Signal, 1),
		done:       make(chan struct{}),
	}
	listeners := systemd.Listeners{"http": {ln}}
	for name, ls := range o.extra {
		listeners[name] = ls
	}
	notifyAddr := o.notify
	if notifyAddr == "" {
		d.notify = systemdtest.Listen(t, false)
		notifyAddr = d.notify.Addr
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(d.done)
		d.err = lifecycle.Run(ctx, lifecycle.Options{
			Signals:  lifecycle.Signals{Stop: d.stops, Reload: d.reloads},
			Logger:   logger,
			LogLevel: level,
			Systemd: systemd.Passed{
				Notifier:       systemd.NewNotifier(notifyAddr),
				Listeners:      listeners,
				Watchdog:       o.watchdog,
				MemoryPressure: o.pressure,
				Credentials:    o.credentials,
			},
			StoreListener: o.storeListener,
			Metrics:       metrics.New(reg, metrics.Build{}),
			Config:        cfg,
			// As internal/service does: the test app's settings apply
			// only when Run calls for them.
			LoadConfig: func() (config.Config, func(), error) {
				next, appCfg, err := file.Load()
				return next, func() { a.Apply(appCfg) }, err
			},
			App: a,
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-d.done:
		case <-time.After(wait):
			t.Error("Run did not return after its context ended")
		}
	})
	return d
}

// startHeld starts a daemon whose app's Start waits until a.hold is
// closed (or a stop cancels it), and returns once Start has begun.
func startHeld(t *testing.T, config string) (*daemon, *testApp) {
	t.Helper()
	a := newTestApp()
	a.hold = make(chan struct{})
	d := start(t, options{config: config, app: a})
	expect(t, d, "STATUS")
	<-a.starting
	return d, a
}

// stopped waits for Run to return, and fails t unless it returned nil.
func (d *daemon) stopped(t *testing.T) {
	t.Helper()
	select {
	case <-d.done:
		if d.err != nil {
			t.Errorf("Run: %v, want nil after a stop", d.err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
}

// reloadWith writes the config file and sends SIGHUP; it returns the
// READY=1 that ends the reload.
func (d *daemon) reloadWith(t *testing.T, cfg string) map[string]string {
	t.Helper()
	if err := os.WriteFile(d.configPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGHUP)
	expect(t, d, "RELOADING", "MONOTONIC_USEC", "STATUS")
	return expect(t, d, "READY", "STATUS")
}

// signal hands sig to Run as main would once it caught it: SIGHUP asks for
// a reload, SIGTERM and SIGINT for a stop. It returns once the signal waits
// in its channel, where Run takes it when it is ready to.
func (d *daemon) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	to := d.stops
	if sig == syscall.SIGHUP {
		to = d.reloads
	}
	select {
	case to <- sig:
	case <-time.After(wait):
		t.Fatalf("%v: the previous one is still waiting for Run", sig)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// expect reads the next message (skipping watchdog pings) and checks its
// variables, in order.
func expect(t *testing.T, d *daemon, keys ...string) map[string]string {
	t.Helper()
	msg := d.notify.NextExcept(t, wait, watchdogPing)
	if got := systemdtest.Keys(msg); !slices.Equal(got, keys) {
		t.Fatalf("notify message %q: variables %v, want %v", msg, got, keys)
	}
	return systemdtest.Fields(msg)
}

// ready waits for the start's STATUS= and READY=1.
func (d *daemon) ready(t *testing.T) map[string]string {
	t.Helper()
	expect(t, d, "STATUS")
	return expect(t, d, "READY", "STATUS")
}

// keepAliveGet sends GET /healthz on c, keeping it alive, and reads the
// whole answer from r.
func keepAliveGet(c net.Conn, r *bufio.Reader) error {
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: daemon\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return fmt.Errorf("no answer: %w", err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("answer %s", resp.Status)
	}
	return nil
}

// rawGet is GET / as a client sends it, for the tests that hold the
// connection themselves.
const rawGet = "GET / HTTP/1.1\r\nHost: daemon\r\nConnection: close\r\n\r\n"

// getOnce sends GET / on a new connection and reads the whole answer.
func getOnce(addr string) error {
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, rawGet); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return fmt.Errorf("no answer: %w", err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("answer %s", resp.Status)
	}
	return nil
}

// startRequest sends GET url on a connection of its own and returns once the
// server has accepted that connection, with a channel for the outcome.
func startRequest(t *testing.T, d *daemon, url string) <-chan result {
	t.Helper()
	wrote := make(chan struct{})
	out := make(chan result, 1)
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(wrote) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			out <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		out <- result{code: resp.StatusCode, body: string(body), err: err}
	}()
	<-wrote
	// The server accepts connections in the order they arrived: once a
	// request on a newer connection is answered, the first one is in
	// the server's hands and a stop counts it as in flight.
	if code, _ := get(t, d.url+"/healthz"); code != 200 {
		t.Fatalf("GET /healthz: %d", code)
	}
	return out
}

type result struct {
	code int
	body string
	err  error
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// metric returns the value of the series name{labels}, or fails t.
func metric(t *testing.T, d *daemon, name string, labels ...string) float64 {
	t.Helper()
	v, ok := metricIfAny(t, d, name, labels...)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return v
}

// metricIfAny is metric for a series that may not exist yet.
func metricIfAny(t *testing.T, d *daemon, name string, labels ...string) (float64, bool) {
	t.Helper()
	families, err := d.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// inFlight waits until n requests are in a handler, as the daemon's gauge
// counts them.
func inFlight(t *testing.T, d *daemon, n float64) {
	t.Helper()
	eventually(t, fmt.Sprintf("%v requests in flight", n), func() bool {
		return metric(t, d, "daemon_http_requests_in_flight") == n
	})
}

// eventually polls cond until it holds, and fails t if it does not within
// wait: for what has no event to wait for (a log line, a metric).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(wait); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never %s", what)
		}
	}
}

// accepted waits until the daemon has accepted the connection whose
// client end is c. The server's end of a connection becomes a file when
// accept(2) takes it from the listening socket's backlog: until then its
// line in /proc/net/tcp has inode 0.
func accepted(t *testing.T, c net.Conn) {
	t.Helper()
	server, client := procNetTCP(c.RemoteAddr()), procNetTCP(c.LocalAddr())
	eventually(t, "accepted "+c.LocalAddr().String(), func() bool {
		table, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(table), "\n") {
			// sl local_address rem_address st queues tr retrnsmt uid timeout inode
			if f := strings.Fields(line); len(f) > 9 && f[1] == server && f[2] == client {
				return f[9] != "0"
			}
		}
		return false
	})
}

// procNetTCP writes an IPv4 address as /proc/net/tcp does: the address as
// the kernel holds it, read as a number in the machine's byte order, and
// the port, both in hex.
func procNetTCP(a net.Addr) string {
	tcp := a.(*net.TCPAddr)
	return fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(tcp.IP.To4()), tcp.Port)
}
