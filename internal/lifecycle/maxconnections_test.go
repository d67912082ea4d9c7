package lifecycle_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Step 4, at max_connections: which connection makes room for a new client,
// and which never does (limit.go; docs/lifecycle.md, step 4).

// TestMaxConnectionsQueuesTheRestWhenAllAreBusy: past max_connections, when
// every connection has a request in a handler, a new one waits in the
// backlog until a slot frees; none is closed to make room.
func TestMaxConnectionsQueuesTheRestWhenAllAreBusy(t *testing.T) {
	t.Parallel()
	d := start(t, options{config: "[http]\nmax_connections = 1"})
	expect(t, d, "STATUS")
	expect(t, d, "READY", "STATUS")
	addr := strings.TrimPrefix(d.url, "http://")
	// The one connection allowed, busy in a handler for a while.
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := io.WriteString(first, "GET /sleep?d=500ms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	firstResp := bufio.NewReader(first)
	inFlight(t, d, 1)
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if _, err := io.WriteString(second, rawGet); err != nil {
		t.Fatal(err)
	}
	second.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := second.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection past max_connections was answered (%d bytes, %v) while the first was busy", n, err)
	}
	first.SetReadDeadline(time.Now().Add(wait))
	if resp, err := http.ReadResponse(firstResp, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the busy connection: %v, %v; want its whole answer, not a close", resp, err)
	}
	first.Close()
	second.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(bufio.NewReader(second), nil)
	if err != nil {
		t.Fatalf("the queued connection, once the first closed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("the queued connection: %s", resp.Status)
	}
	if n := metric(t, d, "daemon_http_connections_shed_total"); n != 0 {
		t.Errorf("%v connections shed, want 0", n)
	}
}

// TestAtMaxConnectionsANewClientTakesTheSlotOfASlowOrIdleOne: with every
// slot held by a connection whose client keeps the server waiting, new
// clients are served long before read_header_timeout or idle_timeout would
// free a slot. The slow ones go first, clients that have begun a request
// and not finished it (a slowloris), a tenth of a second into it; then the
// idle keep-alive one, a second after its answer. Each is counted.
func TestAtMaxConnectionsANewClientTakesTheSlotOfASlowOrIdleOne(t *testing.T) {
	t.Parallel()
	d := start(t, options{config: "[http]\nmax_connections = 3\nread_header_timeout = \"1m\"\nidle_timeout = \"1m\""})
	expect(t, d, "STATUS")
	expect(t, d, "READY", "STATUS")
	addr := strings.TrimPrefix(d.url, "http://")
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Two slow clients, headers half sent, and one idle keep-alive
	// connection that has had its answer.
	var slow []net.Conn
	for range 2 {
		c := dial()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
		slow = append(slow, c)
	}
	idle := dial()
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") // keep-alive
	if resp, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the keep-alive connection's first request: %v, %v", resp, err)
	}
	inFlight(t, d, 0)
	// Each new client, which keeps its connection, is served, the first
	// two in the slots of the slow clients, the third in the idle one's.
	newClient := func(i int) {
		start := time.Now()
		transport := &http.Transport{}
		t.Cleanup(transport.CloseIdleConnections)
		resp, err := (&http.Client{Timeout: wait, Transport: transport}).Get(d.url + "/")
		if err != nil {
			t.Fatalf("new client %d at max_connections: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		t.Logf("new client %d answered in %s", i, time.Since(start).Round(time.Millisecond))
	}
	closed := func(c net.Conn, within time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(within))
		_, err := io.Copy(io.Discard, c)
		return err == nil || !errors.Is(err, os.ErrDeadlineExceeded)
	}
	newClient(0)
	newClient(1)
	for i, c := range slow {
		if !closed(c, wait) {
			t.Errorf("slow client %d still connected after two new clients", i)
		}
	}
	if closed(idle, 0) {
		t.Error("the idle connection was closed before the slow ones")
	}
	newClient(2)
	if !closed(idle, wait) {
		t.Error("the idle connection still open after a third new client")
	}
	if n := metric(t, d, "daemon_http_connections_shed_total"); n != 3 {
		t.Errorf("%v connections shed, want 3", n)
	}
}

// TestAtMaxConnectionsNoRequestOnItsWayIsLost: every slot is a keep-alive
// client sending requests back to back, as a load generator or a proxy's
// pool does, while new clients keep connecting. Between two requests such a
// connection waits a few microseconds, its next request already on the way;
// closing it then to make room would lose that request (a reset, or an end
// of stream before any answer). None is lost: the new clients wait in the
// backlog until a slot frees, and every request of every client is answered.
func TestAtMaxConnectionsNoRequestOnItsWayIsLost(t *testing.T) {
	const slots, requests, newcomers = 4, 300, 40
	d := start(t, options{config: fmt.Sprintf("[http]\nmax_connections = %d", slots)})
	d.ready(t)
	addr := strings.TrimPrefix(d.url, "http://")
	var failed atomic.Int64
	fail := func(who string, err error) {
		if failed.Add(1) <= 5 {
			t.Logf("%s: %v", who, err)
		}
	}
	var clients sync.WaitGroup
	holding := make(chan struct{}, slots)
	for i := range slots {
		clients.Add(1)
		go func() {
			defer clients.Done()
			var c net.Conn
			var r *bufio.Reader
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for n := range requests {
				if c == nil {
					var err error
					if c, err = net.DialTimeout("tcp", addr, wait); err != nil {
						fail(fmt.Sprintf("keep-alive client %d", i), err)
						return
					}
					r = bufio.NewReader(c)
				}
				c.SetDeadline(time.Now().Add(wait))
				err := keepAliveGet(c, r)
				if err != nil {
					// A client that lost its connection opens another, as
					// h2load does, and counts the request as failed.
					fail(fmt.Sprintf("keep-alive client %d, request %d", i, n), err)
					c.Close()
					c = nil
				}
				if n == 0 {
					holding <- struct{}{}
				}
			}
		}()
	}
	// The new clients come once every slot is held.
	for range slots {
		<-holding
	}
	for i := range newcomers {
		clients.Add(1)
		go func() {
			defer clients.Done()
			if err := getOnce(addr); err != nil {
				fail(fmt.Sprintf("new client %d", i), err)
			}
		}()
	}
	clients.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed; want none lost", n, slots*requests+newcomers)
	}
}

// TestAConnectionThatGoesIdleMakesRoomForAQueuedOne: when every connection
// is busy a new client waits; once one of them has answered and then waited
// idle on keep-alive for a second, the new client takes its slot, without
// waiting for idle_timeout.
func TestAConnectionThatGoesIdleMakesRoomForAQueuedOne(t *testing.T) {
	t.Parallel()
	d := start(t, options{config: "[http]\nmax_connections = 1\nidle_timeout = \"1m\""})
	d.ready(t)
	addr := strings.TrimPrefix(d.url, "http://")
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	io.WriteString(first, "GET /sleep?d=300ms HTTP/1.1\r\nHost: x\r\n\r\n") // keep-alive
	inFlight(t, d, 1)
	start := time.Now()
	resp, err := (&http.Client{Timeout: wait}).Get(d.url + "/")
	if err != nil {
		t.Fatalf("the queued client: %v", err)
	}
	resp.Body.Close()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the queued client waited %s: longer than the first request, as if for idle_timeout", took)
	}
	first.SetReadDeadline(time.Now().Add(wait))
	if r, err := http.ReadResponse(bufio.NewReader(first), nil); err != nil || r.StatusCode != 200 {
		t.Errorf("the first connection's answer: %v, %v; want it whole before the close", r, err)
	}
}
