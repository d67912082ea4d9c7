package lifecycle

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"time"
)

// handler is every endpoint the daemon answers on its main listener: the
// ones every daemon has, listed here, the kit's test instruments
// (instruments.go, off unless configured), and the app's, listed in its own
// routes (App.Routes). GET /metrics is here unless systemd passed a socket
// named "metrics" or -metrics-listen was given: then it is served there
// alone (metricsOnMain is nil), so that the metrics port can be firewalled
// apart.
func (d *daemon) handler(metricsOnMain http.Handler) http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h http.Handler) {
		mux.Handle(pattern, d.Metrics.Instrument(pattern, d.recoverPanics(pattern, h)))
	}
	handle("GET /healthz", d.handleHealthz())
	handle("GET /readyz", d.handleReadyz())
	if metricsOnMain != nil {
		handle("GET /metrics", metricsOnMain)
	}
	d.instrumentRoutes(handle)
	d.App.Routes(handle)
	// The requests no route takes (404, 405) are counted too, under one
	// route label whatever their path: a scan for paths the daemon does
	// not have shows in the metrics without a series for each path. Those
	// net/http answers before the mux (400, 431) are counted by the
	// listener (limit.go).
	return markBusy(d.Metrics.InstrumentMux(mux))
}

// handleHealthz answers 200 while the app's health check passes: the
// process can do its work. It is the check that gates the watchdog.
func (d *daemon) handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if err := d.check(ctx); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
}

// handleReadyz answers 200 only between READY=1 and STOPPING=1, so that a
// load balancer stops sending new requests before the listener closes.
func (d *daemon) handleReadyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !d.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
}

// recoverPanics turns a panic in h into a 500, an error in the log with
// the stack, and a count in the http_panics_total metric. net/http would
// recover it too, but only by closing the connection and writing to its
// own log.
func (d *daemon) recoverPanics(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler { //nolint:errorlint // the sentinel is panicked as is
				panic(v) // the handler's way to abort the response on purpose
			}
			d.Metrics.Panicked(route)
			d.Logger.Error("panic serving request", "route", route, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			http.Error(w, "internal error", http.StatusInternalServerError)
		}()
		h.ServeHTTP(w, r)
	})
}
