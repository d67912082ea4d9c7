package lifecycle_test

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/daemon/internal/systemd"
)

// The kit's test instruments (instruments.go): off unless configured, each
// behind the API token, and each doing to the kit what the scenarios under
// systemd need, whatever the app.

const instrumentToken = "instrument-token"

// withToken returns a credentials directory holding the api-token.
func withToken(t *testing.T, token string) systemd.Credentials {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "api-token"), []byte(token), 0o400); err != nil {
		t.Fatal(err)
	}
	return systemd.Credentials{Dir: dir}
}

// instrument sends a request to an instrument with the given token ("" for
// none) and returns its status and body.
func instrument(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: wait}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestInstrumentsAnswerOnlyWhenEnabledAndNeedTheToken(t *testing.T) {
	t.Parallel()
	d := start(t, options{config: "", credentials: withToken(t, instrumentToken)})
	d.ready(t)
	sleep := d.url + "/debug/sleep?d=1ms"
	if code, _ := instrument(t, "GET", sleep, instrumentToken); code != http.StatusNotFound {
		t.Errorf("an instrument while they are off: %d, want 404", code)
	}
	// A reload turns them on, and another off again.
	d.reloadWith(t, "instruments.enabled = true\n")
	for _, token := range []string{"", "wrong"} {
		if code, _ := instrument(t, "GET", sleep, token); code != http.StatusUnauthorized {
			t.Errorf("an instrument with token %q: %d, want 401", token, code)
		}
	}
	if code, body := instrument(t, "GET", sleep, instrumentToken); code != http.StatusOK || body != "slept 1ms\n" {
		t.Errorf("GET /debug/sleep?d=1ms with the token: %d %q", code, body)
	}
	d.reloadWith(t, "instruments.enabled = false\n")
	if code, _ := instrument(t, "GET", sleep, instrumentToken); code != http.StatusNotFound {
		t.Errorf("an instrument after a reload turned them off: %d, want 404", code)
	}
}

func TestInstrumentsWithoutATokenAreRefused(t *testing.T) {
	t.Parallel()
	d := start(t, options{config: "instruments.enabled = true\n"})
	d.ready(t)
	if code, body := instrument(t, "GET", d.url+"/debug/sleep?d=1ms", "x"); code != http.StatusServiceUnavailable || !strings.Contains(body, "LoadCredential=api-token:") {
		t.Errorf("an instrument of a daemon without a token: %d %q, want 503 saying how to give one", code, body)
	}
	if !strings.Contains(d.logs.String(), "refused until the daemon has one") {
		t.Errorf("no warning that the token is missing:\n%s", d.logs)
	}
}

// TestTheHealthSwitchStarvesTheWatchdog: fail and hang make /healthz
// answer 503 and stop the pings; ok gives the check back to the app.
func TestTheHealthSwitchStarvesTheWatchdog(t *testing.T) {
	const interval = 200 * time.Millisecond
	d := start(t, options{config: "instruments.enabled = true\n", watchdog: interval, credentials: withToken(t, instrumentToken)})
	d.ready(t)
	if msg := d.notify.Next(t, wait); msg != watchdogPing {
		t.Fatalf("got %q, want WATCHDOG=1 while healthy", msg)
	}
	for _, state := range []string{"fail", "hang"} {
		if code, _ := instrument(t, "POST", d.url+"/debug/health?state="+state, instrumentToken); code != http.StatusNoContent {
			t.Fatalf("POST /debug/health?state=%s: %d", state, code)
		}
		if code, body := get(t, d.url+"/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "made to "+state) {
			t.Errorf("GET /healthz after state=%s: %d %q", state, code, body)
		}
		// A ping may already have been on its way; after it, none for
		// two intervals.
		d.notify.NextOrNone(interval / 2)
		if msg, ok := d.notify.NextOrNone(2 * interval); ok {
			t.Errorf("after state=%s the daemon still sent %q", state, msg)
		}
		instrument(t, "POST", d.url+"/debug/health?state=ok", instrumentToken)
		if msg := d.notify.Next(t, wait); msg != watchdogPing {
			t.Errorf("after state=ok: %q, want WATCHDOG=1", msg)
		}
		if code, _ := get(t, d.url+"/healthz"); code != http.StatusOK {
			t.Errorf("GET /healthz after state=ok: %d", code)
		}
	}
	if code, _ := instrument(t, "POST", d.url+"/debug/health?state=maybe", instrumentToken); code != http.StatusBadRequest {
		t.Errorf("POST /debug/health?state=maybe: %d, want 400", code)
	}
}

func TestThePanicInstrumentIsRecovered(t *testing.T) {
	t.Parallel()
	d := start(t, options{config: "instruments.enabled = true\n", credentials: withToken(t, instrumentToken)})
	d.ready(t)
	if code, _ := instrument(t, "GET", d.url+"/debug/panic", instrumentToken); code != http.StatusInternalServerError {
		t.Errorf("GET /debug/panic: %d, want 500", code)
	}
	if n := metric(t, d, "daemon_http_panics_total", "route", "/debug/panic"); n != 1 {
		t.Errorf("daemon_http_panics_total = %v, want 1", n)
	}
	if code, _ := get(t, d.url+"/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz after the panic: %d", code)
	}
}

func TestTheAllocAndLogInstruments(t *testing.T) {
	t.Parallel()
	d := start(t, options{config: "instruments.enabled = true\n", credentials: withToken(t, instrumentToken)})
	d.ready(t)
	if code, body := instrument(t, "GET", d.url+"/debug/alloc?live=8&garbage=64", instrumentToken); code != http.StatusOK || !strings.HasPrefix(body, "held 8 MiB, allocated 64 MiB more: ") {
		t.Errorf("GET /debug/alloc: %d %q", code, body)
	}
	if code, _ := instrument(t, "GET", d.url+"/debug/alloc?live=-1", instrumentToken); code != http.StatusBadRequest {
		t.Errorf("GET /debug/alloc?live=-1: %d, want 400", code)
	}
	if code, _ := instrument(t, "POST", d.url+"/debug/log?seq=5&n=3", instrumentToken); code != http.StatusNoContent {
		t.Errorf("POST /debug/log: %d", code)
	}
	var seqs []string
	for _, line := range strings.Split(d.logs.String(), "\n") {
		if strings.Contains(line, `msg="instrument log line"`) {
			seqs = append(seqs, line[strings.LastIndex(line, " ")+1:])
		}
	}
	if want := []string{"seq=5", "seq=6", "seq=7"}; !slices.Equal(seqs, want) {
		t.Errorf("POST /debug/log?seq=5&n=3 logged %v, want %v", seqs, want)
	}
}

// TestTheStartDelayHoldsReadyAndReportsProgress: instruments.start_delay
// is a warm-up after the app's Start, reported each second with
// EXTEND_TIMEOUT_USEC=, before READY=1.
func TestTheStartDelayHoldsReadyAndReportsProgress(t *testing.T) {
	t.Parallel()
	d := start(t, options{config: "instruments.enabled = true\ninstruments.start_delay = \"1500ms\"\n"})
	expect(t, d, "STATUS")
	first := expect(t, d, "STATUS", "EXTEND_TIMEOUT_USEC")
	if !strings.HasPrefix(first["STATUS"], "Warming up: ") {
		t.Errorf("STATUS=%q, want the warm-up", first["STATUS"])
	}
	expect(t, d, "STATUS", "EXTEND_TIMEOUT_USEC")
	expect(t, d, "READY", "STATUS")
}

// TestAnUnreadableTokenStopsTheStart: a token the daemon cannot read (the
// wrong owner, a directory) fails the start before the app starts, with
// the errno that STATUS= and ERRNO= report.
func TestAnUnreadableTokenStopsTheStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "api-token"), 0o700); err != nil {
		t.Fatal(err)
	}
	a := newTestApp()
	d := start(t, options{config: "", app: a, credentials: systemd.Credentials{Dir: dir}})
	select {
	case <-d.done:
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
	var errno syscall.Errno
	if !errors.As(d.err, &errno) || errno != syscall.EISDIR || !strings.Contains(d.err.Error(), "api-token") {
		t.Errorf("Run: %v, want an error naming api-token with EISDIR", d.err)
	}
	select {
	case <-a.starting:
		t.Error("the app started although the token could not be read")
	default:
	}
}

// TestAReloadTakesARotatedToken: the token is read again at every reload.
func TestAReloadTakesARotatedToken(t *testing.T) {
	t.Parallel()
	creds := withToken(t, instrumentToken)
	d := start(t, options{config: "instruments.enabled = true\n", credentials: creds})
	d.ready(t)
	if err := os.Remove(filepath.Join(creds.Dir, "api-token")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(creds.Dir, "api-token"), []byte("rotated"), 0o400); err != nil {
		t.Fatal(err)
	}
	sleep := d.url + "/debug/sleep?d=1ms"
	if code, _ := instrument(t, "GET", sleep, "rotated"); code != http.StatusUnauthorized {
		t.Errorf("the rotated token before the reload: %d, want 401", code)
	}
	d.reloadWith(t, "instruments.enabled = true\n")
	if code, _ := instrument(t, "GET", sleep, "rotated"); code != http.StatusOK {
		t.Errorf("the rotated token after the reload: %d", code)
	}
	if code, _ := instrument(t, "GET", sleep, instrumentToken); code != http.StatusUnauthorized {
		t.Errorf("the old token after the reload: %d, want 401", code)
	}
}
