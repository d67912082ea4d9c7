package lifecycle

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"example.com/daemon/internal/config"
	"example.com/daemon/internal/metrics"
)

// What the kit adds to a request: GET /readyz through the server the
// lifecycle builds (serve: the connection limit and tracking on the
// listener, ConnState and ConnContext, the server timeouts) and the handler
// chain around every route (handler: the busy mark, the request metrics,
// panic recovery, the router), against net/http with the same timeouts
// serving the same handler on a ServeMux. docs/performance.md has the
// figures.

// kitDaemon is a daemon with no app, ready, with the default settings.
func kitDaemon() *daemon {
	d := newDaemon(Options{
		Logger:  slog.New(slog.DiscardHandler),
		Metrics: metrics.New(prometheus.NewRegistry(), metrics.Build{}),
		App:     noApp{},
		Config:  config.Default(),
	})
	d.setReady(true)
	return d
}

// serveOne starts srv on a loopback listener (wrapped by wrap) and returns
// one keep-alive connection to it, and what a GET /readyz on it answers.
func serveOne(tb testing.TB, srv *http.Server, wrap func(net.Listener) net.Listener) (net.Conn, []byte) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(wrap(ln))
	tb.Cleanup(func() { srv.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	// The first answer, read as a client would, gives the length of every
	// next one: the same headers, and a Date of fixed width.
	if _, err := io.WriteString(c, readyzRequest); err != nil {
		tb.Fatal(err)
	}
	var raw strings.Builder
	resp, err := http.ReadResponse(bufio.NewReader(io.TeeReader(c, &raw)), nil)
	if err != nil {
		tb.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "ready\n" {
		tb.Fatalf("GET /readyz: %s %q", resp.Status, body)
	}
	return c, []byte(raw.String())
}

const readyzRequest = "GET /readyz HTTP/1.1\r\nHost: bench\r\n\r\n"

// BenchmarkRequest sends GET /readyz, one after the other, over one
// keep-alive connection on the loopback, to net/http and to the kit. The
// client writes the same bytes and reads a fixed length each time, and
// allocates nothing: allocs/op are the server's.
func BenchmarkRequest(b *testing.B) {
	for _, s := range []struct {
		name  string
		serve func(d *daemon) (*http.Server, func(net.Listener) net.Listener)
	}{
		{"net/http", func(d *daemon) (*http.Server, func(net.Listener) net.Listener) {
			mux := http.NewServeMux()
			mux.Handle("GET /readyz", d.handleReadyz())
			return d.newServer(mux), func(ln net.Listener) net.Listener { return ln } // the same timeouts
		}},
		{"kit", func(d *daemon) (*http.Server, func(net.Listener) net.Listener) {
			srv := d.newServer(d.handler(d.Metrics.Handler()))
			srv.ConnState, srv.ConnContext = connState, connContext
			return srv, func(ln net.Listener) net.Listener {
				return newLimitListener(ln, d.cfg.HTTP.MaxConnections, d.Metrics.ConnectionShed, d.Metrics.AnsweredByServer)
			}
		}},
	} {
		b.Run(s.name, func(b *testing.B) {
			srv, wrap := s.serve(kitDaemon())
			c, first := serveOne(b, srv, wrap)
			resp := make([]byte, len(first))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := io.WriteString(c, readyzRequest); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
