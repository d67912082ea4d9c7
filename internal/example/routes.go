package example

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"
)

// Routes lists every endpoint of the example service. The lifecycle adds
// its own beside them (GET /healthz, GET /readyz, GET /metrics: see
// internal/lifecycle/routes.go), and wraps each in request metrics and panic
// recovery. Reads are open; every write needs the API token, which the kit
// checks (internal/auth).
func (a *App) Routes(handle func(pattern string, h http.Handler)) {
	handle("GET /{$}", a.handleGreeting())
	handle("GET /notes/{name}", a.handleGetNote())
	handle("PUT /notes/{name}", a.token.Require(a.handlePutNote()))
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
// on disk. A name longer than the store takes is refused with 414. The
// limits are the configuration's at the time of the request: 413 for a
// body past max_note_bytes (read no further than that), 507
// Insufficient Storage (RFC 4918) for a store past max_notes or
// max_state_bytes, or a full disk. A refused write changes nothing.
func (a *App) handlePutNote() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if len(name) > maxNameBytes {
			// 414 URI Too Long (RFC 9110, 15.5.15), not 400: the request
			// is well formed, its target is longer than the daemon takes,
			// and the client learns that a shorter name will do. The name
			// reaching the store would fail there, a 500 for the client's
			// own input.
			http.Error(w, fmt.Sprintf("a note's name may be at most %d bytes", maxNameBytes), http.StatusRequestURITooLong)
			return
		}
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
		// A client that leaves once the work loop has taken its write
		// finds the note stored all the same, and the write counts as
		// stored: put waits for the write the loop has begun.
		err = a.store.put(r.Context(), name, string(body), limits{notes: cfg.MaxNotes, bytes: cfg.MaxStateBytes})
		var full errFull
		switch {
		case errors.As(err, &full):
			a.logger.Warn("note refused: the store is full", "name", loggedName(name), "err", full)
			http.Error(w, "not stored: "+full.why, http.StatusInsufficientStorage)
		case err != nil:
			a.logger.Error("store note", "name", loggedName(name), "err", err)
			http.Error(w, "could not store the note", http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
}

// loggedNameBytes is as much of a note's name as the log shows.
const loggedNameBytes = 64

// loggedName is a note's name as the log shows it: whole up to
// loggedNameBytes, cut there beyond and followed by its length. The name is
// the client's: logged whole, one long name would make every line about it
// as long, in the journal and on the console of whoever reads it.
func loggedName(name string) string {
	if len(name) <= loggedNameBytes {
		return name
	}
	cut := loggedNameBytes
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut-- // not inside a character
	}
	return fmt.Sprintf("%s… (%d bytes)", name[:cut], len(name))
}
