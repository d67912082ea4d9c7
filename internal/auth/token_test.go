package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"example.com/daemon/internal/systemd"
)

const testToken = "test-token-0123456789"

// credentials returns a credentials directory, as systemd would make it,
// holding the api-token credential when token is not empty.
func credentials(t *testing.T, token string) systemd.Credentials {
	t.Helper()
	dir := t.TempDir()
	if token != "" {
		if err := os.WriteFile(filepath.Join(dir, CredentialName), []byte(token+"\n"), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	return systemd.Credentials{Dir: dir}
}

// write sends one request with authorization ("" for none) through
// Require around a handler that answers 204.
func write(tok *Token, authorization string) *httptest.ResponseRecorder {
	h := tok.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("PUT", "/x", strings.NewReader("x"))
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	h.ServeHTTP(rec, r)
	return rec
}

func loaded(t *testing.T, creds systemd.Credentials) *Token {
	t.Helper()
	tok := NewToken(creds)
	if _, err := tok.Load(); err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRequireRefusesAWrongOrMissingToken(t *testing.T) {
	tok := loaded(t, credentials(t, testToken))
	for _, c := range []struct{ auth, wwwAuthenticate string }{
		{"", `Bearer realm="daemon"`},
		{"Basic dXNlcjpwYXNz", `Bearer realm="daemon"`},
		{"Bearer", `Bearer realm="daemon"`},
		{"Bearer wrong", `Bearer realm="daemon", error="invalid_token"`},
		{"Bearer " + testToken + "x", `Bearer realm="daemon", error="invalid_token"`},
		{"Bearer " + testToken[:len(testToken)-1], `Bearer realm="daemon", error="invalid_token"`},
		{"Bearer " + strings.ToUpper(testToken), `Bearer realm="daemon", error="invalid_token"`},
	} {
		rec := write(tok, c.auth)
		if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != c.wwwAuthenticate {
			t.Errorf("Authorization %q: %d, WWW-Authenticate %q; want 401, %q",
				c.auth, rec.Code, rec.Header().Get("WWW-Authenticate"), c.wwwAuthenticate)
		}
	}
	// The scheme is case-insensitive, the token is not; spaces around it
	// do not count.
	for _, auth := range []string{"Bearer " + testToken, "bearer " + testToken, "Bearer   " + testToken + " "} {
		if rec := write(tok, auth); rec.Code != http.StatusNoContent {
			t.Errorf("Authorization %q: %d %s", auth, rec.Code, rec.Body)
		}
	}
}

func TestWithoutTheCredentialRequireRefusesSayingHow(t *testing.T) {
	for name, creds := range map[string]systemd.Credentials{
		"no $CREDENTIALS_DIRECTORY": {},
		"no api-token in it":        credentials(t, ""),
		"an empty api-token":        credentials(t, " \n"),
	} {
		t.Run(name, func(t *testing.T) {
			tok := NewToken(creds)
			if _, err := tok.Load(); !errors.Is(err, systemd.ErrNoCredential) {
				t.Errorf("Load: %v, want ErrNoCredential", err)
			}
			for _, auth := range []string{"", "Bearer ", "Bearer x"} {
				rec := write(tok, auth)
				if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "LoadCredential=api-token:") {
					t.Errorf("Authorization %q: %d %q; want 503 saying LoadCredential=api-token:…", auth, rec.Code, rec.Body)
				}
			}
		})
	}
	if rec := write(NewToken(credentials(t, testToken)), "Bearer "+testToken); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("before Load: %d, want 503", rec.Code)
	}
}

func TestAnUnreadableCredentialIsAnErrorWithItsErrno(t *testing.T) {
	creds := credentials(t, testToken)
	// A directory where the file should be: unreadable even for root.
	path := filepath.Join(creds.Dir, CredentialName)
	os.Remove(path)
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := NewToken(creds).Load()
	if err == nil || errors.Is(err, systemd.ErrNoCredential) || !strings.Contains(err.Error(), "api-token") {
		t.Fatalf("Load of an unreadable credential: %v, want an error naming it", err)
	}
	var e syscall.Errno
	if !errors.As(err, &e) || e != syscall.EISDIR {
		t.Errorf("%v does not carry the errno (EISDIR), which STATUS= and ERRNO= report", err)
	}
}

// TestLoadTakesARotatedTokenAndKeepsTheOldOneOnFailure: a second Load (at
// a reload) takes a token rotated where the daemon can see it; a read that
// fails keeps the old one.
func TestLoadTakesARotatedTokenAndKeepsTheOldOneOnFailure(t *testing.T) {
	creds := credentials(t, testToken)
	tok := loaded(t, creds)
	path := filepath.Join(creds.Dir, CredentialName)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Load(); err == nil {
		t.Error("Load of a removed credential: no error")
	}
	if rec := write(tok, "Bearer "+testToken); rec.Code != http.StatusNoContent {
		t.Errorf("after a Load that found no credential: %d, want the old token kept", rec.Code)
	}
	if err := os.WriteFile(path, []byte("rotated"), 0o400); err != nil {
		t.Fatal(err)
	}
	if rec := write(tok, "Bearer rotated"); rec.Code != http.StatusUnauthorized {
		t.Errorf("the new token before Load: %d, want 401", rec.Code)
	}
	if changed, err := tok.Load(); !changed || err != nil {
		t.Errorf("Load of a rotated token: changed %v, %v", changed, err)
	}
	if rec := write(tok, "Bearer rotated"); rec.Code != http.StatusNoContent {
		t.Errorf("the new token after Load: %d", rec.Code)
	}
	if rec := write(tok, "Bearer "+testToken); rec.Code != http.StatusUnauthorized {
		t.Errorf("the old token after Load: %d, want 401", rec.Code)
	}
}

// TestALaterLoadThatFindsATokenOpensTheRoutes: a daemon that started
// without the credential takes it at the next reload that can see it.
func TestALaterLoadThatFindsATokenOpensTheRoutes(t *testing.T) {
	creds := credentials(t, "")
	tok := NewToken(creds)
	tok.Load()
	if rec := write(tok, "Bearer "+testToken); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("without the credential: %d, want 503", rec.Code)
	}
	if err := os.WriteFile(filepath.Join(creds.Dir, CredentialName), []byte(testToken), 0o400); err != nil {
		t.Fatal(err)
	}
	if changed, err := tok.Load(); !changed || err != nil {
		t.Errorf("Load: changed %v, %v", changed, err)
	}
	if rec := write(tok, "Bearer "+testToken); rec.Code != http.StatusNoContent {
		t.Errorf("after Load found the token: %d %s", rec.Code, rec.Body)
	}
}
