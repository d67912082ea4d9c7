//go:build systemd

// The example app's part in the package: the greeting its packaged config
// sets, and its notes through an upgrade. They are the example's, and leave
// with it (make drop-example).

package systemd_test

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestThePackagedConfigGreets: the config the package installs sets the
// example's greeting, and a daemon started on that very file (taken out of
// the package, not the copy the scenarios rewrite) answers GET / with it.
func TestThePackagedConfigGreets(t *testing.T) {
	if packagePath == "" {
		t.Fatal("PACKAGE is not set: run.sh passes the package it installed")
	}
	dir := t.TempDir()
	command(t, "dpkg-deb", "--extract", packagePath, dir)
	packaged, err := os.ReadFile(filepath.Join(dir, configPath))
	if err != nil {
		t.Fatalf("the package's config: %v", err)
	}
	greeting := regexp.MustCompile(`(?m)^greeting = "(.*)"$`).FindSubmatch(packaged)
	if greeting == nil {
		t.Fatalf("the package's %s sets no greeting:\n%s", configPath, packaged)
	}
	t.Cleanup(func() { writeConfig(t, baseConfig) })
	freshStart(t, string(packaged))
	if code, body := get(t, baseURL(t)+"/"); code != http.StatusOK || body != string(greeting[1])+"\n" {
		t.Errorf("GET / on the packaged config = %d %q, want its greeting %q", code, body, greeting[1])
	}
}

// TestNotesSurviveAPackageUpgrade: installing the package over itself (the
// upgrade path, which restarts the daemon) keeps the notes: the state
// directory is the package's to keep until a purge.
func TestNotesSurviveAPackageUpgrade(t *testing.T) {
	if packagePath == "" {
		t.Fatal("PACKAGE is not set: run.sh passes the package it installed")
	}
	pid := freshStart(t, exampleConfig)
	url := baseURL(t) + "/notes/before-upgrade"
	const note = "written before the upgrade"
	if code, body := do(t, http.MethodPut, url, note); code != http.StatusNoContent {
		t.Fatalf("PUT = %d %q, want 204", code, body)
	}
	systemctl(t, "reset-failed", unit)
	if out, err := tryCommand("dpkg", "--install", packagePath); err != nil {
		t.Fatalf("dpkg --install: %v\n%s", err, out)
	}
	if got := propInt(t, unit, "MainPID"); got == pid || got == 0 {
		t.Errorf("MainPID %d after the upgrade (was %d): not restarted", got, pid)
	}
	if code, body := get(t, url); code != http.StatusOK || body != note {
		t.Errorf("GET the note after the upgrade = %d %q, want %q", code, body, note)
	}
}
