package lifecycle_test

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Step 7, the reload: all of a valid file applies, none of an invalid one,
// and a stop asked for during a reload is not lost.

func TestReloadAppliesNewConfig(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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

// TestStopDuringAReloadIsNotLost: a SIGTERM that comes while a reload runs
// and another SIGHUP waits its turn still stops the daemon. (The config
// file is a FIFO, so that the reload waits for the test to write it.)
func TestStopDuringAReloadIsNotLost(t *testing.T) {
	t.Parallel()
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
