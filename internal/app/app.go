// Package app is the example service the daemon runs: a greeting that comes
// from the configuration (to show reloads), notes kept durably in the state
// directory (to show state that survives restarts), and a work loop whose
// health decides whether the systemd watchdog is fed.
//
// Replace it with your own service; the lifecycle package needs only the
// methods of App that it calls.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"example.com/daemon/internal/config"
	"example.com/daemon/internal/metrics"
)

// App is the example service.
type App struct {
	logger  *slog.Logger
	metrics *metrics.Metrics
	cfg     atomic.Pointer[config.Config]
	ready   atomic.Bool
	store   *store
	loop    context.Context // the work loop's life; Close ends it
	stop    context.CancelFunc
	done    chan struct{}
}

// New returns the app with its first configuration, its metrics and the
// directory it keeps state in. It loads the saved state; Start begins the
// work.
func New(logger *slog.Logger, cfg config.Config, m *metrics.Metrics, stateDir string) (*App, error) {
	s, err := openStore(stateDir)
	if err != nil {
		return nil, err
	}
	a := &App{logger: logger, metrics: m, store: s, done: make(chan struct{})}
	a.cfg.Store(&cfg)
	return a, nil
}

// Start starts the work loop and does the warm-up a real service would do
// before it can serve (here simulated by start_delay). It returns when the
// app can serve, or when ctx is done.
func (a *App) Start(ctx context.Context) error {
	a.loop, a.stop = context.WithCancel(context.Background())
	go func() {
		defer close(a.done)
		a.store.run(a.loop)
	}()
	if d := a.config().StartDelay.Duration; d > 0 {
		a.logger.Info("warming up", "start_delay", d)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Handler returns the HTTP handler with every route (see routes.go), and
// GET /metrics served by metricsHandler unless it is nil.
func (a *App) Handler(metricsHandler http.Handler) http.Handler {
	mux := http.NewServeMux()
	a.routes(mux, metricsHandler)
	return mux
}

// Apply swaps in a new configuration. Requests already running keep the one
// they started with; the next ones see the new one.
func (a *App) Apply(cfg config.Config) {
	a.cfg.Store(&cfg)
}

func (a *App) config() *config.Config { return a.cfg.Load() }

// SetReady sets what GET /readyz answers. The lifecycle manager sets it once
// the daemon serves and clears it the moment stopping begins, so that a load
// balancer stops sending new requests before the listener closes.
func (a *App) SetReady(ready bool) { a.ready.Store(ready) }

// Check is the health check: it succeeds when the work loop answers within
// ctx. GET /healthz and the systemd watchdog both use it.
func (a *App) Check(ctx context.Context) error {
	return a.store.do(ctx, func() {})
}

// Close stops the work loop. Every write it acknowledged is already on disk.
func (a *App) Close() error {
	if a.stop == nil {
		return nil
	}
	a.stop()
	<-a.done
	return nil
}

// wedge hangs the work loop until the app closes: the health check then
// fails, as it would for a real deadlock or a stuck disk.
func (a *App) wedge(ctx context.Context) error {
	select {
	case a.store.reqs <- func() { <-a.loop.Done() }:
		a.logger.Warn("work loop wedged on request; health checks fail from now on")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("work loop not answering: %w", ctx.Err())
	}
}
