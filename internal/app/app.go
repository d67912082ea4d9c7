// Package app is where your service goes: the smallest app on the kit, a
// greeting from the configuration and a health check, with no state. Until
// `make drop-example` it stands beside the example (internal/example), which
// cmd/daemon runs; the drop plugs this one in instead. Grow it into your
// service: the kit around it (sockets, readiness, reload, watchdog, drain,
// /healthz, /readyz, /metrics, logs, the API token) stays as it is.
package app

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"

	"example.com/daemon/internal/config"
	"example.com/daemon/internal/lifecycle"
	"example.com/daemon/internal/service"
)

// Config is the app's part of the configuration file: top-level keys
// beside the kit's own, with toml tags.
type Config struct {
	Greeting string `toml:"greeting"`
}

// Settings describes each of Config's keys, for the people who set them
// (config.Documented): `make docs` writes the README's table of the app's
// settings, the manual page's and deploy/config.toml from it. A key
// without one fails the docs' test.
func (Config) Settings() []config.Setting {
	return []config.Setting{
		{Key: "greeting", Reloadable: true, Doc: "What `GET /` answers."},
	}
}

// DefaultConfig returns the app's settings when the file does not set them.
func DefaultConfig() Config { return Config{Greeting: "Hello!"} }

// NeedsStateDir makes the daemon refuse to start without a state directory
// (StateDirectory= in the unit); set it when the app keeps state there.
const NeedsStateDir = false

// App is the service.
type App struct{ cfg atomic.Pointer[Config] }

// New builds the app from what the kit made for it (service.Deps: the
// logger, the metrics registry, the settings, the state directory, the
// credentials and the API token).
func New(d service.Deps[Config]) (service.App[Config], error) {
	a := &App{}
	a.Apply(d.Config)
	return a, nil
}

// Start opens what the app needs before it can serve; connections wait in
// the socket's backlog meanwhile.
func (a *App) Start(context.Context, lifecycle.Progress) error { return nil }

// Routes lists the app's endpoints; the kit adds /healthz, /readyz and
// /metrics beside them. Wrap a write in d.Token.Require to make it need
// the API token.
func (a *App) Routes(handle func(pattern string, h http.Handler)) {
	handle("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, a.cfg.Load().Greeting)
		io.WriteString(w, "\n") // apart: no string built per request
	}))
}

// Check is the health check: /healthz answers with it, and the watchdog is
// fed only while it passes. Make it fail when the app cannot do its work.
func (a *App) Check(context.Context) error { return nil }

// Apply takes the settings of a configuration reloaded on SIGHUP.
func (a *App) Apply(c Config) { a.cfg.Store(&c) }

// Close releases what Start opened.
func (a *App) Close() error { return nil }
