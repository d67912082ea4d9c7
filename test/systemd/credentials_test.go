//go:build systemd

package systemd_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTheTokenIsACredential: the package made the token, root's alone; the
// daemon, as its dynamic user, gets it through LoadCredential= and accepts
// the requests that carry it (the test instruments: the health switch, for
// one), while the file it came from stays unreadable to that user, even
// inside the daemon's own namespace; and the token is in neither the
// daemon's environment nor its command line.
func TestTheTokenIsACredential(t *testing.T) {
	fi, err := os.Stat(tokenPath)
	if err != nil {
		t.Fatalf("the package made no token: %v", err)
	}
	if fi.Mode().Perm() != 0o600 || fileUID(fi) != 0 {
		t.Errorf("%s: mode %v, owner %d; want 0600, root", tokenPath, fi.Mode().Perm(), fileUID(fi))
	}
	token := apiToken(t)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(token) {
		t.Errorf("the package's token %q is not 32 random bytes in hex", token)
	}

	pid := freshStart(t, baseConfig)
	env := environ(t, pid)
	dir := env["CREDENTIALS_DIRECTORY"]
	if dir != "/run/credentials/"+unit {
		t.Errorf("CREDENTIALS_DIRECTORY=%q, want /run/credentials/%s", dir, unit)
	}
	for k, v := range env {
		if strings.Contains(v, token) {
			t.Errorf("the token is in the daemon's environment, in %s", k)
		}
	}
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err != nil || strings.Contains(string(cmdline), token) {
		t.Errorf("the daemon's command line %q (%v) holds the token", cmdline, err)
	}

	// Read as the daemon's user, in the daemon's mount namespace: the copy
	// is readable, the source is not.
	uid, gid := processIDs(t, pid)
	asDaemon := func(path string) (string, error) {
		out, err := exec.Command("nsenter", "--target", strconv.Itoa(pid), "--mount",
			"setpriv", "--reuid="+uid, "--regid="+gid, "--clear-groups", "cat", path).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if got, err := asDaemon(dir + "/api-token"); err != nil || got != token {
		t.Errorf("UID %s reading its credential: %q, %v; want the token", uid, got, err)
	}
	if got, err := asDaemon(tokenPath); err == nil || !strings.Contains(got, "Permission denied") {
		t.Errorf("UID %s reading %s: %q, %v; want Permission denied", uid, tokenPath, got, err)
	}

	// The instruments need it, the kit's own routes do not. The health
	// switch is the write: with the token it is set (to ok, as it was);
	// without it, or with another, the request to make the health check
	// fail is refused, and /healthz, asked without a token, shows that it
	// was not carried out.
	health := baseURL(t) + "/debug/health?state="
	t.Cleanup(func() { instrument(t, http.MethodPost, "/debug/health?state=ok") })
	if code, body := instrument(t, http.MethodPost, "/debug/health?state=ok"); code != http.StatusNoContent {
		t.Errorf("POST /debug/health?state=ok with the token = %d %q, want 204", code, body)
	}
	for _, auth := range []string{"", "Bearer " + strings.Repeat("0", 64)} {
		req, _ := http.NewRequest(http.MethodPost, health+"fail", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if challenge := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(challenge, `Bearer realm="`+name+`"`) {
			t.Errorf("POST /debug/health?state=fail with Authorization %q = %d, WWW-Authenticate %q; want 401, Bearer realm=%q", auth, resp.StatusCode, challenge, name)
		}
	}
	if code, body := get(t, baseURL(t)+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz without a token = %d %q, want 200 \"ok\": the refused requests to fail the health check were carried out", code, body)
	}
}

// processIDs returns the real UID and GID of a process, from
// /proc/PID/status.
func processIDs(t testing.TB, pid int) (uid, gid string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			uid = f[1]
		} else if len(f) > 1 && f[0] == "Gid:" {
			gid = f[1]
		}
	}
	return uid, gid
}

// TestARotatedTokenTakesEffectAsDocumented: a new token in the file is the
// one the instruments need after `systemctl reload` where systemd refreshes
// credentials at a reload (RefreshOnReload=, systemd 260 and later, with
// the refresh-credentials.conf drop-in; run on 262), and after `systemctl
// restart` where it does not (252, 257), the old one serving until then.
func TestARotatedTokenTakesEffectAsDocumented(t *testing.T) {
	old := apiToken(t)
	t.Cleanup(func() {
		if err := os.WriteFile(tokenPath, []byte(old+"\n"), 0o600); err != nil {
			t.Error(err)
		}
		systemctl(t, "restart", unit)
	})
	freshStart(t, baseConfig)
	rotated := strings.Repeat("5eed", 16)
	if err := os.WriteFile(tokenPath, []byte(rotated+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The health switch, set to ok (as it is): a write that changes nothing.
	url := baseURL(t) + "/debug/health?state=ok"
	needs := func(when, token string) {
		t.Helper()
		other := map[string]string{old: rotated, rotated: old}[token]
		if code, body := doAuth(t, http.MethodPost, url, "", "Bearer "+token); code != http.StatusNoContent {
			t.Errorf("%s: POST /debug/health?state=ok with the %s token = %d %q, want 204", when, map[bool]string{true: "old", false: "new"}[token == old], code, body)
		}
		if code, _ := doAuth(t, http.MethodPost, url, "", "Bearer "+other); code != http.StatusUnauthorized {
			t.Errorf("%s: POST /debug/health?state=ok with the %s token = %d, want 401", when, map[bool]string{true: "old", false: "new"}[other == old], code)
		}
	}
	systemctl(t, "reload", unit)
	refreshes := strings.Contains(prop(t, unit, "DropInPaths"), "refresh-credentials.conf")
	if want := systemdVersion(t) >= 260; refreshes != want {
		t.Errorf("refresh-credentials.conf in effect: %v, want %v on systemd %d", refreshes, want, systemdVersion(t))
	}
	t.Logf("systemd %d refreshes credentials at a reload: %v", systemdVersion(t), refreshes)
	if refreshes {
		needs("after systemctl reload", rotated)
		return
	}
	needs("after systemctl reload", old)
	systemctl(t, "restart", unit)
	needs("after systemctl restart", rotated)
}

// TestAMissingTokenFileFailsTheStartForGood: without the file LoadCredential=
// names, systemd fails the start with status 243/CREDENTIALS, and the unit
// stays failed (RestartPreventExitStatus=) rather than restarting in a loop.
func TestAMissingTokenFileFailsTheStartForGood(t *testing.T) {
	freshStart(t, baseConfig)
	moved := tokenPath + ".moved"
	if err := os.Rename(tokenPath, moved); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Rename(moved, tokenPath); err != nil {
			t.Error(err)
		}
		systemctl(t, "reset-failed", unit)
	})
	restarts := propInt(t, unit, "NRestarts")
	if out, err := tryCommand("systemctl", "restart", unit); err == nil {
		t.Fatalf("systemctl restart without %s succeeded: %s", tokenPath, out)
	}
	// failed, not activating (auto-restart): no restart is scheduled.
	eventually(t, 15*time.Second, "unit failed", func() (bool, string) {
		s := prop(t, unit, "ActiveState") + "/" + prop(t, unit, "SubState")
		return s == "failed/failed", s
	})
	if st := prop(t, unit, "ExecMainStatus"); st != "243" {
		t.Errorf("ExecMainStatus=%s, want 243 (CREDENTIALS)", st)
	}
	if n := propInt(t, unit, "NRestarts"); n != restarts {
		t.Errorf("NRestarts went from %d to %d: the unit was restarted", restarts, n)
	}
}

// TestAnEncryptedTokenWorksTheSame: the token encrypted with systemd-creds
// and loaded with LoadCredentialEncrypted= in a drop-in (hardening.md, "An
// encrypted token") reaches the daemon as the plain one does.
func TestAnEncryptedTokenWorksTheSame(t *testing.T) {
	token := apiToken(t)
	encrypted := "/etc/credstore.encrypted/api-token"
	if err := os.MkdirAll("/etc/credstore.encrypted", 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("systemd-creds", "encrypt", "--name=api-token", tokenPath, encrypted).CombinedOutput(); err != nil {
		t.Skipf("systemd-creds encrypt: %v: %s", err, out)
	}
	t.Cleanup(func() { os.Remove(encrypted) })
	if b, err := os.ReadFile(encrypted); err != nil || strings.Contains(string(b), token) {
		t.Fatalf("%s: %v; holds the token in plain text: %v", encrypted, err, strings.Contains(string(b), token))
	}
	runtimeDropIn(t, unit, "zz-encrypted.conf", "[Service]\nLoadCredential=\nLoadCredentialEncrypted=api-token:"+encrypted+"\n")
	t.Cleanup(func() { systemctl(t, "restart", unit) })
	freshStart(t, baseConfig)
	if lc := prop(t, unit, "LoadCredential"); strings.Contains(lc, tokenPath) {
		t.Errorf("LoadCredential=%s: the drop-in did not clear the unit's", lc)
	}
	if code, body := instrument(t, http.MethodPost, "/debug/health?state=ok"); code != http.StatusNoContent {
		t.Errorf("POST /debug/health?state=ok with the token, loaded encrypted = %d %q, want 204", code, body)
	}
	if code, _ := doAuth(t, http.MethodPost, baseURL(t)+"/debug/health?state=ok", "", "Bearer "+strings.Repeat("0", 64)); code != http.StatusUnauthorized {
		t.Errorf("POST /debug/health?state=ok with another token, the encrypted one loaded = %d, want 401", code)
	}
}
