//go:build systemd

package systemd_test

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTheRunAfterAFailureLogsAtDebug: with RestartMode=debug (systemd ≥
// 257), the restart that follows a failure runs with DEBUG_INVOCATION=1,
// and the daemon then logs at debug level (each sd_notify message it
// sends), although the config says info. The first run does not.
func TestTheRunAfterAFailureLogsAtDebug(t *testing.T) {
	runtimeDropIn(t, unit, "zz-debug.conf", "[Service]\nRestartMode=debug\nRestartSec=100ms\n")
	if mode := prop(t, unit, "RestartMode"); mode != "debug" {
		t.Skipf("systemd %d: RestartMode=%q: no RestartMode=debug here, so no DEBUG_INVOCATION (systemd ≥ 257)", systemdVersion(t), mode)
	}
	pid := freshStart(t, strings.Replace(baseConfig, `log_level = "debug"`, `log_level = "info"`, 1))
	if v, ok := environ(t, pid)["DEBUG_INVOCATION"]; ok {
		t.Errorf("the first run has DEBUG_INVOCATION=%s", v)
	}
	restarts := propInt(t, unit, "NRestarts")
	cursor := journalCursor(t)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil { // a crash
		t.Fatal(err)
	}
	pid = waitRestarted(t, unit, restarts, pid, 30*time.Second)
	if v := environ(t, pid)["DEBUG_INVOCATION"]; v != "1" {
		t.Errorf("the run after the failure has DEBUG_INVOCATION=%q, want 1", v)
	}
	// The daemon's own entries (systemd logs at debug for the unit too,
	// from the same PID before the exec: that is what LogLevelMax=debug does).
	var debug []map[string]any
	eventually(t, 10*time.Second, "the restarted daemon's debug line for READY=1", func() (bool, string) {
		debug = journal(t, cursor, "_PID="+strconv.Itoa(pid), "SYSLOG_IDENTIFIER="+name, "PRIORITY=7", "MESSAGE=sd_notify")
		for _, e := range debug {
			if m, _ := e["SENT"].(string); strings.HasPrefix(m, "READY=1") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d sd_notify debug entries, none for READY=1", len(debug))
	})
	t.Logf("the restarted daemon logged %d sd_notify messages at debug", len(debug))
}
