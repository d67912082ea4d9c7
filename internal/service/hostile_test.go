package service_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/daemon/internal/systemd/systemdtest"
)

// rss returns the resident memory of pid in bytes.
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func TestSlowAndOversizedClientsDoNotStarveANormalOne(t *testing.T) {
	const slowClients = 300
	ln := systemdtest.ListenTCP(t)
	addr := ln.Addr().String()
	// As many slow clients as the daemon serves connections at once: only
	// read_header_timeout frees the slots they hold.
	cmd := command(t, fmt.Sprintf("[http]\nread_header_timeout = \"1s\"\nmax_header_bytes = 8192\nmax_connections = %d\n", slowClients))
	systemdtest.PassSockets(t, cmd, []string{"http"}, ln)
	p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
	p.WaitReady(t)
	before := rss(t, p.Cmd.Process.Pid)

	// Slowloris: connections that send a request line and then nothing,
	// holding their connection open until read_header_timeout.
	slowSince := time.Now()
	for range slowClients {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("slow client: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	}
	// Oversized: headers past max_header_bytes.
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
			req.Header.Set("X-Big", strings.Repeat("x", 1<<20))
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
					t.Errorf("1 MiB header: %d, want 431", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()

	// A normal client is served all the same, once the slow ones have been
	// timed out. It gives up 4 s after they came: more than the 1 s
	// configured above, less than the 5 s default and the 30 s of
	// read_timeout (which net/http uses without a header timeout). So it is
	// served in time only if read_header_timeout is read and applied.
	ctx, cancel := context.WithDeadline(context.Background(), slowSince.Add(4*time.Second))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("normal client: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("normal client: %d", resp.StatusCode)
	}
	// Memory stays bounded: the oversized requests were refused without
	// being read whole, and a slow client costs a goroutine and a buffer.
	if grew := rss(t, p.Cmd.Process.Pid) - before; grew > 64<<20 {
		t.Errorf("resident memory grew by %d MiB under %d slow and 40 oversized clients", grew>>20, slowClients)
	}
}
