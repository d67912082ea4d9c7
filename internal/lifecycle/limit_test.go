package lifecycle

import (
	"io"
	"net"
	"testing"
	"time"
)

// wait bounds the waits for what the test has set going.
const wait = 10 * time.Second

// TestTheListenerClosesOnlyAConnectionWhoseClientKeepsItWaiting: at the
// limit, of four connections the one taken to make room is the slow client
// the server is waiting on, although two are older; then the idle one the
// server is waiting on. Not taken: a request read but not yet in a handler
// (the server keeps it waiting, not its client), nor a connection whose
// next request has come but not been read. And none is taken before it
// has been slow or idle long enough. The ages are set to an hour, then to
// zero, so that the rules decide and not the time; the connections are
// real sockets.
func TestTheListenerClosesOnlyAConnectionWhoseClientKeepsItWaiting(t *testing.T) {
	t.Parallel()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(tcp, 10, func() {}, func(int) {})
	t.Cleanup(func() { l.Close() })
	// open connects a client and returns both ends, oldest first by the
	// order of the calls.
	open := func() (client net.Conn, server *limitedConn) {
		client, err := net.Dial("tcp", tcp.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close(); c.Close() })
		return client, c.(*limitedConn)
	}
	// blockInRead has the server wait on the client for more, as net/http
	// does between requests and within a slow one.
	blockInRead := func(c *limitedConn) {
		go c.Read(make([]byte, 1))
		for deadline := time.Now().Add(wait); !c.reading.Load(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("never in Read")
			}
		}
	}
	// readHalfARequest has the client begin a request, and the server read
	// what came.
	readHalfARequest := func(client net.Conn, c *limitedConn) {
		io.WriteString(client, "GET / HTTP/1.1\r\nHost: x\r\n")
		if _, err := c.Read(make([]byte, 64)); err != nil {
			t.Fatal(err)
		}
	}

	// Sent: a whole request the server has not read yet. The server's
	// goroutine is about to read it (woken, not yet run).
	sent, sentConn := open()
	io.WriteString(sent, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	for deadline := time.Now().Add(wait); !sentConn.unread(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the socket")
		}
	}
	sentConn.reading.Store(true)
	// Idle: nothing sent, the server waiting for a request.
	_, idle := open()
	blockInRead(idle)
	// Read: half a request read, and the server busy with it, not waiting.
	readClient, read := open()
	readHalfARequest(readClient, read)
	// Slow: half a request read, and the server waiting for the rest.
	slowClient, slow := open()
	readHalfARequest(slowClient, slow)
	blockInRead(slow)

	take := func() *limitedConn {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.takeVictim()
	}
	name := map[*limitedConn]string{sentConn: "the one whose request has come", idle: "the idle one", read: "the one whose request is read", slow: "the slow one", nil: "none"}
	// None has been slow or idle for an hour: none is taken, the new
	// client would wait.
	l.slowAfter, l.idleAfter = time.Hour, time.Hour
	if got := take(); got != nil {
		t.Fatalf("%s taken to make room before it was slow or idle long enough", name[got])
	}
	l.slowAfter, l.idleAfter = 0, 0
	for i, want := range []*limitedConn{slow, idle, nil} {
		got := take()
		if got != want {
			t.Fatalf("connection %d taken to make room: %s, want %s", i, name[got], name[want])
		}
		if got != nil && got.loadPhase().state() != shed {
			t.Errorf("%s was taken but not marked shed", name[got])
		}
	}
	if n := len(l.conns); n != 2 {
		t.Errorf("%d connections still counted, want 2", n)
	}
}
