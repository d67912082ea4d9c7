package app

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"example.com/daemon/internal/config"
	"example.com/daemon/internal/metrics"
)

func newApp(t *testing.T, dir string, cfg config.Config) *App {
	t.Helper()
	a, err := New(slog.New(slog.DiscardHandler), cfg, metrics.New(prometheus.NewRegistry(), metrics.Build{}), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func do(a *App, method, path, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	a.Handler(nil).ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec
}

func TestNotesSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, config.Default())
	if rec := do(a, "PUT", "/notes/todo", "buy milk"); rec.Code != http.StatusNoContent {
		t.Fatalf("PUT: %d %s", rec.Code, rec.Body)
	}
	a.Close()
	b := newApp(t, dir, config.Default())
	if rec := do(b, "GET", "/notes/todo", ""); rec.Code != 200 || rec.Body.String() != "buy milk" {
		t.Errorf("GET after restart: %d %q", rec.Code, rec.Body)
	}
	if rec := do(b, "GET", "/notes/other", ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET of a missing note: %d", rec.Code)
	}
}

func TestFailedWriteKeepsTheOldState(t *testing.T) {
	dir := t.TempDir()
	a := newApp(t, dir, config.Default())
	do(a, "PUT", "/notes/a", "one")
	// A non-empty directory where the state file goes: the rename fails,
	// even for root.
	path := filepath.Join(dir, stateFile)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "blocker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if rec := do(a, "PUT", "/notes/a", "two"); rec.Code != http.StatusInternalServerError {
		t.Errorf("PUT that cannot be saved: %d, want 500", rec.Code)
	}
	if rec := do(a, "GET", "/notes/a", ""); rec.Body.String() != "one" {
		t.Errorf("after a failed write: %q, want the old note", rec.Body)
	}
}

func TestNoteBodyIsLimited(t *testing.T) {
	a := newApp(t, t.TempDir(), config.Default())
	if rec := do(a, "PUT", "/notes/big", strings.Repeat("x", maxNote+1)); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("PUT of %d bytes: %d, want 413", maxNote+1, rec.Code)
	}
}

func TestDebugEndpointsFollowTheConfig(t *testing.T) {
	a := newApp(t, t.TempDir(), config.Default())
	if rec := do(a, "POST", "/debug/wedge", ""); rec.Code != http.StatusNotFound {
		t.Errorf("POST /debug/wedge with debug_endpoints off: %d, want 404", rec.Code)
	}
	cfg := config.Default()
	cfg.DebugEndpoints = true
	a.Apply(cfg)
	if rec := do(a, "GET", "/debug/sleep?d=1ms", ""); rec.Code != 200 {
		t.Errorf("GET /debug/sleep after enabling: %d", rec.Code)
	}
}

func TestWedgeFailsTheHealthCheck(t *testing.T) {
	cfg := config.Default()
	cfg.DebugEndpoints = true
	a := newApp(t, t.TempDir(), cfg)
	if rec := do(a, "GET", "/healthz", ""); rec.Code != 200 {
		t.Fatalf("healthz before wedge: %d", rec.Code)
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

func TestReadyzFollowsSetReady(t *testing.T) {
	a := newApp(t, t.TempDir(), config.Default())
	for _, ready := range []bool{false, true, false} {
		a.SetReady(ready)
		want := map[bool]int{true: 200, false: 503}[ready]
		if rec := do(a, "GET", "/readyz", ""); rec.Code != want {
			t.Errorf("ready=%v: /readyz %d, want %d", ready, rec.Code, want)
		}
	}
}

func TestPanicInAHandlerIsRecoveredLoggedAndCounted(t *testing.T) {
	cfg := config.Default()
	cfg.DebugEndpoints = true
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	a, err := New(slog.New(slog.NewTextHandler(&logs, nil)), cfg, metrics.New(reg, metrics.Build{}), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a.Start(context.Background())
	t.Cleanup(func() { a.Close() })
	if rec := do(a, "GET", "/debug/panic", ""); rec.Code != http.StatusInternalServerError {
		t.Errorf("GET /debug/panic: %d, want 500", rec.Code)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "routes.go") {
		t.Errorf("panic not logged at error level with its stack: %s", logs.String())
	}
	if n, err := testutil.GatherAndCount(reg, "daemon_http_panics_total"); err != nil || n != 1 {
		t.Errorf("daemon_http_panics_total series: %d, %v; want 1", n, err)
	}
	// …and the app still serves.
	if rec := do(a, "GET", "/", ""); rec.Code != 200 {
		t.Errorf("GET / after a panic: %d", rec.Code)
	}
}
