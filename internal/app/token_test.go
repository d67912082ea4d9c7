package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/daemon/internal/systemd"
)

func TestWritesNeedTheToken(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DebugEndpoints = true
	a := newApp(t, t.TempDir(), cfg)
	for _, c := range []struct{ auth, wwwAuthenticate string }{
		{"", `Bearer realm="daemon"`},
		{"Basic dXNlcjpwYXNz", `Bearer realm="daemon"`},
		{"Bearer", `Bearer realm="daemon"`},
		{"Bearer wrong", `Bearer realm="daemon", error="invalid_token"`},
		{"Bearer " + testToken + "x", `Bearer realm="daemon", error="invalid_token"`},
		{"Bearer " + testToken[:len(testToken)-1], `Bearer realm="daemon", error="invalid_token"`},
	} {
		for _, w := range []struct{ method, path string }{{"PUT", "/notes/n"}, {"POST", "/debug/wedge"}} {
			rec := doAuth(a, w.method, w.path, "x", c.auth)
			if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != c.wwwAuthenticate {
				t.Errorf("%s %s with Authorization %q: %d, WWW-Authenticate %q; want 401, %q",
					w.method, w.path, c.auth, rec.Code, rec.Header().Get("WWW-Authenticate"), c.wwwAuthenticate)
			}
		}
	}
	if rec := do(a, "GET", "/notes/n", ""); rec.Code != http.StatusNotFound {
		t.Errorf("a refused PUT stored something: GET = %d", rec.Code)
	}
	// The scheme is case-insensitive, the token is not; spaces around it
	// do not count.
	for _, auth := range []string{"bearer " + testToken, "Bearer   " + testToken + " "} {
		if rec := doAuth(a, "PUT", "/notes/n", "x", auth); rec.Code != http.StatusNoContent {
			t.Errorf("PUT with Authorization %q: %d %s", auth, rec.Code, rec.Body)
		}
	}
	if rec := doAuth(a, "PUT", "/notes/n", "x", "Bearer "+strings.ToUpper(testToken)); rec.Code != http.StatusUnauthorized {
		t.Errorf("PUT with the token in upper case: %d, want 401", rec.Code)
	}
}

func TestReadsNeedNoToken(t *testing.T) {
	a := newApp(t, t.TempDir(), DefaultConfig())
	do(a, "PUT", "/notes/n", "x")
	for _, path := range []string{"/", "/notes/n"} {
		if rec := doAuth(a, "GET", path, "", ""); rec.Code != http.StatusOK {
			t.Errorf("GET %s without a token: %d", path, rec.Code)
		}
	}
}

// TestEveryWriteRouteNeedsTheToken walks the app's routes: any that is not
// a GET must refuse a request without the token, so a write route added
// without requireToken fails here.
func TestEveryWriteRouteNeedsTheToken(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DebugEndpoints = true
	a := newApp(t, t.TempDir(), cfg)
	var writes int
	a.Routes(func(pattern string, h http.Handler) {
		method, path, _ := strings.Cut(pattern, " ")
		if method == "GET" || method == "HEAD" {
			return
		}
		writes++
		path = strings.NewReplacer("{name}", "n", "{$}", "").Replace(path)
		if rec := doAuth(a, method, path, "x", ""); rec.Code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d, want 401", pattern, rec.Code)
		}
	})
	if writes == 0 {
		t.Fatal("no write routes found")
	}
}

func TestWithoutTheCredentialWritesAreRefusedSayingHow(t *testing.T) {
	for name, creds := range map[string]systemd.Credentials{
		"no $CREDENTIALS_DIRECTORY": {},
		"no api-token in it":        credentials(t, ""),
		"an empty api-token":        credentials(t, " \n"),
	} {
		t.Run(name, func(t *testing.T) {
			a := newAppWith(t, t.TempDir(), DefaultConfig(), creds)
			for _, auth := range []string{"", "Bearer ", "Bearer x"} {
				rec := doAuth(a, "PUT", "/notes/n", "x", auth)
				if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "LoadCredential=api-token:") {
					t.Errorf("PUT with Authorization %q: %d %q; want 503 saying LoadCredential=api-token:…", auth, rec.Code, rec.Body)
				}
			}
			if rec := doAuth(a, "GET", "/", "", ""); rec.Code != http.StatusOK {
				t.Errorf("GET / without the credential: %d", rec.Code)
			}
		})
	}
}

func TestAnUnreadableCredentialStopsTheStart(t *testing.T) {
	creds := credentials(t, testToken)
	// A directory where the file should be: unreadable even for root.
	path := filepath.Join(creds.Dir, tokenName)
	os.Remove(path)
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	a, err := New(slog.New(slog.DiscardHandler), DefaultConfig(), t.TempDir(), creds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	err = a.Start(context.Background(), func(string, time.Duration) {})
	if err == nil || !strings.Contains(err.Error(), "api-token") {
		t.Fatalf("Start with an unreadable credential: %v, want an error naming it", err)
	}
	var e syscall.Errno
	if !errors.As(err, &e) || e != syscall.EISDIR {
		t.Errorf("Start's error %v does not carry the errno (EISDIR), which STATUS= and ERRNO= report", err)
	}
}

// TestAReloadTakesARotatedToken: Apply reads the credential again, so a
// token rotated where the daemon can see it (systemd ≥ 258 refreshes the
// credentials at a reload) is the one writes need from then on; a read
// that fails keeps the old one.
func TestAReloadTakesARotatedToken(t *testing.T) {
	creds := credentials(t, testToken)
	a := newAppWith(t, t.TempDir(), DefaultConfig(), creds)
	path := filepath.Join(creds.Dir, tokenName)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	a.Apply(DefaultConfig())
	if rec := do(a, "PUT", "/notes/n", "x"); rec.Code != http.StatusNoContent {
		t.Errorf("after a reload that found no credential: %d, want the old token kept", rec.Code)
	}
	if err := os.WriteFile(path, []byte("rotated"), 0o400); err != nil {
		t.Fatal(err)
	}
	if rec := doAuth(a, "PUT", "/notes/n", "x", "Bearer rotated"); rec.Code != http.StatusUnauthorized {
		t.Errorf("the new token before the reload: %d, want 401", rec.Code)
	}
	a.Apply(DefaultConfig())
	if rec := doAuth(a, "PUT", "/notes/n", "x", "Bearer rotated"); rec.Code != http.StatusNoContent {
		t.Errorf("the new token after the reload: %d", rec.Code)
	}
	if rec := do(a, "PUT", "/notes/n", "x"); rec.Code != http.StatusUnauthorized {
		t.Errorf("the old token after the reload: %d, want 401", rec.Code)
	}
}

// TestAReloadThatFindsATokenOpensWrites: a daemon that started without the
// credential takes it at the next reload that can see it.
func TestAReloadThatFindsATokenOpensWrites(t *testing.T) {
	creds := credentials(t, "")
	a := newAppWith(t, t.TempDir(), DefaultConfig(), creds)
	if rec := do(a, "PUT", "/notes/n", "x"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("PUT without the credential: %d, want 503", rec.Code)
	}
	if err := os.WriteFile(filepath.Join(creds.Dir, tokenName), []byte(testToken), 0o400); err != nil {
		t.Fatal(err)
	}
	a.Apply(DefaultConfig())
	if rec := do(a, "PUT", "/notes/n", "x"); rec.Code != http.StatusNoContent {
		t.Errorf("PUT after the reload found the token: %d %s", rec.Code, rec.Body)
	}
}
