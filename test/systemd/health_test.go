//go:build systemd

package systemd_test

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWatchdogRestartsWedgedDaemon: when the daemon's health check hangs (a
// wedged work loop, a stuck disk: here the health switch, POST
// /debug/health?state=hang), /healthz answers 503 at the check's deadline
// and the daemon stops sending WATCHDOG=1; after WatchdogSec= systemd kills
// it (Result=watchdog) and Restart=on-failure brings it back, healthy.
func TestWatchdogRestartsWedgedDaemon(t *testing.T) {
	pid := freshStart(t, baseConfig)
	restarts := propInt(t, unit, "NRestarts")
	cursor := journalCursor(t)
	watchdog := propDuration(t, unit, "WatchdogUSec")

	if code, body := instrument(t, http.MethodPost, "/debug/health?state=hang"); code != http.StatusNoContent {
		t.Fatalf("POST /debug/health?state=hang = %d %q, want 204", code, body)
	}
	eventually(t, 3*time.Second, "health check failing while wedged", func() (bool, string) {
		code, body := get(t, baseURL(t)+"/healthz")
		return code == http.StatusServiceUnavailable, fmt.Sprintf("GET /healthz = %d %q", code, body)
	})
	eventually(t, 2*watchdog+10*time.Second, "restart by the watchdog", func() (bool, string) {
		n, p := propInt(t, unit, "NRestarts"), propInt(t, unit, "MainPID")
		return n == restarts+1 && p != 0 && p != pid && prop(t, unit, "ActiveState") == "active",
			fmt.Sprintf("NRestarts=%d MainPID=%d (was %d, %d)", n, p, restarts, pid)
	})
	// What systemd itself logged about the unit (UNIT=, from PID 1). Go
	// answers SIGABRT with every goroutine's stack and exit status 2, so
	// systemd sees an exit, not a death by the signal (docs/walkthrough.md
	// shows these lines).
	ms := messages(journal(t, cursor, "_PID=1", "UNIT="+unit))
	for _, want := range []string{"Watchdog timeout", "with signal SIGABRT", "code=exited, status=2/INVALIDARGUMENT", "Failed with result 'watchdog'"} {
		if !containsSubstring(ms, want) {
			t.Errorf("systemd's journal for %s has no %q:\n%s", unit, want, strings.Join(ms, "\n"))
		}
	}
	// Result= is the current run's: the restart's start reset it
	// (service_start() in src/core/service.c), so the watchdog kill shows
	// only in the journal and in NRestarts.
	if r := prop(t, unit, "Result"); r != "success" {
		t.Errorf("Result=%s after the restart, want success (reset by the new start)", r)
	}
	if code, body := get(t, baseURL(t)+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz after the restart = %d %q, want 200 \"ok\": the new process starts healthy", code, body)
	}
}

// TestWatchdogIsDisarmedWhileStopping: once a stop begins, systemd no longer
// expects WATCHDOG=1, and the daemon sends none from STOPPING=1 on, so a
// drain that lasts several WatchdogSec= ends cleanly, bounded only by
// TimeoutStopSec= and EXTEND_TIMEOUT_USEC=. On both 252 and 257,
// service_set_state() (src/core/service.c) calls service_stop_watchdog() for
// every state but START_POST, RUNNING and the RELOAD states, which removes
// the timer and zeroes WatchdogTimestamp; but a WATCHDOG=1 that arrives
// later, in any state, goes to service_reset_watchdog(), which sets the
// timestamp and arms a new timer (TestWatchdogPingWhileStoppingRearmsIt). A
// daemon that pinged while stopping would be killed with SIGABRT mid-drain
// as soon as its pings paused for WatchdogSec=, say because its health
// check failed while it drained.
//
// What this proves: WatchdogTimestampMonotonic, which each ping systemd
// takes sets to the time it took it, is read all through the drain, from
// the moment systemd has the daemon's STOPPING=1 (its StatusText, which
// comes in the same datagram); it must not change, so no ping arrived
// after STOPPING=1. (Against the daemon that still pinged while stopping,
// it moved every WatchdogSec/2 and this test failed.) With a 2s watchdog
// and a 6s request, the request is answered, the stop takes longer than
// the watchdog, the unit ends with Result=success, not watchdog, and the
// journal of that invocation has no watchdog timeout and no SIGABRT.
func TestWatchdogIsDisarmedWhileStopping(t *testing.T) {
	runtimeDropIn(t, unit, "zz-scenario.conf", "[Service]\nWatchdogSec=2s\n")
	pid := freshStart(t, baseConfig)
	watchdog := propDuration(t, unit, "WatchdogUSec")
	if watchdog != 2*time.Second {
		t.Fatalf("WatchdogUSec=%s with the drop-in, want 2s", watchdog)
	}
	slow := 3 * watchdog // well inside drain_timeout (10s) and TimeoutStopSec=
	invocation := prop(t, unit, "InvocationID")
	// While running, pings show: the property is worth watching.
	eventually(t, 2*watchdog, "a watchdog ping while running", func() (bool, string) {
		ts := prop(t, unit, "WatchdogTimestampMonotonic")
		return ts != "0" && ts != "", "WatchdogTimestampMonotonic=" + ts
	})
	cursor := journalCursor(t)
	sent, done := slowRequest(t, pid, slow)

	stopped := make(chan error, 1)
	began := time.Now()
	go func() { _, err := tryCommand("systemctl", "stop", unit); stopped <- err }()
	var (
		samples      int
		baseline, ts string // WatchdogTimestampMonotonic once systemd had STOPPING=1, and now
		changed      []string
		stopErr      error
	)
poll:
	for {
		select {
		case stopErr = <-stopped:
			break poll
		case <-time.After(50 * time.Millisecond):
		}
		p := props(t, unit, "ActiveState", "StatusText", "WatchdogTimestampMonotonic")
		if p["ActiveState"] != "deactivating" || !strings.HasPrefix(p["StatusText"], "Stopping") {
			continue
		}
		samples++
		last := ts
		ts = p["WatchdogTimestampMonotonic"]
		switch {
		case baseline == "":
			baseline = ts
		case ts != last:
			changed = append(changed, fmt.Sprintf("%s (%s into the stop)", ts, time.Since(began).Round(time.Millisecond)))
		}
	}
	took := time.Since(began)
	if stopErr != nil {
		t.Fatalf("systemctl stop: %v", stopErr)
	}
	r := <-done
	t.Logf("systemd %d: stop took %s with WatchdogSec=%s; request answered %s after it was sent; %d samples while draining, WatchdogTimestampMonotonic=%s from STOPPING=1 on",
		systemdVersion(t), took.Round(time.Millisecond), watchdog, time.Since(sent).Round(time.Millisecond), samples, baseline)
	if r.err != nil || r.code != http.StatusOK || !strings.Contains(r.body, "slept") {
		t.Errorf("in-flight request during stop: %d %q %v, want 200 slept", r.code, r.body, r.err)
	}
	if took <= watchdog+watchdog/2 {
		t.Errorf("the stop took %s, not longer than WatchdogSec=%s (and a margin): the drain did not outlast the watchdog", took, watchdog)
	}
	if samples < 10 {
		t.Errorf("only %d samples of the unit while it drained: the check of the watchdog proves nothing", samples)
	}
	if len(changed) > 0 {
		t.Errorf("WatchdogTimestampMonotonic went from %s to %s while stopping: the daemon still sends WATCHDOG=1 after STOPPING=1, which re-arms systemd's watchdog", baseline, strings.Join(changed, ", "))
	}
	if baseline != "0" {
		// A ping systemd took between SIGTERM and STOPPING=1 (the daemon
		// had sent it before it got the signal). It re-arms the watchdog,
		// but the EXTEND_TIMEOUT_USEC= sent with STOPPING=1 pushes that
		// deadline past the drain too (service_extend_timeout()).
		t.Logf("a ping arrived after the stop began and before STOPPING=1 (WatchdogTimestampMonotonic=%s)", baseline)
	}
	for p, want := range map[string]string{"Result": "success", "ActiveState": "inactive", "ExecMainStatus": "0"} {
		if got := prop(t, unit, p); got != want {
			t.Errorf("after stop %s=%s, want %s", p, got, want)
		}
	}
	var bad []string
	command(t, "journalctl", "--sync")
	for _, e := range journal(t, cursor) {
		if e["INVOCATION_ID"] != invocation && e["_SYSTEMD_INVOCATION_ID"] != invocation {
			continue
		}
		if m, _ := e["MESSAGE"].(string); strings.Contains(m, "Watchdog timeout") || strings.Contains(m, "SIGABRT") || strings.Contains(m, "ABRT") {
			bad = append(bad, m)
		}
	}
	if len(bad) > 0 {
		t.Errorf("the journal of invocation %s has a watchdog kill:\n%s", invocation, strings.Join(bad, "\n"))
	}
}

// TestWatchdogPingWhileStoppingRearmsIt pins down the systemd behaviour the
// daemon's stop is built around, with a shell script as the service (a
// transient unit, WatchdogSec=2s) that does one thing on SIGTERM and then
// takes 4s to exit. On 252 and 257 alike, in src/core/service.c:
// service_notify_message() passes WATCHDOG=1 to service_reset_watchdog()
// whatever the unit's state, and service_start_watchdog() creates a new
// timer when service_stop_watchdog() has removed the old one; when it
// expires, service_dispatch_watchdog() logs "Watchdog timeout" and calls
// service_enter_signal(SERVICE_STOP_WATCHDOG, SERVICE_FAILURE_WATCHDOG):
// SIGABRT, Result=watchdog, in the middle of the stop. Two messages undo a
// ping: EXTEND_TIMEOUT_USEC= moves the watchdog's deadline as well as the
// stop timeout (service_extend_timeout()), and WATCHDOG_USEC=0 stops the
// watchdog (service_override_watchdog_timeout(), then
// service_start_watchdog() finds no interval).
func TestWatchdogPingWhileStoppingRearmsIt(t *testing.T) {
	const (
		watchdog = 2 * time.Second
		exitIn   = 4 * time.Second
	)
	script := "/run/" + name + "-scenarios-watchdog-probe.sh"
	result := "/run/" + name + "-scenarios-watchdog-probe.result"
	// systemd-notify sends as its parent, the script, the main process.
	// KillMode=mixed sends SIGTERM to the script alone: with the default,
	// the systemd-notify its trap starts could get the cgroup's SIGTERM.
	// The script then becomes the sleep, so a SIGABRT ends it.
	body := `#!/bin/sh
if [ "$1" = result ]; then echo "$SERVICE_RESULT" >` + result + `; exit 0; fi
on_term() {
	case $1 in
	ping) systemd-notify WATCHDOG=1 ;;
	ping-extend) systemd-notify WATCHDOG=1; systemd-notify STOPPING=1 EXTEND_TIMEOUT_USEC=10000000 ;;
	ping-disarm) systemd-notify WATCHDOG=1; systemd-notify STOPPING=1 WATCHDOG_USEC=0 ;;
	esac
	exec sleep ` + strconv.Itoa(int(exitIn/time.Second)) + `
}
trap 'on_term "$1"' TERM
systemd-notify --ready
while :; do systemd-notify WATCHDOG=1; sleep 0.5 & wait $!; done
`
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(script); os.Remove(result) })
	cases := []struct {
		onTerm, want string
	}{
		{"quiet", "success"},       // no message: disarmed for the whole stop
		{"ping", "watchdog"},       // one ping re-arms it
		{"ping-extend", "success"}, // re-armed, then pushed past the stop
		{"ping-disarm", "success"}, // re-armed, then switched off
	}
	for i, c := range cases {
		t.Run(c.onTerm, func(t *testing.T) {
			probe := fmt.Sprintf("%s-watchdog-probe-%d.service", name, i)
			os.Remove(result)
			tryCommand("systemctl", "reset-failed", probe) // a leftover from an earlier run, if any
			t.Cleanup(func() { tryCommand("systemctl", "reset-failed", probe) })
			command(t, "systemd-run", "--quiet", "--unit="+probe,
				"--property=Type=notify", "--property=NotifyAccess=all", "--property=KillMode=mixed",
				"--property=WatchdogSec="+watchdog.String(), "--property=TimeoutStopSec=30s",
				"--property=ExecStopPost=/bin/sh "+script+" result",
				"/bin/sh", script, c.onTerm)
			cursor := journalCursor(t)
			start := time.Now()
			systemctl(t, "stop", probe)
			took := time.Since(start)
			got, err := os.ReadFile(result)
			if err != nil {
				t.Fatalf("ExecStopPost= left no result: %v", err)
			}
			res := strings.TrimSpace(string(got))
			command(t, "journalctl", "--sync")
			ms := messages(journal(t, cursor, "_PID=1", "UNIT="+probe))
			t.Logf("systemd %d, on SIGTERM %s: stop took %s, SERVICE_RESULT=%s", systemdVersion(t), c.onTerm, took.Round(time.Millisecond), res)
			if res != c.want {
				t.Errorf("SERVICE_RESULT=%s, want %s; systemd said:\n%s", res, c.want, strings.Join(ms, "\n"))
			}
			if timedOut := containsSubstring(ms, "Watchdog timeout"); timedOut != (c.want == "watchdog") {
				t.Errorf("systemd logged a watchdog timeout: %v, want %v:\n%s", timedOut, c.want == "watchdog", strings.Join(ms, "\n"))
			}
			if c.want == "watchdog" && took >= exitIn {
				t.Errorf("the stop took %s: the script was not killed before it exited by itself after %s", took, exitIn)
			}
			if c.want == "success" && took < exitIn {
				t.Errorf("the stop took %s, less than the script's %s", took, exitIn)
			}
		})
	}
}
