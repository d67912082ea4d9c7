//go:build systemd

// The example app's scenarios under systemd: its greeting and its notes
// (GET /, GET and PUT /notes/NAME), with its own config, exampleConfig.
// They are the example's, and leave with it (make drop-example): nothing in
// a kit scenario may use what these files define, while these use the
// kit's helpers freely.

package systemd_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// exampleConfig is the kit's baseConfig and the example's own keys after
// it (top-level keys, which baseConfig's dotted instruments.enabled lets
// follow).
const exampleConfig = baseConfig + `greeting = "hello from the scenarios"
`

// TestNoteWritesNeedTheToken: the example's PUT /notes/NAME goes through
// the kit's token check: 204 with the token the daemon got as a credential,
// 401 with WWW-Authenticate: Bearer without it or with another, and a
// refused write changes nothing, as a read (which needs no token) shows.
func TestNoteWritesNeedTheToken(t *testing.T) {
	freshStart(t, exampleConfig)
	url := baseURL(t) + "/notes/credential"
	if code, body := do(t, http.MethodPut, url, "kept"); code != http.StatusNoContent {
		t.Errorf("PUT with the token = %d %q, want 204", code, body)
	}
	for _, auth := range []string{"", "Bearer " + strings.Repeat("0", 64)} {
		req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader("lost"))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("PUT with Authorization %q = %d, WWW-Authenticate %q; want 401, Bearer", auth, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if code, body := get(t, url); code != http.StatusOK || body != "kept" {
		t.Errorf("GET without a token = %d %q, want 200 and the note the refused writes left alone", code, body)
	}
}

// TestAReloadChangesTheGreetingInPlace: the greeting is one of the
// example's reloadable keys: `systemctl reload` changes what GET / answers,
// in the same process, and where the reload is synchronous
// (Type=notify-reload) by the time the command returns.
func TestAReloadChangesTheGreetingInPlace(t *testing.T) {
	pid := freshStart(t, exampleConfig)
	if code, body := get(t, baseURL(t)+"/"); code != http.StatusOK || !strings.Contains(body, "hello from the scenarios") {
		t.Fatalf("GET / = %d %q, want 200 with the configured greeting", code, body)
	}
	const greeting = "hello after a reload"
	writeConfig(t, strings.Replace(exampleConfig, "hello from the scenarios", greeting, 1))
	systemctl(t, "reload", unit)
	if synchronousReload(t) {
		if _, body := get(t, baseURL(t)+"/"); !strings.Contains(body, greeting) {
			t.Errorf("GET / right after systemctl reload = %q, want %q", body, greeting)
		}
	}
	eventually(t, 5*time.Second, "the new greeting after the reload", func() (bool, string) {
		_, body := get(t, baseURL(t)+"/")
		return strings.Contains(body, greeting), "GET / = " + body
	})
	if got := propInt(t, unit, "MainPID"); got != pid {
		t.Errorf("MainPID changed from %d to %d: the reload restarted the daemon", pid, got)
	}
}

// TestNotesSurviveRestartsAndAWatchdogKill: notes stored before each of
// three `systemctl restart`s and before a watchdog kill (the kit's health
// switch made to hang; SIGABRT, no drain) are all there afterwards.
func TestNotesSurviveRestartsAndAWatchdogKill(t *testing.T) {
	pid := freshStart(t, exampleConfig)
	url := baseURL(t)
	notes := map[string]string{}
	put := func(note, body string) {
		t.Helper()
		if code, resp := do(t, http.MethodPut, url+"/notes/"+note, body); code != http.StatusNoContent {
			t.Fatalf("PUT /notes/%s = %d %q, want 204", note, code, resp)
		}
		notes[note] = body
	}
	for i := 1; i <= 3; i++ {
		put(fmt.Sprintf("before-restart-%d", i), fmt.Sprintf("written by run %d, pid %d", i, pid))
		// See freshStart about reset-failed and the start limit.
		systemctl(t, "reset-failed", unit)
		systemctl(t, "restart", unit)
		newPID := activeMainPID(t, unit, "restart")
		if newPID == pid {
			t.Fatalf("restart %d: MainPID still %d", i, pid)
		}
		pid = newPID
	}
	put("before-the-watchdog", fmt.Sprintf("written by pid %d", pid))
	restarts := propInt(t, unit, "NRestarts")
	watchdog := propDuration(t, unit, "WatchdogUSec")
	if code, body := instrument(t, http.MethodPost, "/debug/health?state=hang"); code != http.StatusNoContent {
		t.Fatalf("POST /debug/health?state=hang = %d %q, want 204", code, body)
	}
	waitRestarted(t, unit, restarts, pid, 2*watchdog+10*time.Second)
	for note, want := range notes {
		if code, got := get(t, url+"/notes/"+note); code != http.StatusOK || got != want {
			t.Errorf("GET /notes/%s = %d %q, want %q", note, code, got, want)
		}
	}
}
