package app

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strconv"
	"time"
)

// Routes lists every endpoint of the example service. The lifecycle adds
// its own beside them (GET /healthz, GET /readyz, GET /metrics: see
// internal/lifecycle/routes.go), and wraps each in request metrics and panic
// recovery. Reads are open; every write needs the token (token.go).
func (a *App) Routes(handle func(pattern string, h http.Handler)) {
	handle("GET /{$}", a.handleGreeting())
	handle("GET /notes/{name}", a.handleGetNote())
	handle("PUT /notes/{name}", a.token.requireToken(a.handlePutNote()))
	handle("POST /debug/wedge", a.debugOnly(a.token.requireToken(a.handleWedge())))
	handle("GET /debug/sleep", a.debugOnly(a.handleSleep()))
	handle("GET /debug/panic", a.debugOnly(a.handlePanic()))
	handle("GET /debug/alloc", a.debugOnly(a.handleAlloc()))
	handle("GET /debug/log", a.debugOnly(a.handleLog()))
}

// handleGreeting answers with the configured greeting; a reload changes it.
func (a *App) handleGreeting() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, a.config().Greeting)
		io.WriteString(w, "\n") // apart, so that GET / allocates no string
	})
}

func (a *App) handleGetNote() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		note, ok, err := a.store.get(r.PathValue("name"))
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

// handlePutNote stores the body under the name and answers 204 once it is
// on disk. The limits are the configuration's at the time of the request:
// 413 for a body past max_note_bytes (read no further than that), 507
// Insufficient Storage (RFC 4918) for a store past max_notes or
// max_state_bytes, or a full disk. A refused write changes nothing.
func (a *App) handlePutNote() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cfg := a.config()
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, cfg.MaxNoteBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, fmt.Sprintf("a note may be at most %d bytes (max_note_bytes)", cfg.MaxNoteBytes), http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		err = a.store.put(r.Context(), r.PathValue("name"), string(body), limits{notes: cfg.MaxNotes, bytes: cfg.MaxStateBytes})
		var full errFull
		switch {
		case errors.As(err, &full):
			a.logger.Warn("note refused: the store is full", "name", r.PathValue("name"), "err", full)
			http.Error(w, "not stored: "+full.why, http.StatusInsufficientStorage)
		case err != nil:
			a.logger.Error("store note", "name", r.PathValue("name"), "err", err)
			http.Error(w, "could not store the note", http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
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

// handleAlloc holds ?live= MiB for the request while it allocates ?garbage=
// MiB more, 1 MiB at a time, then keeps the live part for ?hold= (default
// 0): a load that the garbage collector, left to GOGC alone, lets grow the
// heap to twice what is live. It answers with the garbage collections it
// took, to show the Go memory limit at work (docs/resources.md).
func (a *App) handleAlloc() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		live, err1 := strconv.Atoi(cmp.Or(q.Get("live"), "0"))
		garbage, err2 := strconv.Atoi(cmp.Or(q.Get("garbage"), "0"))
		hold, err3 := time.ParseDuration(cmp.Or(q.Get("hold"), "0s"))
		// Bounded, although only tests turn it on: 4 GiB held, 64 GiB churned.
		if err := errors.Join(err1, err2, err3); err != nil || live < 0 || live > 4096 || garbage < 0 || garbage > 65536 || hold > time.Minute {
			http.Error(w, "want ?live=MiB (at most 4096)&garbage=MiB (at most 65536)&hold=DURATION (at most 1m)", http.StatusBadRequest)
			return
		}
		before := gcCycles()
		kept := make([][]byte, live)
		for i := range kept {
			kept[i] = touched(1 << 20)
		}
		var churn [4][]byte
		for i := range garbage {
			churn[i%len(churn)] = touched(1 << 20)
		}
		select {
		case <-time.After(hold):
		case <-r.Context().Done():
		}
		runtime.KeepAlive(kept)
		runtime.KeepAlive(&churn)
		fmt.Fprintf(w, "held %d MiB, allocated %d MiB more: %d garbage collections\n", live, garbage, gcCycles()-before)
	})
}

// touched returns n bytes written to, one byte a page, so that the kernel
// really gives them (a fresh allocation is only address space).
func touched(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		b[i] = 1
	}
	return b
}

// gcCycles is the garbage collections the runtime has completed.
func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// handleLog logs one line with ?seq=, to show that no log record is lost
// while journald restarts.
func (a *App) handleLog() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seq, err := strconv.Atoi(r.URL.Query().Get("seq"))
		if err != nil {
			http.Error(w, "want ?seq=N", http.StatusBadRequest)
			return
		}
		a.logger.Info("debug log line", "seq", seq)
		w.WriteHeader(http.StatusNoContent)
	})
}
