package service_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
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
	var slow []net.Conn
	for range slowClients {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("slow client: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		slow = append(slow, c)
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

	// A normal client is served at once, although the slow clients hold
	// every slot: it takes the one of the slow client that has waited
	// longest (internal/lifecycle/limit.go).
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
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
	// And the slow clients still get no more than read_header_timeout:
	// the newest is closed by 4 s after they came, more than the 1 s
	// configured above and less than the 5 s default, so only if the
	// setting is read and applied.
	last := slow[len(slow)-1]
	last.SetReadDeadline(slowSince.Add(4 * time.Second))
	if _, err := io.Copy(io.Discard, last); err != nil {
		t.Errorf("a slow client 4 s after it came: %v; want it closed after read_header_timeout (1s)", err)
	}
	// Memory stays bounded: the oversized requests were refused without
	// being read whole, and a slow client costs a goroutine and a buffer.
	if grew := rss(t, p.Cmd.Process.Pid) - before; grew > 64<<20 {
		t.Errorf("resident memory grew by %d MiB under %d slow and 40 oversized clients", grew>>20, slowClients)
	}
}

// TestASlowlorisToolDoesNotStarveANormalClient: slowhttptest, a real
// slowloris tool (Debian's package), opens three times max_connections
// connections and sends their headers a line every 10 s. A normal client
// asking all along on new connections is served quickly, because each new
// connection takes the slot of a slow one, which has sent part of its
// headers and kept the server waiting for the rest (docs/lifecycle.md,
// step 4). The test fails only if a request waits more than a second; the
// latencies are logged (make bench measures them under a longer attack).
func TestASlowlorisToolDoesNotStarveANormalClient(t *testing.T) {
	tool, err := exec.LookPath("slowhttptest")
	if err != nil {
		t.Skip("slowhttptest is not installed (apt-get install slowhttptest)")
	}
	const maxConnections = 200
	config := fmt.Sprintf("[http]\nmax_connections = %d\n", maxConnections)
	t.Run("http", func(t *testing.T) {
		ln := systemdtest.ListenTCP(t)
		cmd := command(t, config)
		systemdtest.PassSockets(t, cmd, []string{"http"}, ln)
		systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false)).WaitReady(t)
		slowloris(t, tool, maxConnections, "http://"+ln.Addr().String()+"/", http.DefaultTransport.(*http.Transport).Clone())
	})
	// Over TLS the slow clients hold a handshake's cost as well, and the
	// normal client pays one for each request.
	t.Run("https", func(t *testing.T) {
		_, addr, caPath := httpsProcess(t, config)
		pool := x509.NewCertPool()
		if pem, err := os.ReadFile(caPath); err != nil || !pool.AppendCertsFromPEM(pem) {
			t.Fatalf("CA %s: %v", caPath, err)
		}
		transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}
		slowloris(t, tool, maxConnections, "https://"+addr+"/", transport)
	})
}

// slowloris attacks url with slowhttptest while a normal client asks on
// new connections through transport.
func slowloris(t *testing.T, tool string, maxConnections int, url string, transport *http.Transport) {
	var out bytes.Buffer
	attack := exec.Command(tool, "-c", strconv.Itoa(3*maxConnections), "-H", "-i", "10", "-r", "200", "-l", "8", "-u", url)
	attack.Stdout, attack.Stderr = &out, &out
	if err := attack.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- attack.Wait() }()
	t.Cleanup(func() { attack.Process.Kill() })

	transport.DisableKeepAlives = true
	client := &http.Client{Timeout: 5 * time.Second, Transport: transport}
	var latencies []time.Duration
	for done := false; !done; {
		start := time.Now()
		resp, err := client.Get(url)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("normal client after %d requests: %v", len(latencies), err)
		}
		resp.Body.Close()
		latencies = append(latencies, took)
		select {
		case <-ended:
			done = true
		case <-time.After(20 * time.Millisecond):
		}
	}
	slices.Sort(latencies)
	q := func(f float64) time.Duration { return latencies[int(f*float64(len(latencies)-1))] }
	resp, err := client.Get(url + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metrics := string(b)
	shed := ""
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, "daemon_http_connections_shed_total "); ok {
			shed = v
		}
	}
	t.Logf("%d requests under the attack: p50 %s, p99 %s, max %s; %s connections shed", len(latencies), q(0.5), q(0.99), q(1), shed)
	if shed == "" || shed == "0" {
		t.Errorf("no connection shed: the attack never filled max_connections:\n%s", out.String())
	}
	if q(1) > time.Second {
		t.Errorf("a normal request waited %s under the attack", q(1))
	}
}
