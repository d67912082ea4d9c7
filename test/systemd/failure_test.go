//go:build systemd

package systemd_test

import (
	"strings"
	"testing"
)

// TestAFailedStartShowsWhyInStatus: a daemon whose config is wrong says so
// in STATUS= before it exits, and systemd keeps the text after the unit has
// failed: `systemctl status` shows the file, line and key.
func TestAFailedStartShowsWhyInStatus(t *testing.T) {
	freshStart(t, baseConfig)
	t.Cleanup(func() { writeConfig(t, baseConfig); systemctl(t, "reset-failed", unit) })
	writeConfig(t, "log_level = \"info\"\ndrain_timeout = \"soon\"\n")
	if _, err := tryCommand("systemctl", "restart", unit); err == nil {
		t.Fatal("systemctl restart with an invalid config succeeded")
	}
	status := prop(t, unit, "StatusText")
	for _, want := range []string{"Failed: ", "config.toml:2:", "drain_timeout", `"soon"`} {
		if !strings.Contains(status, want) {
			t.Errorf("StatusText=%q of the failed unit does not say %q", status, want)
		}
	}
	if errno := prop(t, unit, "StatusErrno"); errno != "0" {
		t.Errorf("StatusErrno=%s, want 0: a config error has no errno", errno)
	}
	t.Logf("systemctl status shows: Status: %q", status)
}

// TestConfigErrorAtStartIsNotRestarted: exit status 78 (config error) is in
// RestartPreventExitStatus=, so a daemon that cannot read its config fails
// once and stays failed, instead of restarting until the start limit.
func TestConfigErrorAtStartIsNotRestarted(t *testing.T) {
	freshStart(t, baseConfig)
	t.Cleanup(func() { writeConfig(t, baseConfig); systemctl(t, "reset-failed", unit) })
	writeConfig(t, "log_level = [this is not TOML\n")
	if _, err := tryCommand("systemctl", "restart", unit); err == nil {
		t.Fatalf("systemctl restart with a broken config succeeded")
	}
	if st := prop(t, unit, "ActiveState"); st != "failed" {
		t.Errorf("%s is %s, want failed", unit, st)
	}
	if code := prop(t, unit, "ExecMainStatus"); code != "78" {
		t.Errorf("ExecMainStatus=%s, want 78 (EX_CONFIG)", code)
	}
	if n := propInt(t, unit, "NRestarts"); n != 0 {
		t.Errorf("NRestarts=%d: systemd restarted a daemon whose config is broken", n)
	}
}
