//go:build systemd

package systemd_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestRebootKeepsStateAndSocketsListen: what only a machine can show. A
// file the daemon wrote in its state directory before `systemctl reboot` is
// there after it, and the daemon (a new dynamic user, perhaps another UID)
// can still read it; and after the boot the sockets listen again (they are
// enabled in sockets.target) while the service has not run, until the first
// connection starts it and is answered. The test runs twice, once on each
// side of the reboot, and keeps what it wrote in the file $REBOOT_STATE
// names: absent, it writes the state file and that file and passes, and its
// runner reboots the machine and runs it again; present, it checks.
// test/vm/guest.sh is such a runner: it selects this test by its name's
// prefix (-test.run '^TestReboot'), by itself, after the package's
// scenarios, which purge the state directory, and skips it in the run of
// all the others. Elsewhere it skips: a reboot ends a container.
func TestRebootKeepsStateAndSocketsListen(t *testing.T) {
	path := os.Getenv("REBOOT_STATE")
	if path == "" {
		where := "here"
		if virt, err := tryCommand("systemd-detect-virt", "--container"); err == nil {
			where = "in this container (" + strings.TrimSpace(virt) + "), where a reboot would end the container,"
		}
		t.Skipf("needs a machine that reboots and a runner that runs this test again after the boot: none %s and REBOOT_STATE is not set (test/vm/run.sh sets it)", where)
	}
	type rebootState struct {
		BootID  string `json:"boot_id"`
		File    string `json:"file"`    // in the state directory, as the daemon sees it
		Written string `json:"written"` // what the daemon wrote there
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
		pid := freshStart(t, baseConfig)
		st := rebootState{BootID: bootID()}
		st.File = "/var/lib/" + prop(t, unit, "StateDirectory") + "/reboot-scenario"
		st.Written = "written by the daemon's user in boot " + st.BootID
		asDaemon(t, pid, "printf %s \"$2\" >\"$1\"", st.File, st.Written)
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
		t.Logf("boot %s: %s written; now reboot and run this test again", st.BootID, st.File)
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
		t.Fatalf("boot ID %s is the one the state file was written in: the machine did not reboot", id)
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
	// The first connection since the boot.
	if code, body := get(t, baseURL(t)+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("the first GET /healthz since the boot = %d %q, want 200 \"ok\"", code, body)
	}
	if s := prop(t, unit, "ActiveState"); s != "active" {
		t.Fatalf("%s is %s after the first connection since the boot, want active", unit, s)
	}
	pid := propInt(t, unit, "MainPID")
	t.Logf("the first connection since the boot started %s (PID %d) and was answered", unit, pid)
	if code, body := get(t, "http://"+listenAddr(t, name+"-metrics.socket")+"/metrics"); code != http.StatusOK {
		t.Errorf("GET /metrics on the metrics socket after the reboot = %d %.200q", code, body)
	}
	if got := asDaemon(t, pid, "cat \"$1\"", st.File); got != st.Written {
		t.Errorf("%s after the reboot, read by the daemon's user: %q, want %q", st.File, got, st.Written)
	}
}

// asDaemon runs a shell script in process pid's namespaces as its user, with
// args as $1, $2..., and returns its standard output: what the daemon itself
// could do and see (TestCannotWriteOutsideStateDirectory does the same).
func asDaemon(t testing.TB, pid int, script string, args ...string) string {
	t.Helper()
	uid := strconv.Itoa(procUID(t, pid))
	return command(t, "nsenter", append([]string{"--target", strconv.Itoa(pid), "--all", "--setuid", uid, "--setgid", uid,
		"sh", "-c", script, "sh"}, args...)...)
}
