package example

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"example.com/daemon/internal/auth"
	"example.com/daemon/internal/config"
	"example.com/daemon/internal/systemd"
)

// testToken is the api-token credential newApp gives the app, and do
// sends.
const testToken = "test-token-0123456789"

// credentials returns a credentials directory, as systemd would make it,
// holding the api-token credential when token is not empty.
func credentials(t *testing.T, token string) systemd.Credentials {
	t.Helper()
	dir := t.TempDir()
	if token != "" {
		if err := os.WriteFile(filepath.Join(dir, auth.CredentialName), []byte(token+"\n"), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	return systemd.Credentials{Dir: dir}
}

// token returns the API token the kit would read from creds.
func token(t *testing.T, creds systemd.Credentials) *auth.Token {
	t.Helper()
	tok := auth.NewToken(creds)
	if _, err := tok.Load(); err != nil && !errors.Is(err, systemd.ErrNoCredential) {
		t.Fatal(err)
	}
	return tok
}

func startApp(t *testing.T, dir string, cfg Config) *App {
	t.Helper()
	return startAppWith(t, dir, cfg, credentials(t, testToken))
}

func startAppWith(t *testing.T, dir string, cfg Config, creds systemd.Credentials) *App {
	t.Helper()
	a, err := newApp(slog.New(slog.DiscardHandler), cfg, dir, token(t, creds))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background(), func(string, time.Duration) {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// do serves one request with the app's routes alone, without the
// lifecycle's, with the test's token.
func do(a *App, method, path, body string) *httptest.ResponseRecorder {
	return doAuth(a, method, path, body, "Bearer "+testToken)
}

// doAuth is do with the Authorization header given ("" for none). A
// request that hangs ends after 2 s.
func doAuth(a *App, method, path, body, authorization string) *httptest.ResponseRecorder {
	mux := http.NewServeMux()
	a.Routes(func(pattern string, h http.Handler) { mux.Handle(pattern, h) })
	rec := httptest.NewRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r := httptest.NewRequestWithContext(ctx, method, path, strings.NewReader(body))
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	mux.ServeHTTP(rec, r)
	return rec
}

func TestNotesSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	a := startApp(t, dir, DefaultConfig())
	if rec := do(a, "PUT", "/notes/todo", "buy milk"); rec.Code != http.StatusNoContent {
		t.Fatalf("PUT: %d %s", rec.Code, rec.Body)
	}
	a.Close()
	b := startApp(t, dir, DefaultConfig())
	if rec := do(b, "GET", "/notes/todo", ""); rec.Code != 200 || rec.Body.String() != "buy milk" {
		t.Errorf("GET after restart: %d %q", rec.Code, rec.Body)
	}
	if rec := do(b, "GET", "/notes/other", ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET of a missing note: %d", rec.Code)
	}
}

func TestNoteBodyIsLimited(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxNoteBytes = 100
	a := startApp(t, t.TempDir(), cfg)
	if rec := do(a, "PUT", "/notes/big", strings.Repeat("x", 101)); rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "max_note_bytes") {
		t.Errorf("PUT of 101 bytes under max_note_bytes = 100: %d %q, want 413 naming the setting", rec.Code, rec.Body)
	}
	if rec := do(a, "PUT", "/notes/big", strings.Repeat("x", 100)); rec.Code != http.StatusNoContent {
		t.Errorf("PUT of 100 bytes: %d", rec.Code)
	}
}

func TestShippedConfigIsValid(t *testing.T) {
	path := filepath.Join("..", "..", "deploy", "config.toml")
	if _, _, err := (config.File[Config]{Path: path, AppDefaults: DefaultConfig}).Load(); err != nil {
		t.Fatal(err)
	}
}

func TestWarmUpReportsItsProgress(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StartDelay = config.Duration{Duration: 1500 * time.Millisecond}
	a, err := newApp(slog.New(slog.DiscardHandler), cfg, t.TempDir(), token(t, credentials(t, testToken)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	var more []time.Duration
	if err := a.Start(context.Background(), func(_ string, d time.Duration) { more = append(more, d) }); err != nil {
		t.Fatal(err)
	}
	// Once at the start and once a second after, each time asking for
	// what is left and a margin.
	if len(more) != 2 || more[0] < 6*time.Second || more[0] > 6500*time.Millisecond || more[1] > more[0]-time.Second/2 {
		t.Errorf("progress asked for %v, want about [6.5s 5.5s]", more)
	}
}

func TestStartReturnsWhenItsContextEnds(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StartDelay = config.Duration{Duration: time.Hour}
	a, err := newApp(slog.New(slog.DiscardHandler), cfg, t.TempDir(), token(t, credentials(t, testToken)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := a.Start(ctx, func(string, time.Duration) {}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Start with an hour's warm-up and a context that ends: %v", err)
	}
}

func TestWritesNeedTheTokenAndReadsDoNot(t *testing.T) {
	a := startApp(t, t.TempDir(), DefaultConfig())
	for _, auth := range []string{"", "Bearer wrong"} {
		if rec := doAuth(a, "PUT", "/notes/n", "x", auth); rec.Code != http.StatusUnauthorized {
			t.Errorf("PUT with Authorization %q: %d, want 401", auth, rec.Code)
		}
	}
	if rec := do(a, "GET", "/notes/n", ""); rec.Code != http.StatusNotFound {
		t.Errorf("a refused PUT stored something: GET = %d", rec.Code)
	}
	do(a, "PUT", "/notes/n", "x")
	for _, path := range []string{"/", "/notes/n"} {
		if rec := doAuth(a, "GET", path, "", ""); rec.Code != http.StatusOK {
			t.Errorf("GET %s without a token: %d", path, rec.Code)
		}
	}
}

// TestEveryWriteRouteNeedsTheToken walks the app's routes: any that is not
// a GET must refuse a request without the token, so a write route added
// without Token.Require fails here.
func TestEveryWriteRouteNeedsTheToken(t *testing.T) {
	a := startApp(t, t.TempDir(), DefaultConfig())
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

// TestWithoutTheCredentialWritesAreRefusedAndReadsServed: a daemon with
// no token still serves reads.
func TestWithoutTheCredentialWritesAreRefusedAndReadsServed(t *testing.T) {
	a := startAppWith(t, t.TempDir(), DefaultConfig(), credentials(t, ""))
	if rec := do(a, "PUT", "/notes/n", "x"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("PUT without the credential: %d, want 503", rec.Code)
	}
	if rec := doAuth(a, "GET", "/", "", ""); rec.Code != http.StatusOK {
		t.Errorf("GET / without the credential: %d", rec.Code)
	}
}

// startAppLogging is startApp with the app's log written to the returned
// buffer, in slog's text format.
func startAppLogging(t *testing.T, cfg Config) (*App, *bytes.Buffer) {
	t.Helper()
	logs := &bytes.Buffer{}
	a, err := newApp(slog.New(slog.NewTextHandler(logs, nil)), cfg, t.TempDir(), token(t, credentials(t, testToken)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background(), func(string, time.Duration) {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, logs
}

// TestANameTooLongIsRefusedWith414: a name the store can take is stored;
// one byte longer is the client's error, 414, and never reaches the store,
// whose refusal would be a 500.
func TestANameTooLongIsRefusedWith414(t *testing.T) {
	a, logs := startAppLogging(t, DefaultConfig())
	for _, c := range []struct {
		name string
		code int
	}{
		{strings.Repeat("n", maxNameBytes), http.StatusNoContent},
		{strings.Repeat("n", maxNameBytes+1), http.StatusRequestURITooLong},
		{strings.Repeat("é", maxNameBytes/2+1), http.StatusRequestURITooLong},
	} {
		if rec := do(a, "PUT", "/notes/"+c.name, "body"); rec.Code != c.code {
			t.Errorf("PUT of a %d-byte name: %d %.100q, want %d", len(c.name), rec.Code, rec.Body, c.code)
		}
	}
	if rec := do(a, "GET", "/notes/"+strings.Repeat("n", maxNameBytes+1), ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET of the refused name: %d, want 404", rec.Code)
	}
	if logs.Len() != 0 {
		t.Errorf("a client's error was logged: %.300s", logs)
	}
}

// TestALongNameIsLoggedCut: a note refused for a reason of the daemon's
// is logged with its name, cut: one long name makes no long log line.
func TestALongNameIsLoggedCut(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxNotes = 1
	a, logs := startAppLogging(t, cfg)
	if rec := do(a, "PUT", "/notes/first", "x"); rec.Code != http.StatusNoContent {
		t.Fatalf("PUT: %d %s", rec.Code, rec.Body)
	}
	name := strings.Repeat("n", maxNameBytes)
	if rec := do(a, "PUT", "/notes/"+name, "x"); rec.Code != http.StatusInsufficientStorage {
		t.Fatalf("PUT past max_notes: %d %.100q, want 507", rec.Code, rec.Body)
	}
	line := logs.String()
	if len(line) > 512 || !strings.Contains(line, "nnnn… (32768 bytes)") {
		t.Errorf("%d bytes logged for the refused note, want its name cut to %d bytes and its length: %.300s", len(line), loggedNameBytes, line)
	}
}

// leavesOnceTaken is the context of a request whose client leaves the
// instant the work loop has taken its write. Done is open when first asked,
// as the write is handed to the loop (store.do), and closed from then on;
// Err follows it.
type leavesOnceTaken struct {
	context.Context
	asked atomic.Int32
}

func (c *leavesOnceTaken) Done() <-chan struct{} {
	if c.asked.Add(1) == 1 {
		return nil // never closed: the client is there
	}
	gone := make(chan struct{})
	close(gone)
	return gone
}

func (c *leavesOnceTaken) Err() error {
	if c.asked.Load() > 1 {
		return context.Canceled
	}
	return nil
}

// TestAWriteTakenBeforeTheClientLeftCountsAsStored: once the work loop
// has taken a write, the client leaving does not make it a failure. The
// note is stored, so the answer is 204 (sent if the connection is still
// there, and counted so in the metrics), and nothing is logged as an
// error: the loop was answering.
func TestAWriteTakenBeforeTheClientLeftCountsAsStored(t *testing.T) {
	a, logs := startAppLogging(t, DefaultConfig())
	mux := http.NewServeMux()
	a.Routes(func(pattern string, h http.Handler) { mux.Handle(pattern, h) })
	for _, name := range []string{"one", "two", "three"} {
		r := httptest.NewRequestWithContext(&leavesOnceTaken{Context: context.Background()}, "PUT", "/notes/"+name, strings.NewReader("body of "+name))
		r.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, r)
		if rec.Code != http.StatusNoContent {
			t.Errorf("PUT %s, the client gone once its write was taken: %d %q, want 204", name, rec.Code, rec.Body)
		}
		if rec := do(a, "GET", "/notes/"+name, ""); rec.Code != 200 || rec.Body.String() != "body of "+name {
			t.Errorf("GET %s: %d %q, want the note stored", name, rec.Code, rec.Body)
		}
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("a stored write was logged as an error:\n%s", logs)
	}
}
