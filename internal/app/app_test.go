package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"example.com/daemon/internal/config"
	"example.com/daemon/internal/service"
)

// serve answers one request with the app's routes alone; the kit's own
// (/healthz, /readyz, /metrics) are tested with the kit.
func serve(a *App, method, path string) *httptest.ResponseRecorder {
	mux := http.NewServeMux()
	a.Routes(func(pattern string, h http.Handler) { mux.Handle(pattern, h) })
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestGreetsAndAReloadChangesTheGreeting(t *testing.T) {
	la, err := New(service.Deps[Config]{Config: DefaultConfig()})
	if err != nil {
		t.Fatal(err)
	}
	a := la.(*App)
	if err := a.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if rec := serve(a, "GET", "/"); rec.Code != 200 || rec.Body.String() != "Hello!\n" {
		t.Errorf("GET / = %d %q", rec.Code, rec.Body)
	}
	a.Apply(Config{Greeting: "Hi"})
	if rec := serve(a, "GET", "/"); rec.Body.String() != "Hi\n" {
		t.Errorf("GET / after Apply = %q", rec.Body)
	}
	if err := a.Check(context.Background()); err != nil {
		t.Errorf("health check: %v", err)
	}
}

// TestEveryKeyIsDescribed: each of Config's keys has its Setting, which the
// docs are made from.
func TestEveryKeyIsDescribed(t *testing.T) {
	if _, err := config.Keys(DefaultConfig()); err != nil {
		t.Fatal(err)
	}
}
