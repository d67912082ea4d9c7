package lifecycle_test

import (
	"crypto/tls"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/daemon/internal/systemd"
	"example.com/daemon/internal/tlscreds"
	"example.com/daemon/internal/tlscreds/tlstest"
)

// These tests serve HTTPS from credentials, as systemd hands them over
// (LoadCredential=tls.crt:… and tls.key:…), to real TLS clients.

// httpsDaemon starts a daemon whose credentials directory holds pair, and
// returns it with its directory and its https:// URL.
func httpsDaemon(t *testing.T, config string, pair tlstest.Pair) (*daemon, string, string) {
	t.Helper()
	dir := t.TempDir()
	pair.Write(t, dir)
	d := start(t, options{config: config, credentials: systemd.Credentials{Dir: dir}})
	return d, dir, "https://" + d.ln.Addr().String()
}

// httpsClient trusts ca only, offers HTTP/2 first, and keeps its
// connections open between requests.
func httpsClient(ca *tlstest.CA, certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: wait, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: certs},
		ForceAttemptHTTP2: true,
	}}
}

// served gets url with c and returns the answer's protocol and the serial
// of the certificate its connection was made with.
func served(t *testing.T, c *http.Client, url string) (proto string, serial *big.Int) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return resp.Proto, resp.TLS.PeerCertificates[0].SerialNumber
}

func TestWithTheCredentialsTheMainListenerServesHTTPSOnly(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "test CA")
	pair := ca.Valid(t)
	d, _, url := httpsDaemon(t, "greeting = \"hi\"", pair)
	if status := d.ready(t)["STATUS"]; !strings.HasPrefix(status, "HTTPS: Serving on") {
		t.Errorf("STATUS=%q, want it to say HTTPS", status)
	}
	proto, serial := served(t, httpsClient(ca), url+"/")
	if proto != "HTTP/2.0" {
		t.Errorf("protocol %s, want HTTP/2.0 by ALPN", proto)
	}
	if serial.Cmp(pair.Cert.SerialNumber) != 0 {
		t.Errorf("served certificate %v, want the credential's %v", serial, pair.Cert.SerialNumber)
	}
	if n, ok := metricIfAny(t, d, "daemon_tls_certificate_not_after_timestamp_seconds"); !ok || int64(n) != pair.Cert.NotAfter.Unix() {
		t.Errorf("daemon_tls_certificate_not_after_timestamp_seconds = %v (%v), want %d", n, ok, pair.Cert.NotAfter.Unix())
	}

	// Plain HTTP on the same port: net/http refuses it, and no route sees it.
	status, body := get(t, d.url+"/")
	if status != http.StatusBadRequest || strings.Contains(body, "hi") {
		t.Errorf("plain HTTP to the HTTPS port: %d %q, want 400 and no greeting", status, body)
	}
}

func TestWithoutTheCredentialsTheDaemonServesPlainHTTPAndWarnsOffLoopback(t *testing.T) {
	t.Parallel()
	d := start(t, options{config: "greeting = \"hi\""})
	if status := d.ready(t)["STATUS"]; strings.Contains(status, "HTTPS") {
		t.Errorf("STATUS=%q without TLS credentials", status)
	}
	if status, body := get(t, d.url+"/"); status != 200 || body != "hi\n" {
		t.Errorf("plain GET /: %d %q", status, body)
	}
	if _, ok := metricIfAny(t, d, "daemon_tls_certificate_not_after_timestamp_seconds"); ok {
		t.Error("a certificate's expiry reported without a certificate")
	}
	if strings.Contains(d.logs.String(), "in clear") {
		t.Error("warned of the token in clear on loopback")
	}

	// On every address, the token would cross the network in clear.
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	d = start(t, options{config: "greeting = \"hi\"", listener: ln})
	d.ready(t)
	if !strings.Contains(d.logs.String(), "the API token crosses the network in clear") {
		t.Errorf("no warning for plain HTTP on every address:\n%s", d.logs)
	}
}

// A client that connects and never finishes its handshake holds its
// connection only until read_header_timeout, which bounds the handshake
// as it bounds a request's headers.
func TestAHandshakeNeverFinishedIsClosed(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "test CA")
	d, _, _ := httpsDaemon(t, "[http]\nread_header_timeout = \"1s\"", ca.Valid(t))
	d.ready(t)
	c, err := net.Dial("tcp", d.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "\x16\x03\x01\x02\x00") // a ClientHello's record header, and no more
	c.SetReadDeadline(time.Now().Add(wait))
	_, err = c.Read(make([]byte, 1))
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("the daemon still held the connection after %s", wait)
	}
	// Counted, and logged only at debug level: a scanner makes hundreds.
	eventually(t, "the failed handshake counted", func() bool {
		return metric(t, d, "daemon_tls_handshake_errors_total") == 1
	})
	if strings.Contains(d.logs.String(), "level=WARN msg=\"http: TLS handshake error") {
		t.Error("a failed handshake logged as a warning")
	}
}

func TestAReloadRotatesTheCertificateForNewConnections(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "test CA")
	first := ca.Valid(t)
	d, dir, url := httpsDaemon(t, "greeting = \"hi\"", first)
	d.ready(t)
	open := httpsClient(ca) // keeps its connection across the reload
	if _, serial := served(t, open, url+"/"); serial.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatal("not the first certificate")
	}

	second := ca.Valid(t)
	second.Write(t, dir)
	if status := d.reloadWith(t, "greeting = \"hi\"")["STATUS"]; strings.Contains(status, "failed") {
		t.Fatalf("reload: STATUS=%q", status)
	}
	if _, serial := served(t, httpsClient(ca), url+"/"); serial.Cmp(second.Cert.SerialNumber) != 0 {
		t.Errorf("a new connection after the reload got %v, want the new certificate %v", serial, second.Cert.SerialNumber)
	}
	// The connection open before goes on as it began.
	if _, serial := served(t, open, url+"/"); serial.Cmp(first.Cert.SerialNumber) != 0 {
		t.Errorf("the connection open before the reload: %v, want it to keep the first certificate", serial)
	}
	if !strings.Contains(d.logs.String(), "TLS certificate loaded") {
		t.Error("the rotation was not logged")
	}
}

// A pair that cannot serve, found by a reload, changes nothing: the old
// certificate and the old configuration stay, and STATUS= and the log say
// why, as for a bad configuration file.
func TestABrokenPairOnReloadKeepsTheOldOneServing(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "test CA")
	good := ca.Valid(t)
	d, dir, url := httpsDaemon(t, "greeting = \"old\"", good)
	d.ready(t)
	tlstest.WriteFile(t, filepath.Join(dir, tlscreds.KeyName), ca.Valid(t).KeyPEM) // another pair's key

	status := d.reloadWith(t, "greeting = \"new\"")["STATUS"]
	if !strings.Contains(status, "reload failed") || !strings.Contains(status, "private key does not match public key") {
		t.Errorf("STATUS=%q, want the reload's failure and why", status)
	}
	if !strings.Contains(d.logs.String(), "private key does not match public key") {
		t.Error("the log does not say why the reload failed")
	}
	client := httpsClient(ca)
	if _, serial := served(t, client, url+"/"); serial.Cmp(good.Cert.SerialNumber) != 0 {
		t.Error("the refused pair replaced the good one")
	}
	resp, err := client.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "old\n" {
		t.Errorf("GET / = %q: the configuration applied though the reload failed", body)
	}
	if n := metric(t, d, "daemon_reloads_total", "result", "failure"); n != 1 {
		t.Errorf("daemon_reloads_total{result=failure} = %v, want 1", n)
	}
}

func TestAnExpiredPairStopsTheStart(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "test CA")
	expired := ca.Server(t, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	d, _, _ := httpsDaemon(t, "", expired)
	select {
	case <-d.done:
	case <-time.After(wait):
		t.Fatal("Run went on with an expired certificate")
	}
	if d.err == nil || !strings.Contains(d.err.Error(), "expired at") {
		t.Errorf("Run: %v, want it to say the certificate expired", d.err)
	}
}

// A certificate near its end (tlscreds.WarnFrom) is in STATUS= and a
// warning: at once if it is near at the start, and when it becomes near
// while the daemon runs.
func TestACertificateNearItsEndIsInStatusAndTheLog(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "test CA")
	near := ca.Server(t, time.Now().Add(-80*24*time.Hour), time.Now().Add(5*24*time.Hour))
	d, _, _ := httpsDaemon(t, "", near)
	if status := d.ready(t)["STATUS"]; !strings.Contains(status, "the TLS certificate expires") {
		t.Errorf("STATUS=%q, want the certificate's end", status)
	}
	if !strings.Contains(d.logs.String(), "the TLS certificate expires soon") {
		t.Error("no warning in the log")
	}

	// Valid for 90 minutes, of which the last third begins 2 s from now
	// (certificates count in whole seconds).
	end := time.Now().Add(30 * time.Minute).Truncate(time.Second)
	soon := ca.Server(t, end.Add(-90*time.Minute+6*time.Second), end)
	d, _, _ = httpsDaemon(t, "", soon)
	if status := d.ready(t)["STATUS"]; strings.Contains(status, "expires") {
		t.Fatalf("STATUS=%q before the certificate is near its end", status)
	}
	if status := expect(t, d, "STATUS")["STATUS"]; !strings.Contains(status, "the TLS certificate expires") {
		t.Errorf("STATUS=%q once the certificate is near its end", status)
	}
}

// On a stop, an HTTP/2 client is told that no new stream will be served
// (GOAWAY): a request in flight is answered, and an idle connection closes
// at once rather than holding the drain until drain_timeout.
func TestAStopDrainsHTTP2Connections(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "test CA")
	d, _, url := httpsDaemon(t, "drain_timeout = \"1m\"", ca.Valid(t))
	d.ready(t)
	idle := httpsClient(ca)
	served(t, idle, url+"/") // its connection stays open, idle
	busy := httpsClient(ca)
	answer := make(chan error, 1)
	go func() {
		resp, err := busy.Get(url + "/sleep?d=1s")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		answer <- err
	}()
	inFlight(t, d, 1)
	d.signal(t, syscall.SIGTERM)
	if err := <-answer; err != nil {
		t.Errorf("the request in flight: %v", err)
	}
	// Well within drain_timeout: the idle HTTP/2 connection did not hold
	// the drain.
	select {
	case <-d.done:
	case <-time.After(wait):
		t.Fatal("the drain waited on an idle HTTP/2 connection")
	}
}
