package lifecycle_test

import (
	"bufio"
	"context"
	"encoding/base64"
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

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
		d.err = lifecycle.Run(ctx, lifecycle.Options[testConfig]{
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
			ConfigFile:    file,
			App:           a,
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

func TestNotifiesReadyReloadingReadyStoppingInOrder(t *testing.T) {
	d := start(t, options{config: `greeting = "one"`})
	ready := d.ready(t)
	if !strings.Contains(ready["STATUS"], "Serving on 127.0.0.1:") {
		t.Errorf("STATUS=%q does not say what is served", ready["STATUS"])
	}

	before := monotonicUsec(t)
	d.signal(t, syscall.SIGHUP)
	reloading := expect(t, d, "RELOADING", "MONOTONIC_USEC", "STATUS")
	after := monotonicUsec(t)
	// systemd compares MONOTONIC_USEC with its own CLOCK_MONOTONIC reading
	// taken when it sent SIGHUP: it must be that clock, in microseconds.
	if usec, err := strconv.ParseInt(reloading["MONOTONIC_USEC"], 10, 64); err != nil || usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC=%s, want CLOCK_MONOTONIC µs between %d and %d", reloading["MONOTONIC_USEC"], before, after)
	}
	expect(t, d, "READY", "STATUS")

	d.signal(t, syscall.SIGTERM)
	stopping := expect(t, d, "STOPPING", "STATUS", "EXTEND_TIMEOUT_USEC")
	// The drain may take drain_timeout (10s by default), and exiting a
	// little more: 15 s, in microseconds.
	if got := stopping["EXTEND_TIMEOUT_USEC"]; got != "15000000" {
		t.Errorf("EXTEND_TIMEOUT_USEC=%q, want 15000000", got)
	}
	select {
	case <-d.done:
		if d.err != nil {
			t.Fatalf("Run after SIGTERM: %v, want nil", d.err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return after SIGTERM")
	}
	if msg, ok := d.notify.NextOrNone(100 * time.Millisecond); ok {
		t.Errorf("message after STOPPING=1: %q", msg)
	}
}

func monotonicUsec(t *testing.T) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

// TestReadyzAnswers200WhenReadyArrives: readiness is set before READY=1 is
// sent, so a client that systemd lets through once the unit is active finds
// the daemon ready.
func TestReadyzAnswers200WhenReadyArrives(t *testing.T) {
	d := start(t, options{})
	d.ready(t)
	if code, _ := get(t, d.url+"/readyz"); code != 200 {
		t.Errorf("GET /readyz the moment READY=1 arrived: %d, want 200", code)
	}
}

// TestConnectionDuringStartIsAnsweredOnlyOnceStarted: the socket listens
// before the app has started, so a client that comes early waits in the
// backlog instead of being refused, and it is served by a started app.
func TestConnectionDuringStartIsAnsweredOnlyOnceStarted(t *testing.T) {
	d, a := startHeld(t, `greeting = "hi"`)
	c, err := net.Dial("tcp", strings.TrimPrefix(d.url, "http://"))
	if err != nil {
		t.Fatalf("connect during the start: %v", err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, rawGet); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("answered (%d bytes, %v) while the app was still starting", n, err)
	}
	close(a.hold)
	expect(t, d, "READY", "STATUS")
	c.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("the early client, once started: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "hi\n" {
		t.Errorf("the early client, once started: %s %q", resp.Status, body)
	}
}

func TestReloadAppliesNewConfig(t *testing.T) {
	d := start(t, options{config: `greeting = "old"`})
	d.ready(t)
	d.reloadWith(t, "greeting = \"new\"\ndrain_timeout = \"3s\"")
	if _, body := get(t, d.url+"/"); body != "new\n" {
		t.Errorf("GET / after reload = %q, want the new greeting", body)
	}
	d.signal(t, syscall.SIGTERM)
	stopping := expect(t, d, "STOPPING", "STATUS", "EXTEND_TIMEOUT_USEC")
	if got := stopping["EXTEND_TIMEOUT_USEC"]; got != "8000000" {
		t.Errorf("stopping with drain_timeout 3s from the reload: EXTEND_TIMEOUT_USEC=%q, want 8000000 (3 s + 5 s)", got)
	}
	d.stopped(t)
}

// TestReloadKeepsOldConfigWhenNewOneIsInvalid: a file with one bad value
// applies nothing, neither the daemon's settings nor the app's.
func TestReloadKeepsOldConfigWhenNewOneIsInvalid(t *testing.T) {
	d := start(t, options{config: "greeting = \"old\"\ndrain_timeout = \"2s\"\nlog_level = \"warn\""})
	d.ready(t)
	ready := d.reloadWith(t, "greeting = \"new\"\ndrain_timeout = \"1s\"\nlog_level = \"loud\"\n")
	// READY=1 still ends the reload: the daemon serves, with the old config.
	for _, want := range []string{"reload failed", d.configPath + ":3:", "log_level", "loud"} {
		if !strings.Contains(ready["STATUS"], want) {
			t.Errorf("STATUS=%q does not contain %q", ready["STATUS"], want)
		}
	}
	if _, body := get(t, d.url+"/"); body != "old\n" {
		t.Errorf("GET / after a failed reload = %q, want the old greeting", body)
	}
	d.signal(t, syscall.SIGTERM)
	if got := expect(t, d, "STOPPING", "STATUS", "EXTEND_TIMEOUT_USEC")["EXTEND_TIMEOUT_USEC"]; got != "7000000" {
		t.Errorf("after a failed reload, EXTEND_TIMEOUT_USEC=%q, want the old drain_timeout's 7000000", got)
	}
	d.stopped(t)
	if strings.Contains(d.logs.String(), "level=INFO") {
		t.Errorf("info logged after a failed reload at log_level=warn:\n%s", d.logs)
	}
}

// TestLogLevelIsReloadable: at warn, none of the daemon's info lines is
// written (the ready line and a reload's are logged before the READY=1
// that ends the reload); reloaded at info, they are.
func TestLogLevelIsReloadable(t *testing.T) {
	d := start(t, options{config: `log_level = "warn"`})
	d.ready(t)
	d.reloadWith(t, `log_level = "warn"`)
	if strings.Contains(d.logs.String(), "level=INFO") {
		t.Fatalf("info logged at log_level=warn:\n%s", d.logs)
	}
	d.reloadWith(t, `log_level = "info"`)
	if !strings.Contains(d.logs.String(), `level=INFO msg="configuration reloaded"`) {
		t.Errorf("after reloading log_level=info, no info line:\n%s", d.logs)
	}
}

func TestWatchdogPingsAtHalfTheInterval(t *testing.T) {
	const interval = 400 * time.Millisecond
	d := start(t, options{watchdog: interval})
	d.ready(t)
	last := time.Now()
	var gaps []time.Duration
	for range 5 {
		if msg := d.notify.Next(t, wait); msg != watchdogPing {
			t.Fatalf("got %q, want WATCHDOG=1", msg)
		}
		gaps = append(gaps, time.Since(last))
		last = time.Now()
	}
	slices.Sort(gaps)
	// Half the interval, with room for a loaded machine; a daemon that
	// pinged at the full interval (too late) or not at all fails.
	if median := gaps[2]; median < interval/4 || median > interval*3/4 {
		t.Errorf("median gap between pings %s, want about %s (gaps %v)", median, interval/2, gaps)
	}
}

func TestWatchdogStopsWhenHealthCheckFails(t *testing.T) {
	const interval = 400 * time.Millisecond
	d := start(t, options{watchdog: interval})
	d.ready(t)
	if msg := d.notify.Next(t, wait); msg != watchdogPing {
		t.Fatalf("got %q, want WATCHDOG=1 while healthy", msg)
	}
	d.app.wedged.Store(true)
	// A ping already on its way may still arrive; after that, none for
	// longer than systemd would wait.
	d.notify.NextOrNone(interval / 2)
	if msg, ok := d.notify.NextOrNone(2 * interval); ok {
		t.Errorf("got %q from a wedged app, want no watchdog ping", msg)
	}
	if code, _ := get(t, d.url+"/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /healthz of a wedged app: %d, want 503", code)
	}
	if v := metric(t, d, "daemon_watchdog_pings_total", "result", "skipped"); v < 1 {
		t.Errorf("skipped watchdog pings = %v, want at least 1", v)
	}
	if v := metric(t, d, "daemon_watchdog_pings_total", "result", "sent"); v < 1 {
		t.Errorf("sent watchdog pings = %v, want at least 1", v)
	}
	d.app.wedged.Store(false)
	if code, _ := get(t, d.url+"/healthz"); code != 200 {
		t.Errorf("GET /healthz once healthy again: %d, want 200", code)
	}
}

// TestWatchdogIsNotFedWhileStopping: systemd disarms the watchdog when a
// stop begins, so the daemon stops pinging at STOPPING=1; a drain longer
// than the interval sends no WATCHDOG=1.
func TestWatchdogIsNotFedWhileStopping(t *testing.T) {
	const interval = 100 * time.Millisecond
	d := start(t, options{watchdog: interval})
	d.ready(t)
	if msg := d.notify.Next(t, wait); msg != watchdogPing {
		t.Fatalf("got %q, want WATCHDOG=1", msg)
	}
	slow := startRequest(t, d, d.url+"/sleep?d=800ms")
	d.signal(t, syscall.SIGTERM)
	expect(t, d, "STOPPING", "STATUS", "EXTEND_TIMEOUT_USEC")
	if msg, ok := d.notify.NextOrNone(500 * time.Millisecond); ok {
		t.Errorf("got %q during the drain, want nothing after STOPPING=1", msg)
	}
	if r := <-slow; r.code != 200 {
		t.Errorf("the in-flight request: %d %v", r.code, r.err)
	}
	d.stopped(t)
}

func TestStopDrainsInFlightRequests(t *testing.T) {
	d := start(t, options{config: `drain_timeout = "5s"`})
	d.ready(t)
	slow := startRequest(t, d, d.url+"/sleep?d=500ms")
	d.signal(t, syscall.SIGTERM)
	expect(t, d, "STOPPING", "STATUS", "EXTEND_TIMEOUT_USEC")
	// The slow request's connection is still open, and readiness is
	// withdrawn from the moment stopping begins.
	if v := metric(t, d, "daemon_draining_connections"); v < 1 {
		t.Errorf("daemon_draining_connections = %v during the drain, want ≥ 1", v)
	}
	if v := metric(t, d, "daemon_ready"); v != 0 {
		t.Errorf("daemon_ready = %v after STOPPING=1, want 0", v)
	}
	// Answered whole: Run closes what is left open when it returns, so a
	// stop that did not wait would have cut it off.
	if r := <-slow; r.err != nil || r.code != 200 || r.body != "slept 500ms\n" {
		t.Errorf("in-flight request during stop: %d %q %v", r.code, r.body, r.err)
	}
	d.stopped(t)
	// Closed once, and after the request: not while it still ran on the app.
	if got := d.app.events.get(); !slices.Equal(got, []string{"slept", "closed"}) {
		t.Errorf("events %v, want the request to finish, then Close once", got)
	}
}

func TestStopGivesUpOnRequestsPastTheDrainTimeout(t *testing.T) {
	d := start(t, options{config: `drain_timeout = "100ms"`})
	d.ready(t)
	slow := startRequest(t, d, d.url+"/sleep?d=1h")
	d.signal(t, syscall.SIGTERM)
	d.stopped(t)
	if v := metric(t, d, "daemon_draining_connections"); v != 0 {
		t.Errorf("daemon_draining_connections = %v after the stop, want 0", v)
	}
	if r := <-slow; r.err == nil {
		t.Errorf("a request past the drain timeout completed (%d %q); want its connection closed", r.code, r.body)
	}
}

func TestSecondStopSignalEndsTheDrainAtOnce(t *testing.T) {
	d := start(t, options{config: `drain_timeout = "1h"`})
	d.ready(t)
	slow := startRequest(t, d, d.url+"/sleep?d=1h")
	d.signal(t, syscall.SIGTERM)
	expect(t, d, "STOPPING", "STATUS", "EXTEND_TIMEOUT_USEC")
	select {
	case <-d.done:
		t.Fatal("Run returned before the drain timeout with a request in flight")
	case <-time.After(100 * time.Millisecond):
	}
	d.signal(t, syscall.SIGINT)
	d.stopped(t)
	if r := <-slow; r.err == nil {
		t.Errorf("the in-flight request completed (%d); want its connection closed", r.code)
	}
}

// TestStopDuringStartCancelsIt: SIGTERM while the app starts (a `systemctl
// stop` during a long warm-up) cancels Start's context, says STOPPING=1,
// closes the app and returns nil: a clean exit, not death by signal.
func TestStopDuringStartCancelsIt(t *testing.T) {
	d, a := startHeld(t, "")
	d.signal(t, syscall.SIGTERM)
	stopping := expect(t, d, "STOPPING", "STATUS")
	if !strings.Contains(stopping["STATUS"], "start was interrupted") {
		t.Errorf("STATUS=%q, want it to say the start was interrupted", stopping["STATUS"])
	}
	d.stopped(t)
	if err := <-a.startCtx; !errors.Is(err, context.Canceled) {
		t.Errorf("Start's context when it returned: %v, want canceled", err)
	}
	if n := a.closed.Load(); n != 1 {
		t.Errorf("Close called %d times after an interrupted start, want once", n)
	}
	if msg, ok := d.notify.NextOrNone(100 * time.Millisecond); ok {
		t.Errorf("message after STOPPING=1: %q", msg)
	}
}

// TestReloadDuringStartFollowsReady: SIGHUP while the app starts does not
// end the process; the reload happens once READY=1 is sent.
func TestReloadDuringStartFollowsReady(t *testing.T) {
	d, a := startHeld(t, `greeting = "old"`)
	if err := os.WriteFile(d.configPath, []byte(`greeting = "new"`), 0o600); err != nil {
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGHUP)
	// The signal is taken before Start returns: wait for the log line.
	for !strings.Contains(d.logs.String(), "reload requested while starting") {
		time.Sleep(time.Millisecond)
	}
	close(a.hold)
	expect(t, d, "READY", "STATUS")
	expect(t, d, "RELOADING", "MONOTONIC_USEC", "STATUS")
	expect(t, d, "READY", "STATUS")
	if _, body := get(t, d.url+"/"); body != "new\n" {
		t.Errorf("GET / after the reload asked for during the start: %q, want new", body)
	}
}

// TestStartFailureIsReturnedAndClosesTheApp: an app that cannot start
// ends Run with its error; what it opened is closed.
func TestStartFailureIsReturnedAndClosesTheApp(t *testing.T) {
	a := newTestApp()
	a.startErr = errors.New("no disk")
	d := start(t, options{app: a})
	expect(t, d, "STATUS")
	<-d.done
	if d.err == nil || !strings.Contains(d.err.Error(), "no disk") {
		t.Errorf("Run: %v, want the start's error", d.err)
	}
	if n := a.closed.Load(); n != 1 {
		t.Errorf("Close called %d times after a failed start, want once", n)
	}
}

// TestStartProgressAsksForMoreTime: a long start reports its progress with
// STATUS= and EXTEND_TIMEOUT_USEC= in one datagram.
func TestStartProgressAsksForMoreTime(t *testing.T) {
	a := newTestApp()
	a.progress = []string{"Loading: 1 of 2", "Loading: 2 of 2"}
	d := start(t, options{app: a})
	expect(t, d, "STATUS")
	for _, want := range a.progress {
		got := expect(t, d, "STATUS", "EXTEND_TIMEOUT_USEC")
		if got["STATUS"] != want || got["EXTEND_TIMEOUT_USEC"] != "30000000" {
			t.Errorf("progress %v, want STATUS=%s EXTEND_TIMEOUT_USEC=30000000", got, want)
		}
	}
	expect(t, d, "READY", "STATUS")
}

func TestPanicInAHandlerIsRecoveredLoggedAndCounted(t *testing.T) {
	d := start(t, options{config: `greeting = "still here"`})
	d.ready(t)
	if code, _ := get(t, d.url+"/panic"); code != http.StatusInternalServerError {
		t.Errorf("GET /panic: %d, want 500", code)
	}
	if logs := d.logs.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "lifecycle_test.go") {
		t.Errorf("panic not logged at error level with its stack:\n%s", logs)
	}
	if v := metric(t, d, "daemon_http_panics_total", "route", "/panic"); v != 1 {
		t.Errorf("daemon_http_panics_total{route=/panic} = %v, want 1", v)
	}
	// …and the daemon still serves.
	if code, body := get(t, d.url+"/"); code != 200 || body != "still here\n" {
		t.Errorf("GET / after a panic: %d %q", code, body)
	}
}

// TestStopAnswersEveryConnectionItAccepted stops the daemon while clients
// keep opening connections, as during `systemctl restart` of a daemon whose
// socket systemd holds. A connection the daemon accepted must be answered;
// one still in the socket's backlog is left to the next instance, played
// here by the test, which serves the same socket once Run has returned.
// Either way, no client sees its connection closed without an answer.
func TestStopAnswersEveryConnectionItAccepted(t *testing.T) {
	for round := range 20 {
		// systemd keeps its own copy of the socket: the daemon closing its
		// copy leaves the port listening, and the backlog intact.
		held, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		f, err := held.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		d := start(t, options{listener: ln})
		expect(t, d, "STATUS")
		expect(t, d, "READY", "STATUS")

		stop := make(chan struct{})
		failures := make(chan error, 100)
		var clients sync.WaitGroup
		for range 4 {
			clients.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := getOnce(held.Addr().String()); err != nil {
						failures <- err
						return
					}
				}
			})
		}
		// Let the clients get going, then stop in the middle of them.
		for range 50 {
			if code, _ := get(t, d.url+"/healthz"); code != 200 {
				t.Fatalf("GET /healthz: %d", code)
			}
		}
		d.signal(t, syscall.SIGTERM)
		<-d.done
		// The next instance: serve what is left in the backlog.
		next := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "next\n")
		})}
		go next.Serve(held)
		close(stop)
		clients.Wait()
		next.Close()
		close(failures)
		for err := range failures {
			t.Errorf("round %d: a client of the stopping daemon: %v", round, err)
		}
		if t.Failed() {
			return
		}
	}
}

// TestMaxConnectionsQueuesTheRestWhenAllAreBusy: past max_connections, when
// every connection has a request in a handler, a new one waits in the
// backlog until a slot frees; none is closed to make room.
func TestMaxConnectionsQueuesTheRestWhenAllAreBusy(t *testing.T) {
	d := start(t, options{config: "[http]\nmax_connections = 1"})
	expect(t, d, "STATUS")
	expect(t, d, "READY", "STATUS")
	addr := strings.TrimPrefix(d.url, "http://")
	// The one connection allowed, busy in a handler for a while.
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := io.WriteString(first, "GET /sleep?d=500ms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	firstResp := bufio.NewReader(first)
	inFlight(t, d, 1)
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if _, err := io.WriteString(second, rawGet); err != nil {
		t.Fatal(err)
	}
	second.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := second.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection past max_connections was answered (%d bytes, %v) while the first was busy", n, err)
	}
	first.SetReadDeadline(time.Now().Add(wait))
	if resp, err := http.ReadResponse(firstResp, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the busy connection: %v, %v; want its whole answer, not a close", resp, err)
	}
	first.Close()
	second.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(bufio.NewReader(second), nil)
	if err != nil {
		t.Fatalf("the queued connection, once the first closed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("the queued connection: %s", resp.Status)
	}
	if n := metric(t, d, "daemon_http_connections_shed_total"); n != 0 {
		t.Errorf("%v connections shed, want 0", n)
	}
}

// TestAtMaxConnectionsANewClientTakesTheSlotOfASlowOrIdleOne: with every
// slot held by a connection whose client keeps the server waiting, new
// clients are served long before read_header_timeout or idle_timeout would
// free a slot. The slow ones go first, clients that have begun a request
// and not finished it (a slowloris), a tenth of a second into it; then the
// idle keep-alive one, a second after its answer. Each is counted.
func TestAtMaxConnectionsANewClientTakesTheSlotOfASlowOrIdleOne(t *testing.T) {
	d := start(t, options{config: "[http]\nmax_connections = 3\nread_header_timeout = \"1m\"\nidle_timeout = \"1m\""})
	expect(t, d, "STATUS")
	expect(t, d, "READY", "STATUS")
	addr := strings.TrimPrefix(d.url, "http://")
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Two slow clients, headers half sent, and one idle keep-alive
	// connection that has had its answer.
	var slow []net.Conn
	for range 2 {
		c := dial()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
		slow = append(slow, c)
	}
	idle := dial()
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") // keep-alive
	if resp, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the keep-alive connection's first request: %v, %v", resp, err)
	}
	inFlight(t, d, 0)
	// Each new client, which keeps its connection, is served, the first
	// two in the slots of the slow clients, the third in the idle one's.
	newClient := func(i int) {
		start := time.Now()
		transport := &http.Transport{}
		t.Cleanup(transport.CloseIdleConnections)
		resp, err := (&http.Client{Timeout: wait, Transport: transport}).Get(d.url + "/")
		if err != nil {
			t.Fatalf("new client %d at max_connections: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		t.Logf("new client %d answered in %s", i, time.Since(start).Round(time.Millisecond))
	}
	closed := func(c net.Conn, within time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(within))
		_, err := io.Copy(io.Discard, c)
		return err == nil || !errors.Is(err, os.ErrDeadlineExceeded)
	}
	newClient(0)
	newClient(1)
	for i, c := range slow {
		if !closed(c, wait) {
			t.Errorf("slow client %d still connected after two new clients", i)
		}
	}
	if closed(idle, 0) {
		t.Error("the idle connection was closed before the slow ones")
	}
	newClient(2)
	if !closed(idle, wait) {
		t.Error("the idle connection still open after a third new client")
	}
	if n := metric(t, d, "daemon_http_connections_shed_total"); n != 3 {
		t.Errorf("%v connections shed, want 3", n)
	}
}

// TestAtMaxConnectionsNoRequestOnItsWayIsLost: every slot is a keep-alive
// client sending requests back to back, as a load generator or a proxy's
// pool does, while new clients keep connecting. Between two requests such a
// connection waits a few microseconds, its next request already on the way;
// closing it then to make room would lose that request (a reset, or an end
// of stream before any answer). None is lost: the new clients wait in the
// backlog until a slot frees, and every request of every client is answered.
func TestAtMaxConnectionsNoRequestOnItsWayIsLost(t *testing.T) {
	const slots, requests, newcomers = 4, 300, 40
	d := start(t, options{config: fmt.Sprintf("[http]\nmax_connections = %d", slots)})
	d.ready(t)
	addr := strings.TrimPrefix(d.url, "http://")
	var failed atomic.Int64
	fail := func(who string, err error) {
		if failed.Add(1) <= 5 {
			t.Logf("%s: %v", who, err)
		}
	}
	var clients sync.WaitGroup
	holding := make(chan struct{}, slots)
	for i := range slots {
		clients.Add(1)
		go func() {
			defer clients.Done()
			var c net.Conn
			var r *bufio.Reader
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for n := range requests {
				if c == nil {
					var err error
					if c, err = net.DialTimeout("tcp", addr, wait); err != nil {
						fail(fmt.Sprintf("keep-alive client %d", i), err)
						return
					}
					r = bufio.NewReader(c)
				}
				c.SetDeadline(time.Now().Add(wait))
				err := keepAliveGet(c, r)
				if err != nil {
					// A client that lost its connection opens another, as
					// h2load does, and counts the request as failed.
					fail(fmt.Sprintf("keep-alive client %d, request %d", i, n), err)
					c.Close()
					c = nil
				}
				if n == 0 {
					holding <- struct{}{}
				}
			}
		}()
	}
	// The new clients come once every slot is held.
	for range slots {
		<-holding
	}
	for i := range newcomers {
		clients.Add(1)
		go func() {
			defer clients.Done()
			if err := getOnce(addr); err != nil {
				fail(fmt.Sprintf("new client %d", i), err)
			}
		}()
	}
	clients.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed; want none lost", n, slots*requests+newcomers)
	}
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

// TestAHijackedConnectionCountsUntilItCloses: a connection a handler took
// over (a WebSocket, say) is the daemon's until it closes, for the limit
// and the drain alike: it holds its slot at max_connections, and a stop
// waits for it up to drain_timeout, then closes it.
func TestAHijackedConnectionCountsUntilItCloses(t *testing.T) {
	d := start(t, options{config: "drain_timeout = \"500ms\"\n[http]\nmax_connections = 1"})
	d.ready(t)
	addr := strings.TrimPrefix(d.url, "http://")
	taken, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	io.WriteString(taken, "GET /hijack HTTP/1.1\r\nHost: x\r\n\r\n")
	taken.SetReadDeadline(time.Now().Add(wait))
	if line, err := bufio.NewReader(taken).ReadString('\n'); line != "hijacked\n" {
		t.Fatalf("GET /hijack: %q, %v", line, err)
	}
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	io.WriteString(second, rawGet)
	second.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := second.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a client past max_connections was answered (%d bytes, %v) while a hijacked connection held the slot", n, err)
	}
	d.signal(t, syscall.SIGTERM)
	expect(t, d, "STOPPING", "STATUS", "EXTEND_TIMEOUT_USEC")
	if v := metric(t, d, "daemon_draining_connections"); v < 1 {
		t.Errorf("daemon_draining_connections = %v with a hijacked connection open, want ≥ 1", v)
	}
	select {
	case <-d.done:
		t.Error("Run returned at once, not waiting for the hijacked connection")
	case <-time.After(200 * time.Millisecond):
	}
	d.stopped(t)
	taken.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.Copy(io.Discard, taken); err != nil {
		t.Errorf("the hijacked connection after the stop: %v, want it closed", err)
	}
}

// TestStopDoesNotWaitForASilentConnection: a connection that never sends
// a request (a browser's preconnect, a port scan) does not hold the stop
// for the whole drain_timeout, even with no header or read timeout to end
// it: after 5 s of silence it is closed, as http.Server.Shutdown would.
func TestStopDoesNotWaitForASilentConnection(t *testing.T) {
	d := start(t, options{config: "drain_timeout = \"1m\"\n[http]\nread_header_timeout = \"0s\"\nread_timeout = \"0s\"\n"})
	expect(t, d, "STATUS")
	expect(t, d, "READY", "STATUS")
	silent, err := net.Dial("tcp", strings.TrimPrefix(d.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// A request on a newer connection is answered once the silent one
	// is accepted (they are accepted in order).
	if code, _ := get(t, d.url+"/healthz"); code != 200 {
		t.Fatalf("GET /healthz: %d", code)
	}
	d.signal(t, syscall.SIGTERM)
	select {
	case <-d.done:
		if d.err != nil {
			t.Errorf("Run: %v", d.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a silent connection held the stop for 20 s (drain_timeout is 1m)")
	}
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

func TestMetricsFollowTheLifecycle(t *testing.T) {
	d := start(t, options{config: `greeting = "one"`})
	expect(t, d, "STATUS")
	expect(t, d, "READY", "STATUS")
	if v := metric(t, d, "daemon_ready"); v != 1 {
		t.Errorf("daemon_ready = %v after READY=1, want 1", v)
	}
	if v := metric(t, d, "daemon_socket_activated"); v != 1 {
		t.Errorf("daemon_socket_activated = %v on a passed socket, want 1", v)
	}

	get(t, d.url+"/")
	get(t, d.url+"/items/nothing-here")
	if v := metric(t, d, "daemon_http_requests_total", "route", "/", "method", "get", "code", "200"); v != 1 {
		t.Errorf("requests to / = %v, want 1", v)
	}
	// The route pattern, never the raw path: series stay bounded.
	if v := metric(t, d, "daemon_http_requests_total", "route", "/items/{id}", "code", "404"); v != 1 {
		t.Errorf("requests to /items/{id} = %v, want 1", v)
	}
	if v := metric(t, d, "daemon_http_request_duration_seconds", "route", "/"); v != 1 {
		t.Errorf("duration observations for / = %v, want 1", v)
	}

	if err := os.WriteFile(d.configPath, []byte("greeting = 1"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGHUP)
	expect(t, d, "RELOADING", "MONOTONIC_USEC", "STATUS")
	expect(t, d, "READY", "STATUS")
	if v := metric(t, d, "daemon_reloads_total", "result", "failure"); v != 1 {
		t.Errorf("failed reloads = %v, want 1", v)
	}
	if v := metric(t, d, "daemon_last_reload_success"); v != 0 {
		t.Errorf("daemon_last_reload_success = %v after a failed reload, want 0", v)
	}
	if err := os.WriteFile(d.configPath, []byte(`greeting = "two"`), 0o600); err != nil {
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGHUP)
	expect(t, d, "RELOADING", "MONOTONIC_USEC", "STATUS")
	expect(t, d, "READY", "STATUS")
	if v := metric(t, d, "daemon_reloads_total", "result", "success"); v != 1 {
		t.Errorf("successful reloads = %v, want 1", v)
	}
	if v := metric(t, d, "daemon_last_reload_success"); v != 1 {
		t.Errorf("daemon_last_reload_success = %v after a good reload, want 1", v)
	}

	d.signal(t, syscall.SIGTERM)
	expect(t, d, "STOPPING", "STATUS", "EXTEND_TIMEOUT_USEC")
	<-d.done
	if v := metric(t, d, "daemon_ready"); v != 0 {
		t.Errorf("daemon_ready = %v after stopping, want 0", v)
	}
}

// TestRequestsNoRouteTakesAreCounted: what a scanner or a broken client
// sends shows in daemon_http_requests_total, under route="unmatched" and
// never its path: a path the daemon does not have (404), a method its
// path does not take (405), and what net/http refuses before any handler,
// a request it cannot read (400) and headers over max_header_bytes (431).
func TestRequestsNoRouteTakesAreCounted(t *testing.T) {
	d := start(t, options{config: "[http]\nmax_header_bytes = 1024"})
	d.ready(t)
	raw := func(request string) int {
		t.Helper()
		c, err := net.Dial("tcp", d.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(wait))
		if _, err := io.WriteString(c, request); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%.40q: %v", request, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		request string
		code    int
	}{
		{"GET /wp-login.php HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"GET /.git/config HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 405},
		{"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 400}, // TLS on the plain port
		{"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", 431},
	} {
		if got := raw(c.request); got != c.code {
			t.Errorf("%.40q: %d, want %d", c.request, got, c.code)
		}
	}
	for _, c := range []struct {
		method, code string
		want         float64
	}{{"get", "404", 2}, {"delete", "405", 1}, {"unknown", "400", 1}, {"unknown", "431", 1}} {
		if got := metric(t, d, "daemon_http_requests_total", "route", metrics.Unmatched, "method", c.method, "code", c.code); got != c.want {
			t.Errorf("unmatched %s %s: %v, want %v", c.method, c.code, got, c.want)
		}
	}
	families, err := d.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "wp-login") || strings.Contains(l.GetValue(), ".git") {
					t.Errorf("%s has a series for a raw path: %s=%q", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// heldNotifySocket is a notify socket that the test reads only when it
// chooses, so that it can fill the socket's queue and hold the daemon's
// next message in sendmsg(2), as a busy systemd does.
type heldNotifySocket struct {
	addr string
	conn *net.UnixConn
}

func listenHeld(t *testing.T) *heldNotifySocket {
	t.Helper()
	addr := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &heldNotifySocket{addr: addr, conn: conn}
}

func (s *heldNotifySocket) read(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	s.conn.SetReadDeadline(time.Now().Add(wait))
	n, err := s.conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

// fill sends datagrams until the queue is full, and returns how many.
func (s *heldNotifySocket) fill(t *testing.T) int {
	t.Helper()
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: s.addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for n := 0; ; n++ {
		c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Write([]byte("FILLER=1")); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal(err)
			}
			return n
		}
	}
}

// TestServesAndIsReadyBeforeReadyIsSent: by the time READY=1 leaves, the
// daemon serves and /readyz says ready. The READY=1 is held here (the
// notify socket's queue is full) while a client asks; a daemon that began
// serving, or set readiness, only after sending READY=1 would not answer,
// or answer 503.
func TestServesAndIsReadyBeforeReadyIsSent(t *testing.T) {
	sock := listenHeld(t)
	a := newTestApp()
	a.hold = make(chan struct{})
	d := start(t, options{app: a, notify: sock.addr})
	if msg := sock.read(t); msg != "STATUS=Starting" {
		t.Fatalf("first message %q, want STATUS=Starting", msg)
	}
	<-a.starting
	fillers := sock.fill(t)
	close(a.hold) // the start ends; READY=1 now waits in sendmsg(2)
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(d.url + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz while READY=1 is being sent: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /readyz while READY=1 is being sent: %d, want 200", resp.StatusCode)
	}
	for range fillers {
		sock.read(t)
	}
	if msg := sock.read(t); !strings.HasPrefix(msg, "READY=1\n") {
		t.Errorf("after the fillers: %q, want READY=1", msg)
	}
}

// TestStopDuringAReloadIsNotLost: a SIGTERM that comes while a reload runs
// and another SIGHUP waits its turn still stops the daemon. (The config
// file is a FIFO, so that the reload waits for the test to write it.)
func TestStopDuringAReloadIsNotLost(t *testing.T) {
	d := start(t, options{config: `greeting = "a"`})
	d.ready(t)
	os.Remove(d.configPath)
	if err := unix.Mkfifo(d.configPath, 0o600); err != nil {
		t.Fatal(err)
	}
	feed := func() { go os.WriteFile(d.configPath, []byte(`greeting = "b"`), 0o600) }
	d.signal(t, syscall.SIGHUP)
	expect(t, d, "RELOADING", "MONOTONIC_USEC", "STATUS") // the reload now waits on the FIFO
	// Both wait in their channels, as caught signals do, before the
	// reload goes on.
	d.signal(t, syscall.SIGHUP)
	d.signal(t, syscall.SIGTERM)
	feed()
	expect(t, d, "READY", "STATUS")
	for {
		msg := d.notify.NextExcept(t, wait, watchdogPing)
		if strings.HasPrefix(msg, "RELOADING=1") {
			feed()
			continue
		}
		if strings.HasPrefix(msg, "STOPPING=1") {
			break
		}
	}
	d.stopped(t)
}

// TestAHungHealthCheckDoesNotHoldTheStop: a check that hangs past its
// context starves the watchdog, but a stop still says STOPPING=1, drains
// and returns.
func TestAHungHealthCheckDoesNotHoldTheStop(t *testing.T) {
	d := start(t, options{watchdog: 100 * time.Millisecond})
	d.ready(t)
	if msg := d.notify.Next(t, wait); msg != watchdogPing {
		t.Fatalf("got %q, want WATCHDOG=1", msg)
	}
	d.app.hung.Store(true)
	defer close(d.app.release)
	d.notify.NextOrNone(100 * time.Millisecond) // a ping on its way; then the check hangs
	d.signal(t, syscall.SIGTERM)
	expect(t, d, "STOPPING", "STATUS", "EXTEND_TIMEOUT_USEC")
	d.stopped(t)
}

// TestAFailedServerStopsTheDaemonCleanly: when the listener fails under
// it, the daemon goes through the same stop (STOPPING=1, Close) and Run
// returns the error, so that the process exits non-zero and systemd can
// restart it.
func TestAFailedServerStopsTheDaemonCleanly(t *testing.T) {
	d := start(t, options{})
	d.ready(t)
	d.ln.Close()
	expect(t, d, "STOPPING", "STATUS", "EXTEND_TIMEOUT_USEC")
	<-d.done
	if d.err == nil || !strings.Contains(d.err.Error(), "serve") {
		t.Errorf("Run: %v, want the server's error", d.err)
	}
	if n := d.app.closed.Load(); n != 1 {
		t.Errorf("Close called %d times, want once", n)
	}
}

// TestAVsockNotifySocketIsReportedOnce: with NOTIFY_SOCKET naming an
// AF_VSOCK address, the daemon serves as ever, says once that systemd will
// not hear from it, and does not log a failure at every watchdog ping.
func TestAVsockNotifySocketIsReportedOnce(t *testing.T) {
	d := start(t, options{notify: "vsock:2:1234", watchdog: 40 * time.Millisecond})
	for deadline := time.Now().Add(wait); ; time.Sleep(5 * time.Millisecond) {
		if resp, err := http.Get(d.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
	}
	// Several watchdog intervals, each a ping that cannot be sent.
	for v := 0.0; v < 4; v = metric(t, d, "daemon_watchdog_pings_total", "result", "sent") {
		time.Sleep(10 * time.Millisecond)
	}
	logs := d.logs.String()
	if n := strings.Count(logs, "AF_VSOCK is not supported"); n != 1 {
		t.Errorf("the vsock address reported %d times, want once:\n%s", n, logs)
	}
	if strings.Contains(logs, "sd_notify failed") {
		t.Errorf("a failure logged at every message:\n%s", logs)
	}
}

// TestAStoredSocketThatListensElsewhereLeavesTheStore: with the FD store
// (-fd-store), the socket passed back is the one an earlier start opened.
// When the configuration now says another address, the daemon takes that
// socket out of the store (FDSTOREREMOVE=1), listens where it is told and
// stores the new socket; a stored socket it has no use for leaves too.
func TestAStoredSocketThatListensElsewhereLeavesTheStore(t *testing.T) {
	old, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := systemdtest.FreePort(t)
	d := start(t, options{
		config:        fmt.Sprintf("listen = %q", addr),
		listener:      old,
		storeListener: true,
		extra:         systemd.Listeners{"renamed": {unused}},
	})
	expect(t, d, "FDSTOREREMOVE", "FDNAME") // the main socket, elsewhere
	if got := expect(t, d, "FDSTOREREMOVE", "FDNAME"); got["FDNAME"] != "renamed" {
		t.Errorf("removed %q, want the unused socket's name", got["FDNAME"])
	}
	if got := expect(t, d, "FDSTORE", "FDNAME"); got["FDNAME"] != "http" {
		t.Errorf("stored %q, want http", got["FDNAME"])
	}
	stored := d.notify.StoredFile(t, wait)
	defer stored.Close()
	expect(t, d, "STATUS")
	if ready := expect(t, d, "READY", "STATUS"); !strings.Contains(ready["STATUS"], addr) {
		t.Errorf("READY=1 with STATUS=%q, want it serving on the configured %s", ready["STATUS"], addr)
	}
	if code, _ := get(t, "http://"+addr+"/readyz"); code != 200 {
		t.Errorf("GET /readyz on %s: %d", addr, code)
	}
}

// TestAStoredSocketOnTheConfiguredAddressIsKept: the common case, a
// restart with the same configuration, keeps the socket and stores
// nothing anew.
func TestAStoredSocketOnTheConfiguredAddressIsKept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := start(t, options{config: fmt.Sprintf("listen = %q", ln.Addr()), listener: ln, storeListener: true})
	expect(t, d, "STATUS")
	if ready := expect(t, d, "READY", "STATUS"); !strings.Contains(ready["STATUS"], ln.Addr().String()+" (socket-activated)") {
		t.Errorf("READY=1 with STATUS=%q, want the stored socket served", ready["STATUS"])
	}
}

// TestMemoryPressureGivesMemoryBack: each event on $MEMORY_PRESSURE_WATCH
// (here a FIFO, one of the forms systemd.io/PRESSURE allows, so that the
// test can raise one) makes the app release what it can and the daemon
// return memory to the kernel, counted and logged at debug.
func TestMemoryPressureGivesMemoryBack(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "memory.pressure")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	d := start(t, options{config: `log_level = "debug"`, pressure: systemd.MemoryPressure{Watch: fifo}})
	d.ready(t)
	// Opening for writing succeeds once the daemon has the FIFO open for
	// reading.
	var w *os.File
	for deadline := time.Now().Add(wait); w == nil; time.Sleep(5 * time.Millisecond) {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w = f
		} else if time.Now().After(deadline) {
			t.Fatalf("the daemon never opened %s: %v", fifo, err)
		}
	}
	defer w.Close()
	for i := 1; i <= 2; i++ {
		if _, err := w.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(wait); metric(t, d, "daemon_memory_pressure_events_total") < float64(i); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("event %d never counted", i)
			}
		}
	}
	if n := d.app.released.Load(); n != 2 {
		t.Errorf("the app released memory %d times for 2 events", n)
	}
	if n := strings.Count(d.logs.String(), "memory pressure: memory given back to the kernel"); n != 2 {
		t.Errorf("%d debug lines for 2 events:\n%s", n, d.logs)
	}
	// The watch ends with the daemon: once Run has returned, nobody has
	// the FIFO open for reading.
	d.signal(t, syscall.SIGTERM)
	d.stopped(t)
	if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); !errors.Is(err, syscall.ENXIO) {
		if err == nil {
			f.Close()
		}
		t.Errorf("opening the FIFO for writing after Run returned: %v, want ENXIO (no reader left)", err)
	}
}

// TestAMemoryPressureWatchThatCannotBeSetUpIsLoggedOnce: a path that cannot
// be opened, or a trigger the kernel refuses, is one warning, and the daemon
// serves on; /dev/null (MemoryPressureWatch=off) and a trigger the kernel
// takes (a real PSI file) are none.
func TestAMemoryPressureWatchThatCannotBeSetUpIsLoggedOnce(t *testing.T) {
	trigger := base64.StdEncoding.EncodeToString([]byte("some 150000 2000000\x00"))
	for _, tc := range []struct {
		name     string
		pressure systemd.MemoryPressure
		warnings int
	}{
		{"missing", systemd.MemoryPressure{Watch: "/nonexistent/memory.pressure"}, 1},
		{"refused trigger", systemd.MemoryPressure{Watch: "/proc/pressure/memory", Write: base64.StdEncoding.EncodeToString([]byte("bogus"))}, 1},
		{"off", systemd.MemoryPressure{Watch: "/dev/null"}, 0},
		{"a PSI trigger", systemd.MemoryPressure{Watch: "/proc/pressure/memory", Write: trigger}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.HasPrefix(tc.pressure.Watch, "/proc/pressure") {
				if _, err := os.Stat(tc.pressure.Watch); err != nil {
					t.Skipf("this kernel has no PSI: %v", err)
				}
			}
			d := start(t, options{pressure: tc.pressure})
			d.ready(t)
			if code, _ := get(t, d.url+"/"); code != 200 {
				t.Errorf("GET / = %d", code)
			}
			d.signal(t, syscall.SIGTERM)
			d.stopped(t)
			if n := strings.Count(d.logs.String(), "not watching for memory pressure"); n != tc.warnings {
				t.Errorf("%d warnings, want %d:\n%s", n, tc.warnings, d.logs)
			}
		})
	}
}

// TestAConnectionThatGoesIdleMakesRoomForAQueuedOne: when every connection
// is busy a new client waits; once one of them has answered and then waited
// idle on keep-alive for a second, the new client takes its slot, without
// waiting for idle_timeout.
func TestAConnectionThatGoesIdleMakesRoomForAQueuedOne(t *testing.T) {
	d := start(t, options{config: "[http]\nmax_connections = 1\nidle_timeout = \"1m\""})
	d.ready(t)
	addr := strings.TrimPrefix(d.url, "http://")
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	io.WriteString(first, "GET /sleep?d=300ms HTTP/1.1\r\nHost: x\r\n\r\n") // keep-alive
	inFlight(t, d, 1)
	start := time.Now()
	resp, err := (&http.Client{Timeout: wait}).Get(d.url + "/")
	if err != nil {
		t.Fatalf("the queued client: %v", err)
	}
	resp.Body.Close()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the queued client waited %s: longer than the first request, as if for idle_timeout", took)
	}
	first.SetReadDeadline(time.Now().Add(wait))
	if r, err := http.ReadResponse(bufio.NewReader(first), nil); err != nil || r.StatusCode != 200 {
		t.Errorf("the first connection's answer: %v, %v; want it whole before the close", r, err)
	}
}

// TestAStopServesTheConnectionAcceptWasHolding: a client queued past
// max_connections behind a busy connection when the stop begins is
// answered by the drain, not reset.
func TestAStopServesTheConnectionAcceptWasHolding(t *testing.T) {
	d := start(t, options{config: "drain_timeout = \"10s\"\n[http]\nmax_connections = 1"})
	d.ready(t)
	addr := strings.TrimPrefix(d.url, "http://")
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	io.WriteString(first, "GET /sleep?d=500ms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	inFlight(t, d, 1)
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	io.WriteString(second, rawGet)
	time.Sleep(50 * time.Millisecond) // let Accept take it and hold it
	d.signal(t, syscall.SIGTERM)
	second.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(bufio.NewReader(second), nil)
	if err != nil {
		t.Fatalf("the held connection during the stop: %v, want an answer", err)
	}
	resp.Body.Close()
	d.stopped(t)
}

// inFlight waits until n requests are in a handler, as the daemon's gauge
// counts them.
func inFlight(t *testing.T, d *daemon, n float64) {
	t.Helper()
	for deadline := time.Now().Add(wait); metric(t, d, "daemon_http_requests_in_flight") != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never %v requests in flight", n)
		}
	}
}

// TestANotifyOutageIsLoggedOnce: a notify socket that does not answer (not
// there yet, or gone) is logged when the first message fails, not at every
// watchdog ping, and once more when messages go through again.
func TestANotifyOutageIsLoggedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	d := start(t, options{notify: path, watchdog: 40 * time.Millisecond})
	// Several watchdog intervals, each a ping that cannot be sent.
	for deadline := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
		if n, _ := metricIfAny(t, d, "daemon_watchdog_pings_total", "result", "sent"); n >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no watchdog pings")
		}
	}
	if n := strings.Count(d.logs.String(), "sd_notify failed"); n != 1 {
		t.Errorf("the outage logged %d times, want once:\n%s", n, d.logs)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for deadline := time.Now().Add(wait); !strings.Contains(d.logs.String(), "sd_notify works again"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no word that sd_notify works again:\n%s", d.logs)
		}
	}
	if n := strings.Count(d.logs.String(), "sd_notify failed"); n != 1 {
		t.Errorf("sd_notify failed logged %d times, want once", n)
	}
}
