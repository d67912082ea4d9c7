package lifecycle_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/daemon/internal/metrics"
)

// Step 4, serving: what every route gets (panic recovery, metrics), and
// what a request no route takes is counted as.

func TestPanicInAHandlerIsRecoveredLoggedAndCounted(t *testing.T) {
	t.Parallel()
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

func TestMetricsFollowTheLifecycle(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
