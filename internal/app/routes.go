package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"time"
)

// routes lists every endpoint the daemon answers on its main listener.
// GET /metrics is here unless systemd passed a socket named "metrics" or
// -metrics-listen was given: then it is served there alone (metricsHandler
// is nil), so that the metrics port can be firewalled apart.
func (a *App) routes(mux *http.ServeMux, metricsHandler http.Handler) {
	handle := func(pattern string, h http.Handler) {
		mux.Handle(pattern, a.metrics.Instrument(pattern, a.recoverPanics(pattern, h)))
	}
	handle("GET /{$}", a.handleGreeting())
	handle("GET /healthz", a.handleHealthz())
	handle("GET /readyz", a.handleReadyz())
	handle("GET /notes/{name}", a.handleGetNote())
	handle("PUT /notes/{name}", a.handlePutNote())
	handle("POST /debug/wedge", a.debugOnly(a.handleWedge()))
	handle("GET /debug/sleep", a.debugOnly(a.handleSleep()))
	handle("GET /debug/panic", a.debugOnly(a.handlePanic()))
	if metricsHandler != nil {
		handle("GET /metrics", metricsHandler)
	}
}

// handleGreeting answers with the configured greeting; a reload changes it.
func (a *App) handleGreeting() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, a.config().Greeting)
		io.WriteString(w, "\n") // apart, so that GET / allocates no string
	})
}

// handleHealthz answers 200 while the work loop answers: the process can
// serve. It is the same check that gates the systemd watchdog.
func (a *App) handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if err := a.Check(ctx); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
}

// handleReadyz answers 200 only between READY=1 and STOPPING=1.
func (a *App) handleReadyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
}

func (a *App) handleGetNote() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		note, ok, err := a.store.get(r.Context(), r.PathValue("name"))
		switch {
		case err != nil:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		case !ok:
			http.NotFound(w, r)
		default:
			io.WriteString(w, note)
		}
	})
}

// maxNote bounds a note's size: a body is read whole into memory.
const maxNote = 64 << 10

// handlePutNote stores the body under the name and answers 204 once it is
// on disk.
func (a *App) handlePutNote() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxNote))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, fmt.Sprintf("note larger than %d bytes", maxNote), http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := a.store.put(r.Context(), r.PathValue("name"), string(body)); err != nil {
			a.logger.Error("store note", "name", r.PathValue("name"), "err", err)
			http.Error(w, "could not store the note", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// debugOnly answers 404 unless debug_endpoints is on. The switch is read on
// every request, so a reload turns the endpoints on or off.
func (a *App) debugOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.config().DebugEndpoints {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// recoverPanics turns a panic in h into a 500, an error in the log with
// the stack, and a count in daemon_http_panics_total. net/http would recover
// it too, but only by closing the connection and writing to its own log.
func (a *App) recoverPanics(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler { //nolint:errorlint // the sentinel is panicked as is
				panic(v) // the handler's way to abort the response on purpose
			}
			a.metrics.Panicked(route)
			a.logger.Error("panic serving request", "route", route, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			http.Error(w, "internal error", http.StatusInternalServerError)
		}()
		h.ServeHTTP(w, r)
	})
}

// handlePanic panics, to show that one bad request does not end the daemon.
func (a *App) handlePanic() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("debug panic requested")
	})
}

// handleWedge hangs the work loop, to show the watchdog restarting a daemon
// whose health check fails.
func (a *App) handleWedge() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.wedge(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

// handleSleep holds the request open for ?d= (default 1s), to show in-flight
// requests finishing during a stop.
func (a *App) handleSleep() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := time.Second
		if s := r.URL.Query().Get("d"); s != "" {
			var err error
			if d, err = time.ParseDuration(s); err != nil {
				http.Error(w, "d: "+err.Error(), http.StatusBadRequest)
				return
			}
		}
		select {
		case <-time.After(d):
			fmt.Fprintf(w, "slept %s\n", d)
		case <-r.Context().Done():
		}
	})
}
