package lifecycle_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Step 3, the app's start: clients wait in the backlog meanwhile, a stop
// cancels it, a reload waits for its end, a failure ends Run, and a long
// start asks for more time.

// TestConnectionDuringStartIsAnsweredOnlyOnceStarted: the socket listens
// before the app has started, so a client that comes early waits in the
// backlog instead of being refused, and it is served by a started app.
func TestConnectionDuringStartIsAnsweredOnlyOnceStarted(t *testing.T) {
	t.Parallel()
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

// TestStopDuringStartCancelsIt: SIGTERM while the app starts (a `systemctl
// stop` during a long warm-up) cancels Start's context, says STOPPING=1,
// closes the app and returns nil: a clean exit, not death by signal.
func TestStopDuringStartCancelsIt(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
	d, a := startHeld(t, `greeting = "old"`)
	if err := os.WriteFile(d.configPath, []byte(`greeting = "new"`), 0o600); err != nil {
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGHUP)
	// The signal is taken before Start returns: wait for the log line.
	eventually(t, "took the reload while starting", func() bool {
		return strings.Contains(d.logs.String(), "reload requested while starting")
	})
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
	t.Parallel()
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
	t.Parallel()
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
