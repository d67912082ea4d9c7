package lifecycle_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"example.com/daemon/internal/app"
	"example.com/daemon/internal/config"
	"example.com/daemon/internal/lifecycle"
	"example.com/daemon/internal/metrics"
	"example.com/daemon/internal/systemd"
	"example.com/daemon/internal/systemd/systemdtest"
)

// These tests run the real lifecycle with the real example app, a real
// notify socket and real signals sent to the test process itself (so they
// do not run in parallel).

const wait = 10 * time.Second

type daemon struct {
	registry   *prometheus.Registry
	notify     *systemdtest.NotifySocket
	url        string
	app        *app.App
	configPath string
	done       chan struct{} // closed when Run returned, with err set
	err        error
}

type options struct {
	config   string        // config.toml content
	watchdog time.Duration // WATCHDOG_USEC
	// listener is the socket systemd passes in; nil for a new one.
	listener net.Listener
}

func start(t *testing.T, o options) *daemon {
	t.Helper()
	dir := t.TempDir()
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(o.config), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	d0 := metrics.New(reg, metrics.Build{})
	a, err := app.New(logger, cfg, d0, dir)
	if err != nil {
		t.Fatal(err)
	}
	// The socket systemd would pass in: already listening.
	ln := o.listener
	if ln == nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	d := &daemon{
		registry:   reg,
		notify:     systemdtest.Listen(t, false),
		url:        "http://" + ln.Addr().String(),
		app:        a,
		configPath: configPath,
		done:       make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(d.done)
		d.err = lifecycle.Run(ctx, lifecycle.Daemon{
			Logger:    logger,
			Notifier:  systemd.NewNotifier(d.notify.Addr),
			Listeners: systemd.Listeners{"http": {ln}},
			Metrics:   d0,
			HTTP:      cfg.HTTP,
			Watchdog:  o.watchdog,
			App:       a,
			Reload: func() error {
				next, err := config.Load(configPath)
				if err != nil {
					return err
				}
				cfg = next
				a.Apply(next)
				return nil
			},
			DrainTimeout: func() time.Duration { return cfg.DrainTimeout.Duration },
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

// signal sends sig to this process, where Run is listening for it.
func signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), sig); err != nil {
		t.Fatal(err)
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
	msg := d.notify.NextExcept(t, wait, systemd.Watchdog)
	if got := systemdtest.Keys(msg); !slices.Equal(got, keys) {
		t.Fatalf("notify message %q: variables %v, want %v", msg, got, keys)
	}
	return systemdtest.Fields(msg)
}

func TestNotifiesReadyReloadingReadyStoppingInOrder(t *testing.T) {
	d := start(t, options{config: `greeting = "one"`})
	expect(t, d, "STATUS")
	ready := expect(t, d, "READY", "STATUS")
	if !strings.Contains(ready["STATUS"], "Serving on 127.0.0.1:") {
		t.Errorf("STATUS=%q does not say what is served", ready["STATUS"])
	}

	before := monotonicUsec(t)
	signal(t, syscall.SIGHUP)
	reloading := expect(t, d, "RELOADING", "MONOTONIC_USEC", "STATUS")
	after := monotonicUsec(t)
	// systemd compares MONOTONIC_USEC with its own CLOCK_MONOTONIC reading
	// taken when it sent SIGHUP: it must be that clock, in microseconds.
	if usec, err := strconv.ParseInt(reloading["MONOTONIC_USEC"], 10, 64); err != nil || usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC=%s, want CLOCK_MONOTONIC µs between %d and %d", reloading["MONOTONIC_USEC"], before, after)
	}
	expect(t, d, "READY", "STATUS")

	signal(t, syscall.SIGTERM)
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

func TestServesTheInstantReadyArrives(t *testing.T) {
	d := start(t, options{config: "greeting = \"hi\"\nstart_delay = \"200ms\""})
	expect(t, d, "STATUS")
	// During the start delay the app is not ready: connections wait.
	expect(t, d, "READY", "STATUS")
	if code, body := get(t, d.url+"/"); code != 200 || body != "hi\n" {
		t.Errorf("GET / right after READY=1: %d %q", code, body)
	}
	if code, _ := get(t, d.url+"/readyz"); code != 200 {
		t.Errorf("GET /readyz right after READY=1: %d, want 200", code)
	}
}

func TestConnectionsBeforeReadyAreServedOnceStarted(t *testing.T) {
	d := start(t, options{config: "greeting = \"hi\"\nstart_delay = \"300ms\""})
	expect(t, d, "STATUS")
	// The socket listens before the app has started: a client that comes
	// early waits in the backlog instead of being refused.
	code, body := get(t, d.url+"/")
	if code != 200 || body != "hi\n" {
		t.Errorf("GET / during start: %d %q", code, body)
	}
	expect(t, d, "READY", "STATUS")
}

func TestReloadAppliesNewConfig(t *testing.T) {
	d := start(t, options{config: `greeting = "old"`})
	expect(t, d, "STATUS")
	expect(t, d, "READY", "STATUS")
	if err := os.WriteFile(d.configPath, []byte(`greeting = "new"`), 0o600); err != nil {
		t.Fatal(err)
	}
	signal(t, syscall.SIGHUP)
	expect(t, d, "RELOADING", "MONOTONIC_USEC", "STATUS")
	expect(t, d, "READY", "STATUS")
	if _, body := get(t, d.url+"/"); body != "new\n" {
		t.Errorf("GET / after reload = %q, want the new greeting", body)
	}
}

func TestReloadKeepsOldConfigWhenNewOneIsInvalid(t *testing.T) {
	d := start(t, options{config: `greeting = "old"`})
	expect(t, d, "STATUS")
	expect(t, d, "READY", "STATUS")
	if err := os.WriteFile(d.configPath, []byte("greeting = \"new\"\nlog_level = \"loud\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	signal(t, syscall.SIGHUP)
	expect(t, d, "RELOADING", "MONOTONIC_USEC", "STATUS")
	// READY=1 still ends the reload: the daemon serves, with the old config.
	ready := expect(t, d, "READY", "STATUS")
	for _, want := range []string{"reload failed", d.configPath + ":2:", "log_level", "loud"} {
		if !strings.Contains(ready["STATUS"], want) {
			t.Errorf("STATUS=%q does not contain %q", ready["STATUS"], want)
		}
	}
	if _, body := get(t, d.url+"/"); body != "old\n" {
		t.Errorf("GET / after a failed reload = %q, want the old greeting", body)
	}
}

func TestWatchdogPingsAtHalfTheInterval(t *testing.T) {
	const interval = 400 * time.Millisecond
	d := start(t, options{watchdog: interval})
	expect(t, d, "STATUS")
	expect(t, d, "READY", "STATUS")
	last := time.Now()
	var gaps []time.Duration
	for range 5 {
		if msg := d.notify.Next(t, wait); msg != systemd.Watchdog {
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
	d := start(t, options{config: "debug_endpoints = true", watchdog: interval})
	expect(t, d, "STATUS")
	expect(t, d, "READY", "STATUS")
	if msg := d.notify.Next(t, wait); msg != systemd.Watchdog {
		t.Fatalf("got %q, want WATCHDOG=1 while healthy", msg)
	}
	resp, err := http.Post(d.url+"/debug/wedge", "", nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /debug/wedge: %v %v", resp, err)
	}
	resp.Body.Close()
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
}

func TestStopDrainsInFlightRequests(t *testing.T) {
	d := start(t, options{config: "debug_endpoints = true\ndrain_timeout = \"5s\""})
	expect(t, d, "STATUS")
	expect(t, d, "READY", "STATUS")

	slow := startRequest(t, d, d.url+"/debug/sleep?d=500ms")

	signal(t, syscall.SIGTERM)
	expect(t, d, "STOPPING", "STATUS", "EXTEND_TIMEOUT_USEC")
	// The slow request's connection is still open.
	if v := metric(t, d, "daemon_draining_connections"); v < 1 {
		t.Errorf("daemon_draining_connections = %v during the drain, want ≥ 1", v)
	}
	// From the moment stopping begins, readiness is withdrawn.
	rec := httptest.NewRecorder()
	d.app.Handler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz after STOPPING=1: %d, want 503", rec.Code)
	}
	select {
	case <-d.done:
		t.Fatalf("Run returned (%v) before the in-flight request finished", d.err)
	case r := <-slow:
		if r.err != nil || r.code != 200 || r.body != "slept 500ms\n" {
			t.Errorf("in-flight request during stop: %d %q %v", r.code, r.body, r.err)
		}
	}
	<-d.done
	if d.err != nil {
		t.Errorf("Run after drain: %v", d.err)
	}
}

func TestStopGivesUpOnRequestsPastTheDrainTimeout(t *testing.T) {
	d := start(t, options{config: "debug_endpoints = true\ndrain_timeout = \"100ms\""})
	expect(t, d, "STATUS")
	expect(t, d, "READY", "STATUS")
	slow := startRequest(t, d, d.url+"/debug/sleep?d=1h")
	signal(t, syscall.SIGTERM)
	select {
	case <-d.done:
		if d.err != nil {
			t.Errorf("Run: %v", d.err)
		}
	case <-time.After(wait):
		t.Fatal("Run still draining long after drain_timeout")
	}
	if v := metric(t, d, "daemon_draining_connections"); v != 0 {
		t.Errorf("daemon_draining_connections = %v after the stop, want 0", v)
	}
	if r := <-slow; r.err == nil {
		t.Errorf("a request past the drain timeout completed (%d %q); want its connection closed", r.code, r.body)
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
		signal(t, syscall.SIGTERM)
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

// TestMaxConnectionsQueuesTheRest: past max_connections the daemon
// accepts no more connections. The next client waits in the socket's
// backlog, costing the daemon nothing, and is served once a connection
// closes.
func TestMaxConnectionsQueuesTheRest(t *testing.T) {
	d := start(t, options{config: "[http]\nmax_connections = 1"})
	expect(t, d, "STATUS")
	expect(t, d, "READY", "STATUS")
	addr := strings.TrimPrefix(d.url, "http://")
	// The one connection allowed: it has sent nothing yet. The kernel
	// hands connections to accept(2) in the order they arrived, so it is
	// the one the daemon takes.
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if _, err := io.WriteString(second, rawGet); err != nil {
		t.Fatal(err)
	}
	second.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := second.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection past max_connections was answered (%d bytes, %v) while the first was open", n, err)
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
	signal(t, syscall.SIGTERM)
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
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
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
	get(t, d.url+"/notes/nothing-here")
	if v := metric(t, d, "daemon_http_requests_total", "route", "/{$}", "method", "get", "code", "200"); v != 1 {
		t.Errorf("requests to / = %v, want 1", v)
	}
	// The route pattern, never the raw path: series stay bounded.
	if v := metric(t, d, "daemon_http_requests_total", "route", "/notes/{name}", "code", "404"); v != 1 {
		t.Errorf("requests to /notes/{name} = %v, want 1", v)
	}
	if v := metric(t, d, "daemon_http_request_duration_seconds", "route", "/{$}"); v != 1 {
		t.Errorf("duration observations for / = %v, want 1", v)
	}

	if err := os.WriteFile(d.configPath, []byte("greeting = 1"), 0o600); err != nil {
		t.Fatal(err)
	}
	signal(t, syscall.SIGHUP)
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
	signal(t, syscall.SIGHUP)
	expect(t, d, "RELOADING", "MONOTONIC_USEC", "STATUS")
	expect(t, d, "READY", "STATUS")
	if v := metric(t, d, "daemon_reloads_total", "result", "success"); v != 1 {
		t.Errorf("successful reloads = %v, want 1", v)
	}
	if v := metric(t, d, "daemon_last_reload_success"); v != 1 {
		t.Errorf("daemon_last_reload_success = %v after a good reload, want 1", v)
	}

	signal(t, syscall.SIGTERM)
	expect(t, d, "STOPPING", "STATUS", "EXTEND_TIMEOUT_USEC")
	<-d.done
	if v := metric(t, d, "daemon_ready"); v != 0 {
		t.Errorf("daemon_ready = %v after stopping, want 0", v)
	}
}

func TestSecondStopSignalEndsTheDrainAtOnce(t *testing.T) {
	d := start(t, options{config: "debug_endpoints = true\ndrain_timeout = \"1h\""})
	expect(t, d, "STATUS")
	expect(t, d, "READY", "STATUS")
	slow := startRequest(t, d, d.url+"/debug/sleep?d=1h")
	signal(t, syscall.SIGTERM)
	expect(t, d, "STOPPING", "STATUS", "EXTEND_TIMEOUT_USEC")
	select {
	case <-d.done:
		t.Fatal("Run returned before the drain timeout with a request in flight")
	case <-time.After(100 * time.Millisecond):
	}
	signal(t, syscall.SIGINT)
	select {
	case <-d.done:
		if d.err != nil {
			t.Errorf("Run: %v", d.err)
		}
	case <-time.After(wait):
		t.Fatal("Run still draining after a second stop signal")
	}
	if r := <-slow; r.err == nil {
		t.Errorf("the in-flight request completed (%d); want its connection closed", r.code)
	}
}
