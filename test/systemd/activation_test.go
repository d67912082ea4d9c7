//go:build systemd

package systemd_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestServiceIsNotStartedAtBoot looks at the system as booted, as TestMain
// found it before any test ran (asBooted). The sockets listen; the service
// has not run yet, because nothing has connected (socket activation,
// systemd.socket(5)).
func TestServiceIsNotStartedAtBoot(t *testing.T) {
	for _, s := range sockets {
		if st := asBooted[s]["ActiveState"] + "/" + asBooted[s]["SubState"]; st != "active/listening" {
			t.Errorf("%s was %s after boot, want active/listening", s, st)
		}
	}
	if st := asBooted[unit]["ActiveState"]; st != "inactive" {
		t.Errorf("%s was %s after boot, want inactive until the first connection", unit, st)
	}
	if ts := asBooted[unit]["InactiveExitTimestampMonotonic"]; ts != "0" {
		t.Errorf("%s had been started since boot (InactiveExitTimestampMonotonic=%s) before the tests began: what connected?", unit, ts)
	}
}

// TestFirstConnectionStartsService: with the service stopped, a connection
// to the socket starts it, and that very connection is answered.
func TestFirstConnectionStartsService(t *testing.T) {
	writeConfig(t, baseConfig)
	systemctl(t, "stop", unit)
	systemctl(t, "reset-failed", unit)
	if st := prop(t, unit, "ActiveState"); st != "inactive" {
		t.Fatalf("%s is %s after systemctl stop", unit, st)
	}

	// The first request is one of the test instruments, which answer only
	// when the config turns them on: the daemon this connection started read
	// the config written above.
	code, body := instrument(t, http.MethodGet, "/debug/sleep?d=0s")
	if code != http.StatusOK || body != "slept 0s\n" {
		t.Fatalf("first GET /debug/sleep?d=0s = %d %q, want 200 \"slept 0s\" (instruments.enabled is set)", code, body)
	}
	if st := prop(t, unit, "ActiveState"); st != "active" {
		t.Fatalf("%s is %s after the first connection, want active", unit, st)
	}
	// The daemon got both sockets, by name.
	pid := propInt(t, unit, "MainPID")
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	var fdnames string
	for _, kv := range strings.Split(string(env), "\x00") {
		if v, ok := strings.CutPrefix(kv, "LISTEN_FDNAMES="); ok {
			fdnames = v
		}
	}
	names := strings.Split(fdnames, ":")
	for _, want := range []string{"http", "metrics"} {
		if !contains(names, want) {
			t.Errorf("LISTEN_FDNAMES=%q has no %q: check FileDescriptorName= in the .socket units", fdnames, want)
		}
	}
}

// TestStartWaitsForReady: Type=notify makes `systemctl start` return only
// once the daemon has sent READY=1, after its warm-up (the instruments'
// start_delay, which stands for an app that loads something before it can
// serve), so the daemon is ready the moment the command returns: no polling
// needed.
func TestStartWaitsForReady(t *testing.T) {
	const delay = 2 * time.Second
	writeConfig(t, baseConfig+fmt.Sprintf("instruments.start_delay = %q\n", delay.String()))
	systemctl(t, "stop", unit)
	systemctl(t, "reset-failed", unit)

	start := time.Now()
	systemctl(t, "start", unit)
	took := time.Since(start)
	if took < delay {
		t.Errorf("systemctl start returned after %s, before the %s warm-up was over: not waiting for READY=1", took, delay)
	}
	// Right away, without waiting: the daemon says it is ready.
	if code, body := get(t, baseURL(t)+"/readyz"); code != http.StatusOK {
		t.Errorf("GET /readyz right after systemctl start = %d %q, want 200", code, body)
	}
	if st := prop(t, unit, "ActiveState") + "/" + prop(t, unit, "SubState"); st != "active/running" {
		t.Errorf("%s is %s, want active/running", unit, st)
	}
	// STATUS= shows in systemctl status and as StatusText.
	if status := prop(t, unit, "StatusText"); status == "" {
		t.Errorf("StatusText is empty: the daemon sent no STATUS=")
	} else {
		t.Logf("StatusText=%s", status)
	}
}
