package lifecycle_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Step 8, the stop: every connection accepted is answered, within
// drain_timeout, and a second stop signal or a failed server ends it too.

func TestStopDrainsInFlightRequests(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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

// TestAHijackedConnectionCountsUntilItCloses: a connection a handler took
// over (a WebSocket, say) is the daemon's until it closes, for the limit
// and the drain alike: it holds its slot at max_connections, and a stop
// waits for it up to drain_timeout, then closes it.
func TestAHijackedConnectionCountsUntilItCloses(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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

// TestAFailedServerStopsTheDaemonCleanly: when the listener fails under
// it, the daemon goes through the same stop (STOPPING=1, Close) and Run
// returns the error, so that the process exits non-zero and systemd can
// restart it.
func TestAFailedServerStopsTheDaemonCleanly(t *testing.T) {
	t.Parallel()
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

// TestAStopServesTheConnectionAcceptWasHolding: a client queued past
// max_connections behind a busy connection when the stop begins is
// answered by the drain, not reset.
func TestAStopServesTheConnectionAcceptWasHolding(t *testing.T) {
	t.Parallel()
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
	accepted(t, second) // Accept has it, and holds it: no slot is free
	d.signal(t, syscall.SIGTERM)
	second.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(bufio.NewReader(second), nil)
	if err != nil {
		t.Fatalf("the held connection during the stop: %v, want an answer", err)
	}
	resp.Body.Close()
	d.stopped(t)
}
