//go:build !race

// The race detector makes sync.Pool drop what it holds at random, and the
// request metrics keep their writers in one, so this only holds without it.

package lifecycle

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// recorder is a ResponseWriter that keeps nothing and allocates nothing.
type recorder struct {
	header http.Header
	code   int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *recorder) WriteHeader(code int)        { r.code = code }

// TestTheKitsWrappersAllocateNothing: a request through the handler chain
// the lifecycle builds around a route (the busy mark on its connection, the
// request metrics, panic recovery, the router) makes no allocation that
// the route's handler alone, on a ServeMux, does not make. Every request
// pays for each one, and the garbage collector after it.
func TestTheKitsWrappersAllocateNothing(t *testing.T) {
	d := kitDaemon()
	kit := d.handler(nil)
	mux := http.NewServeMux()
	mux.Handle("GET /readyz", d.handleReadyz())

	// The request as net/http hands it over: its context carries the
	// connection (connContext), which the busy mark looks up.
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	ln := newLimitListener(nil, 1, func() {}, func(int) {})
	lc := &limitedConn{Conn: server, l: ln}
	req := httptest.NewRequest("GET", "/readyz", nil)
	req = req.WithContext(connContext(context.Background(), lc))

	allocs := func(h http.Handler) float64 {
		w := &recorder{header: http.Header{}}
		return testing.AllocsPerRun(1000, func() {
			clear(w.header)
			h.ServeHTTP(w, req)
			connState(lc, http.StateIdle)
		})
	}
	bare, withKit := allocs(mux), allocs(kit)
	if withKit > bare {
		t.Errorf("GET /readyz through the kit's wrappers makes %v allocations, the handler on a ServeMux %v: the wrappers allocate", withKit, bare)
	}
}
