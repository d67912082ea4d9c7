package app

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
	"testing"
	"time"

	"example.com/daemon/internal/config"
	"example.com/daemon/internal/systemd"
	"example.com/daemon/test/docs/docstest"
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
		if err := os.WriteFile(filepath.Join(dir, tokenName), []byte(token+"\n"), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	return systemd.Credentials{Dir: dir}
}

func newApp(t *testing.T, dir string, cfg Config) *App {
	t.Helper()
	return newAppWith(t, dir, cfg, credentials(t, testToken))
}

func newAppWith(t *testing.T, dir string, cfg Config, creds systemd.Credentials) *App {
	t.Helper()
	a, err := New(slog.New(slog.DiscardHandler), cfg, dir, creds)
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
// request that hangs (a wedge that was not refused) ends after 2 s.
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
	a := newApp(t, dir, DefaultConfig())
	if rec := do(a, "PUT", "/notes/todo", "buy milk"); rec.Code != http.StatusNoContent {
		t.Fatalf("PUT: %d %s", rec.Code, rec.Body)
	}
	a.Close()
	b := newApp(t, dir, DefaultConfig())
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
	a := newApp(t, t.TempDir(), cfg)
	if rec := do(a, "PUT", "/notes/big", strings.Repeat("x", 101)); rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "max_note_bytes") {
		t.Errorf("PUT of 101 bytes under max_note_bytes = 100: %d %q, want 413 naming the setting", rec.Code, rec.Body)
	}
	if rec := do(a, "PUT", "/notes/big", strings.Repeat("x", 100)); rec.Code != http.StatusNoContent {
		t.Errorf("PUT of 100 bytes: %d", rec.Code)
	}
}

func TestDebugEndpointsFollowTheConfig(t *testing.T) {
	a := newApp(t, t.TempDir(), DefaultConfig())
	if rec := do(a, "POST", "/debug/wedge", ""); rec.Code != http.StatusNotFound {
		t.Errorf("POST /debug/wedge with debug_endpoints off: %d, want 404", rec.Code)
	}
	cfg := DefaultConfig()
	cfg.DebugEndpoints = true
	a.Apply(cfg)
	if rec := do(a, "GET", "/debug/sleep?d=1ms", ""); rec.Code != 200 {
		t.Errorf("GET /debug/sleep after enabling: %d", rec.Code)
	}
}

func TestWedgeFailsTheHealthCheck(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DebugEndpoints = true
	a := newApp(t, t.TempDir(), cfg)
	if err := a.Check(context.Background()); err != nil {
		t.Fatalf("health check before the wedge: %v", err)
	}
	if rec := do(a, "POST", "/debug/wedge", ""); rec.Code != http.StatusAccepted {
		t.Fatalf("wedge: %d", rec.Code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := a.Check(ctx); err == nil {
		t.Error("health check of a wedged app passed")
	}
}

func TestShippedConfigIsValid(t *testing.T) {
	path := filepath.Join("..", "..", "deploy", "config.toml")
	_, cfg, err := config.File[Config]{Path: path, AppDefaults: DefaultConfig}.Load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DebugEndpoints {
		t.Error("the shipped config enables the debug endpoints")
	}
}

// TestREADMEListsTheExamplesSettings: the README's table of the example's
// settings is Config's.
func TestREADMEListsTheExamplesSettings(t *testing.T) {
	docstest.CheckSettingsTable(t,
		docstest.Section(t, filepath.Join("..", "..", "README.md"), "and, beside them", "An error names"),
		DefaultConfig())
}

// TestManPageDescribesTheExamplesSettings: each of Config's keys has a
// term in the manual page.
func TestManPageDescribesTheExamplesSettings(t *testing.T) {
	docstest.CheckManPageLists(t, docstest.ManPage(t, filepath.Join("..", "..")), docstest.Keys(DefaultConfig()))
}

func TestWarmUpReportsItsProgress(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StartDelay = config.Duration{Duration: 1500 * time.Millisecond}
	a, err := New(slog.New(slog.DiscardHandler), cfg, t.TempDir(), credentials(t, testToken))
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
	a, err := New(slog.New(slog.DiscardHandler), cfg, t.TempDir(), credentials(t, testToken))
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

func TestAllocHoldsAndChurnsMemory(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DebugEndpoints = true
	a := newApp(t, t.TempDir(), cfg)
	rec := do(a, "GET", "/debug/alloc?live=8&garbage=64", "")
	if rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), "held 8 MiB, allocated 64 MiB more: ") {
		t.Errorf("GET /debug/alloc = %d %q", rec.Code, rec.Body)
	}
	if rec := do(a, "GET", "/debug/alloc?live=-1", ""); rec.Code != http.StatusBadRequest {
		t.Errorf("GET /debug/alloc?live=-1 = %d, want 400", rec.Code)
	}
}

func TestLogLogsANumberedLine(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DebugEndpoints = true
	var logs bytes.Buffer
	a, err := New(slog.New(slog.NewTextHandler(&logs, nil)), cfg, t.TempDir(), credentials(t, testToken))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background(), func(string, time.Duration) {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if rec := do(a, "GET", "/debug/log?seq=7", ""); rec.Code != http.StatusNoContent || !strings.Contains(logs.String(), "seq=7") {
		t.Errorf("GET /debug/log?seq=7: %d, logged %q", rec.Code, logs.String())
	}
}
