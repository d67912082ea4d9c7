//go:build systemd

package systemd_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// failureUnit is the notice the package's OnFailure= drop-ins start for a
// failed unit u: daemon-failure@daemon.service.service.
func failureUnit(u string) string { return name + "-failure@" + u + ".service" }

// noticeID is the MESSAGE_ID of the failure notice's journal entries, read
// from the installed template unit, so that the test and the unit cannot
// disagree.
func noticeID(t testing.TB) string {
	t.Helper()
	m := regexp.MustCompile(`MESSAGE_ID=([0-9a-f]{32})`).FindStringSubmatch(systemctl(t, "cat", name+"-failure@.service"))
	if m == nil {
		t.Fatalf("%s-failure@.service names no MESSAGE_ID", name)
	}
	return m[1]
}

// notices returns the failure notices for unit written after cursor.
func notices(t testing.TB, cursor, unit string) []map[string]any {
	t.Helper()
	command(t, "journalctl", "--sync")
	return journal(t, cursor, "MESSAGE_ID="+noticeID(t), "FAILED_UNIT="+unit)
}

// waitNotice waits for the failure notice of unit written after cursor.
func waitNotice(t testing.TB, cursor, unit string, limit time.Duration) map[string]any {
	t.Helper()
	var found []map[string]any
	eventually(t, limit, "the failure notice of "+unit, func() (bool, string) {
		found = notices(t, cursor, unit)
		return len(found) > 0, fmt.Sprintf("%s is %s", failureUnit(unit), prop(t, failureUnit(unit), "ActiveState"))
	})
	if len(found) > 1 {
		t.Errorf("%d failure notices for one failure: %v", len(found), messages(found))
	}
	return found[0]
}

// fieldValues returns the values of a field that may occur more than once
// in an entry: journalctl -o json gives one as a string, several as an array.
func fieldValues(e map[string]any, field string) []string {
	switch v := e[field].(type) {
	case string:
		return []string{v}
	case []any:
		var vs []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				vs = append(vs, s)
			}
		}
		return vs
	}
	return nil
}

// TestAFailureForGoodLeavesAFailureNotice: a config error fails the daemon
// for good (exit 78, RestartPreventExitStatus=), the unit enters the failed
// state, and systemd starts the notice with OnFailure= (on-failure.conf),
// on every version. The notice's journal entry names the unit, its result
// and exit status, says it stays failed, carries the failed run's last log
// lines (the daemon's error among them), and `journalctl -u` shows it with
// the unit's own lines.
func TestAFailureForGoodLeavesAFailureNotice(t *testing.T) {
	freshStart(t, baseConfig)
	t.Cleanup(func() { writeConfig(t, baseConfig); systemctl(t, "reset-failed", unit) })
	cursor := journalCursor(t)
	writeConfig(t, "log_level = [this is not TOML\n")
	if _, err := tryCommand("systemctl", "restart", unit); err == nil {
		t.Fatal("systemctl restart with a broken config succeeded")
	}
	e := waitNotice(t, cursor, unit, 15*time.Second)
	t.Logf("systemd %d: %s", systemdVersion(t), e["MESSAGE"])
	for field, want := range map[string]string{
		"SERVICE_RESULT": "exit-code", "EXIT_CODE": "exited", "EXIT_STATUS": "78",
		"UNIT_STATE": "failed/failed", "OBJECT_SYSTEMD_UNIT": unit, "PRIORITY": "3", "_UID": "0",
	} {
		if got, _ := e[field].(string); got != want {
			t.Errorf("the notice's %s=%q, want %q", field, got, want)
		}
	}
	if inv, _ := e["FAILED_INVOCATION_ID"].(string); len(inv) != 32 {
		t.Errorf("the notice's FAILED_INVOCATION_ID=%q, want the failed run's invocation ID", inv)
	}
	logs := fieldValues(e, "LOG_LINE")
	if !containsSubstring(logs, configPath) {
		t.Errorf("the notice's LOG_LINE fields do not have the daemon's error naming %s:\n%s", configPath, strings.Join(logs, "\n"))
	}
	// journalctl -u matches OBJECT_SYSTEMD_UNIT= in entries from UID 0.
	var shown bool
	for _, line := range strings.Split(command(t, "journalctl", "-u", unit, "-n", "50", "-o", "cat", "--no-pager"), "\n") {
		shown = shown || line == e["MESSAGE"]
	}
	if !shown {
		t.Errorf("journalctl -u %s does not show the notice %q", unit, e["MESSAGE"])
	}
}

// TestWhetherARestartLeavesAFailureNoticeDependsOnTheVersion: a watchdog
// kill that Restart= restarts from. systemd 252 marks the failed state
// UNIT_NOTIFY_WILL_AUTO_RESTART and unit_notify() (src/core/unit.c) skips
// OnFailure= for it: no notice, and the unit never looks failed. From 254
// on, service_enter_dead() (src/core/service.c) passes through
// SERVICE_FAILED_BEFORE_AUTO_RESTART, a failed state, unless
// RestartMode=direct, and unit_notify() no longer asks whether a restart
// follows: a notice at every failure, with the unit already restarting.
func TestWhetherARestartLeavesAFailureNoticeDependsOnTheVersion(t *testing.T) {
	pid := freshStart(t, baseConfig)
	restarts := propInt(t, unit, "NRestarts")
	watchdog := propDuration(t, unit, "WatchdogUSec")
	cursor := journalCursor(t)
	if code, body := instrument(t, http.MethodPost, "/debug/health?state=hang"); code != http.StatusNoContent {
		t.Fatalf("POST /debug/health?state=hang = %d %q, want 204", code, body)
	}
	waitRestarted(t, unit, restarts, pid, 2*watchdog+10*time.Second)
	v := systemdVersion(t)
	command(t, "journalctl", "--sync")
	// PID 1 logs this as it queues the OnFailure= job, in the same step as
	// the state change, so before the restart that has happened since.
	triggered := containsSubstring(messages(journal(t, cursor, "_PID=1", "UNIT="+unit)), "Triggering OnFailure= dependencies")
	if v < 254 {
		if triggered {
			t.Errorf("systemd %d triggered OnFailure= for a failure Restart= restarted from", v)
		}
		if ns := notices(t, cursor, unit); len(ns) > 0 {
			t.Errorf("systemd %d: a failure notice for a restarted unit: %v", v, messages(ns))
		}
		t.Logf("systemd %d: watchdog kill and restart; OnFailure= not triggered, no notice", v)
		return
	}
	if !triggered {
		t.Errorf("systemd %d did not log that it triggered OnFailure= for the watchdog kill", v)
	}
	e := waitNotice(t, cursor, unit, 15*time.Second)
	if r, _ := e["SERVICE_RESULT"].(string); r != "watchdog" {
		t.Errorf("the notice's SERVICE_RESULT=%q, want watchdog ($MONITOR_SERVICE_RESULT, the failed run's)", r)
	}
	if s, _ := e["UNIT_STATE"].(string); s == "failed/failed" {
		t.Errorf("the notice's UNIT_STATE=%q: the unit was restarting, not failed", s)
	}
	t.Logf("systemd %d: watchdog kill and restart; OnFailure= triggered: %s", v, e["MESSAGE"])
}
