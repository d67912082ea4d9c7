//go:build systemd

package systemd_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestStopFinishesInFlightRequests: systemctl stop sends SIGTERM; the daemon
// stops accepting, finishes the request it is serving (drain) and exits 0,
// well inside TimeoutStopSec=.
func TestStopFinishesInFlightRequests(t *testing.T) {
	pid := freshStart(t, baseConfig)
	const slow = 3 * time.Second
	sent, done := slowRequest(t, pid, slow)

	systemctl(t, "stop", unit)
	stopped := time.Since(sent)
	r := <-done
	if r.err != nil || r.code != http.StatusOK || !strings.Contains(r.body, "slept") {
		t.Fatalf("in-flight request during stop: %d %q %v, want 200 slept", r.code, r.body, r.err)
	}
	if stopped < slow-200*time.Millisecond {
		t.Errorf("systemctl stop returned %s after the request was sent, before the %s request could finish", stopped, slow)
	}
	for p, want := range map[string]string{"Result": "success", "ActiveState": "inactive", "ExecMainStatus": "0"} {
		if got := prop(t, unit, p); got != want {
			t.Errorf("after stop %s=%s, want %s", p, got, want)
		}
	}
}

// slowResult is how a request ended.
type slowResult struct {
	code int
	body string
	err  error
}

// slowRequest sends GET /debug/sleep?d=slow (the test instrument that takes
// as long as asked, so with the API token) on a connection of its own and
// returns once the daemon (pid) holds that connection, with the time the
// request was sent and a channel that gets its result. Until the daemon has
// accepted it, a connection waits in the socket's backlog, and a stop then
// would leave it there to start a new daemon.
func slowRequest(t *testing.T, pid int, slow time.Duration) (time.Time, <-chan slowResult) {
	t.Helper()
	local := make(chan string, 1)
	done := make(chan slowResult, 1)
	url := fmt.Sprintf("%s/debug/sleep?d=%s", baseURL(t), slow)
	auth := "Bearer " + apiToken(t)
	go func() {
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { local <- i.Conn.LocalAddr().String() }}
		ctx := httptrace.WithClientTrace(context.Background(), trace)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", auth)
		resp, err := (&http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			done <- slowResult{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		done <- slowResult{code: resp.StatusCode, body: string(body), err: err}
	}()
	var port string
	select {
	case addr := <-local:
		port = portOf(addr)
	case r := <-done:
		t.Fatalf("GET %s ended before it was sent: %d %v", url, r.code, r.err)
	}
	sent := time.Now()
	eventually(t, 3*time.Second, "daemon holding the slow request's connection", func() (bool, string) {
		out, _ := tryCommand("ss", "-Htnp", "state", "established", "( dport = :"+port+" )")
		return strings.Contains(out, fmt.Sprintf("pid=%d,", pid)), "ss: " + out
	})
	return sent, done
}

// TestRestartsUnderLoadLoseNoRequests: a client sends requests without a
// pause through five `systemctl restart`s and one watchdog kill, and none
// fails. Three things make that so: systemd holds the listening socket, so
// connections made while no daemon runs wait in its backlog; the daemon
// drains what it accepted before it exits; and the client (Go's http
// package, like most) resends an idempotent request when a kept-alive
// connection closes under it, which is all a watchdog kill (SIGABRT, no
// drain) costs. The requests are the test instrument that sleeps for
// nothing, GET /debug/sleep?d=0s: it answers whatever the health check says,
// and the watchdog kill comes of a health check made to hang, under which
// /healthz answers 503.
func TestRestartsUnderLoadLoseNoRequests(t *testing.T) {
	pid := freshStart(t, baseConfig)
	url := baseURL(t)
	auth := "Bearer " + apiToken(t)

	var ok, failed atomic.Int64
	var errs sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// A new request each time, without a body: one that
				// Go's client may resend.
				req, _ := http.NewRequest(http.MethodGet, url+"/debug/sleep?d=0s", nil)
				req.Header.Set("Authorization", auth)
				resp, err := client.Do(req)
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || string(b) != "slept 0s\n" {
						err = fmt.Errorf("%d %q", resp.StatusCode, b)
					}
				}
				if err != nil {
					failed.Add(1)
					errs.Store(err.Error(), true)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	stopLoad := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
		// Kept-alive connections the load left open would make the next
		// test's stop wait for them (the daemon's drain).
		client.CloseIdleConnections()
	})
	t.Cleanup(stopLoad)

	for i := 1; i <= 5; i++ {
		before := ok.Load()
		// See freshStart about reset-failed and the start limit.
		systemctl(t, "reset-failed", unit)
		systemctl(t, "restart", unit)
		newPID := propInt(t, unit, "MainPID")
		if newPID == pid {
			t.Fatalf("restart %d: MainPID still %d", i, pid)
		}
		pid = newPID
		// Let the load reach the new daemon before the next restart.
		eventually(t, 10*time.Second, "requests served after restart", func() (bool, string) {
			return ok.Load() > before+20, fmt.Sprintf("%d requests served", ok.Load()-before)
		})
	}

	restarts := propInt(t, unit, "NRestarts")
	watchdog := propDuration(t, unit, "WatchdogUSec")
	if code, body := instrument(t, http.MethodPost, "/debug/health?state=hang"); code != http.StatusNoContent {
		t.Fatalf("POST /debug/health?state=hang = %d %q, want 204", code, body)
	}
	eventually(t, 2*watchdog+10*time.Second, "restart by the watchdog", func() (bool, string) {
		n := propInt(t, unit, "NRestarts")
		return n == restarts+1 && prop(t, unit, "ActiveState") == "active", fmt.Sprintf("NRestarts=%d", n)
	})
	before := ok.Load()
	eventually(t, 10*time.Second, "requests served after the watchdog restart", func() (bool, string) {
		return ok.Load() > before+20, fmt.Sprintf("%d requests served", ok.Load()-before)
	})
	stopLoad()

	t.Logf("%d requests served, %d failed", ok.Load(), failed.Load())
	if n := failed.Load(); n > 0 {
		var list []string
		errs.Range(func(k, _ any) bool { list = append(list, k.(string)); return true })
		t.Errorf("%d requests failed through the restarts:\n%s", n, strings.Join(list, "\n"))
	}
}

// TestRestartNewClientWait measures how long a new client waits during
// `systemctl restart`: a figure for docs/performance.md, not a goal. A
// restart stops the daemon before it starts the next, and the socket,
// which systemd holds, keeps a new connection in its backlog meanwhile; so
// with a request in flight a new client waits out the old daemon's drain
// as well. A prober opens a new connection for each GET /healthz, one after
// the other, from before the restart until one is answered by the new
// daemon; the figure is the slowest. None of them may fail.
func TestRestartNewClientWait(t *testing.T) {
	for _, c := range []struct {
		name     string
		inFlight time.Duration // 0: none
	}{
		{"no request in flight", 0},
		{"a 5s request in flight", 5 * time.Second},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			pid := freshStart(t, baseConfig)
			url := baseURL(t) + "/healthz"
			var slow <-chan slowResult
			if c.inFlight > 0 {
				_, slow = slowRequest(t, pid, c.inFlight)
			}

			// The prober keeps the slowest wait and the start of the last
			// probe answered; the channel-free bookkeeping keeps it probing
			// however long the restart takes.
			var worst, lastStart atomic.Int64
			var n, failed atomic.Int64
			var errs sync.Map
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				// A new connection each time: a kept-alive one would be
				// the old daemon's, drained.
				c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
				for {
					select {
					case <-stop:
						return
					default:
					}
					t0 := time.Now()
					resp, err := c.Get(url)
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							err = fmt.Errorf("GET /healthz: %s", resp.Status)
						}
					}
					wait := time.Since(t0)
					n.Add(1)
					if err != nil {
						failed.Add(1)
						errs.Store(err.Error(), true)
					}
					if int64(wait) > worst.Load() {
						worst.Store(int64(wait))
					}
					lastStart.Store(t0.UnixNano())
				}
			}()
			t.Cleanup(func() {
				select {
				case <-stop:
				default:
					close(stop)
				}
				wg.Wait()
			})
			eventually(t, 5*time.Second, "the prober answered", func() (bool, string) { return n.Load() > 0, "" })

			t0 := time.Now()
			systemctl(t, "restart", unit)
			restart := time.Since(t0)
			if newPID := propInt(t, unit, "MainPID"); newPID == pid {
				t.Fatalf("restart: MainPID still %d", pid)
			}
			// Until a probe sent after the restart returned has its
			// answer: every connection queued in the backlog has been
			// taken by then.
			after := time.Now().UnixNano()
			eventually(t, time.Minute, "a new client answered after the restart", func() (bool, string) {
				return lastStart.Load() > after, ""
			})
			close(stop)
			wg.Wait()
			errs.Range(func(k, _ any) bool { t.Errorf("a new client during the restart: %v", k); return true })
			if slow != nil {
				if r := <-slow; r.err != nil || r.code != http.StatusOK {
					t.Errorf("the request in flight during the restart: %d %q %v, want 200", r.code, r.body, r.err)
				}
			}
			t.Logf("systemd %d, %s: worst wait of a new client %s (systemctl restart took %s; %d new clients, %d failed)",
				systemdVersion(t), c.name, time.Duration(worst.Load()).Round(time.Millisecond), restart.Round(time.Millisecond), n.Load(), failed.Load())
		})
	}
}
