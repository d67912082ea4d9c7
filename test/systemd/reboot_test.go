//go:build systemd

package systemd_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestRebootKeepsNotesAndSocketsListen: what only a machine can show.
// Notes written before `systemctl reboot` are there after it, and after
// the boot the sockets listen again (they are enabled in sockets.target)
// while the service has not run, until the first connection starts it and
// is answered. The test runs twice, once on each side of the reboot, and
// keeps what it wrote in the file $REBOOT_STATE names: absent, it writes the
// notes and that file and passes, and its runner reboots the machine and
// runs it again; present, it checks. test/vm/guest.sh is such a runner (it
// runs this test by itself, after the package's scenarios, which purge the
// notes). Elsewhere it skips: a reboot ends a container.
func TestRebootKeepsNotesAndSocketsListen(t *testing.T) {
	path := os.Getenv("REBOOT_STATE")
	if path == "" {
		where := "here"
		if virt, err := tryCommand("systemd-detect-virt", "--container"); err == nil {
			where = "in this container (" + strings.TrimSpace(virt) + "), where a reboot would end the container,"
		}
		t.Skipf("needs a machine that reboots and a runner that runs this test again after the boot: none %s and REBOOT_STATE is not set (test/vm/run.sh sets it)", where)
	}
	type rebootState struct {
		BootID string            `json:"boot_id"`
		Notes  map[string]string `json:"notes"`
	}
	bootID := func() string {
		b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		// Before the reboot.
		freshStart(t, baseConfig)
		url := baseURL(t)
		st := rebootState{BootID: bootID(), Notes: map[string]string{}}
		for i := 1; i <= 3; i++ {
			note, body := fmt.Sprintf("before-reboot-%d", i), fmt.Sprintf("written in boot %s, note %d", st.BootID, i)
			if code, resp := do(t, http.MethodPut, url+"/notes/"+note, body); code/100 != 2 {
				t.Fatalf("PUT /notes/%s = %d %q", note, code, resp)
			}
			st.Notes[note] = body
		}
		for _, s := range sockets {
			if e := strings.TrimSpace(command(t, "systemctl", "is-enabled", s)); e != "enabled" {
				t.Errorf("%s is %s: it would not listen after the reboot", s, e)
			}
		}
		j, _ := json.Marshal(st)
		if err := os.WriteFile(path, j, 0o644); err != nil {
			t.Fatal(err)
		}
		command(t, "sync")
		t.Logf("boot %s: %d notes written; now reboot and run this test again", st.BootID, len(st.Notes))
		return
	} else if err != nil {
		t.Fatal(err)
	}
	// After the reboot.
	t.Cleanup(func() { os.Remove(path) })
	var st rebootState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if id := bootID(); id == st.BootID {
		t.Fatalf("boot ID %s is the one the notes were written in: the machine did not reboot", id)
	} else {
		t.Logf("boot %s, after boot %s", id, st.BootID)
	}
	for _, s := range sockets {
		if st := prop(t, s, "ActiveState") + "/" + prop(t, s, "SubState"); st != "active/listening" {
			t.Errorf("%s is %s after the reboot, want active/listening", s, st)
		}
	}
	if s, ts := prop(t, unit, "ActiveState"), prop(t, unit, "InactiveExitTimestampMonotonic"); s != "inactive" || ts != "0" {
		t.Errorf("%s is %s (InactiveExitTimestampMonotonic=%s) after the reboot, before any connection: want inactive, never started", unit, s, ts)
	}
	url := baseURL(t)
	first := true
	for note, want := range st.Notes {
		code, got := get(t, url+"/notes/"+note)
		if code != http.StatusOK || got != want {
			t.Errorf("GET /notes/%s after the reboot = %d %q, want %q", note, code, got, want)
		}
		if first {
			first = false
			if s := prop(t, unit, "ActiveState"); s != "active" {
				t.Errorf("%s is %s after the first connection since the boot, want active", unit, s)
			}
			t.Logf("the first connection since the boot started %s (PID %s) and was answered", unit, prop(t, unit, "MainPID"))
		}
	}
}
