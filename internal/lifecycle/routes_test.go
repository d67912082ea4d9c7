package lifecycle

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"example.com/daemon/internal/metrics"
)

// noApp is an app with no routes of its own.
type noApp struct{}

func (noApp) Start(context.Context, Progress) error { return nil }
func (noApp) Routes(func(string, http.Handler))     {}
func (noApp) Check(context.Context) error           { return nil }
func (noApp) Close() error                          { return nil }

// TestReadyzFollowsReadiness: GET /readyz answers 503 before READY=1 and
// from STOPPING=1 on, when no listener is left to ask it through; here the
// handler is asked directly.
func TestReadyzFollowsReadiness(t *testing.T) {
	t.Parallel()
	d := &daemon{Options: Options{
		Logger:  slog.New(slog.DiscardHandler),
		Metrics: metrics.New(prometheus.NewRegistry(), metrics.Build{}),
		App:     noApp{},
	}}
	h := d.handler(nil)
	for _, ready := range []bool{false, true, false} {
		d.setReady(ready)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if want := map[bool]int{true: 200, false: 503}[ready]; rec.Code != want {
			t.Errorf("ready=%v: GET /readyz %d, want %d", ready, rec.Code, want)
		}
	}
}
