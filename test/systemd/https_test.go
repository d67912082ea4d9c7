//go:build systemd

package systemd_test

import (
	"crypto/tls"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.com/daemon/internal/tlscreds/tlstest"
)

// Where the drop-ins tls.conf and client-ca.conf have systemd read the
// TLS credentials from, and where the package ships the drop-ins.
var (
	tlsDir   = "/etc/" + name + "/tls"
	httpsDir = "/usr/share/" + name + "/https"
)

// TestTheDefaultListensOnLoopbackOnly: without a certificate the API token
// must not cross the network in clear, so the package's socket listens on
// 127.0.0.1 alone.
func TestTheDefaultListensOnLoopbackOnly(t *testing.T) {
	if got := prop(t, name+".socket", "Listen"); got != "127.0.0.1:8080 (Stream)" {
		t.Errorf("%s.socket Listen=%q, want loopback only", name, got)
	}
}

// https is the daemon serving HTTPS as docs/hardening.md, "HTTPS", sets it
// up: the certificate and key in /etc/NAME/tls, root's alone, the
// package's drop-ins linked, and the socket and the service started again.
type https struct {
	ca  *tlstest.CA
	url string
}

// enableHTTPS sets HTTPS up with pair, signed by ca, and with client
// certificates from clientCA if it is not nil; it undoes it all when the
// test ends.
func enableHTTPS(t *testing.T, ca *tlstest.CA, pair tlstest.Pair, clientCA *tlstest.CA) *https {
	t.Helper()
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pair.Write(t, tlsDir)
	links := []string{
		"/etc/systemd/system/" + name + ".socket.d/every-address.conf",
		"/etc/systemd/system/" + unit + ".d/tls.conf",
	}
	if clientCA != nil {
		tlstest.WriteFile(t, filepath.Join(tlsDir, "client-ca.crt"), clientCA.PEM)
		links = append(links, "/etc/systemd/system/"+unit+".d/client-ca.conf")
	}
	t.Cleanup(func() {
		for _, link := range links {
			os.Remove(link)
		}
		os.RemoveAll(tlsDir)
		systemctl(t, "daemon-reload")
		restartSocket(t)
		freshStart(t, baseConfig)
	})
	for _, link := range links {
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		src := httpsDir + "/" + filepath.Base(filepath.Dir(link)) + "/" + filepath.Base(link)
		if err := os.Symlink(src, link); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(t, baseConfig)
	systemctl(t, "daemon-reload")
	restartSocket(t)
	systemctl(t, "start", unit)
	if got := prop(t, name+".socket", "Listen"); got != "[::]:8080 (Stream)" {
		t.Errorf("with every-address.conf, Listen=%q", got)
	}
	return &https{ca: ca, url: "https://" + listenAddr(t, name+".socket")}
}

// restartSocket stops the service and its socket, and starts the socket
// again: where the socket listens changed. Each test here does it twice,
// and a socket started more than 5 times in 10 s is refused
// (StartLimitBurst=): reset-failed resets the count, since these starts
// are the test's, not a loop.
func restartSocket(t *testing.T) {
	t.Helper()
	systemctl(t, "stop", unit, name+".socket")
	systemctl(t, "reset-failed", unit, name+".socket")
	systemctl(t, "start", name+".socket")
}

// client trusts h's CA and shows certs, if any; with fresh, it opens a new
// connection, and so makes a new handshake, for every request.
func (h *https) client(fresh bool, certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: h.ca.Pool(), ServerName: "localhost", Certificates: certs},
		ForceAttemptHTTP2: true,
		DisableKeepAlives: fresh,
	}}
}

// serial gets /healthz with c and returns the serial of the certificate
// its connection was made with, and the protocol.
func (h *https) serial(t *testing.T, c *http.Client) (*big.Int, string) {
	t.Helper()
	resp, err := c.Get(h.url + "/healthz")
	if err != nil {
		t.Fatalf("GET %s/healthz: %v", h.url, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/healthz: %s", h.url, resp.Status)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber, resp.Proto
}

func TestHTTPSFromTheCredentials(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	pair := ca.Valid(t)
	h := enableHTTPS(t, ca, pair, nil)
	serial, proto := h.serial(t, h.client(false))
	if serial.Cmp(pair.Cert.SerialNumber) != 0 {
		t.Errorf("served certificate %v, want the one in %s", serial, tlsDir)
	}
	if proto != "HTTP/2.0" {
		t.Errorf("protocol %s, want HTTP/2.0", proto)
	}
	if status := prop(t, unit, "StatusText"); !strings.HasPrefix(status, "HTTPS: ") {
		t.Errorf("StatusText=%q", status)
	}
	// Plain HTTP on the port is not served.
	if code, _ := get(t, strings.Replace(h.url, "https:", "http:", 1)+"/healthz"); code != http.StatusBadRequest {
		t.Errorf("plain HTTP to the HTTPS port: %d, want 400", code)
	}
	// The key reached the daemon as a credential: its copy is there, and
	// the source stays root's alone.
	fi, err := os.Stat(tlsDir + "/tls.key")
	if err != nil || fi.Mode().Perm() != 0o600 || fileUID(fi) != 0 {
		t.Errorf("%s/tls.key: %v %v, want 0600 root", tlsDir, fi.Mode(), err)
	}
	if _, err := os.Stat("/run/credentials/" + unit + "/tls.key"); err != nil {
		t.Errorf("no credential tls.key: %v", err)
	}
}

// TestACertificateRotatesAsDocumented, under load on new connections:
// where systemd refreshes credentials at a reload (≥ 260, with
// refresh-credentials.conf), `systemctl reload` rotates the certificate
// in place; elsewhere a reload keeps the old one, and `systemctl restart`
// rotates it, losing no request, as the socket holds the port. Then a
// broken pair is kept out: a reload refuses it and the old one serves on;
// where a restart is the way, the start fails as with a bad config, and
// the socket keeps the clients waiting for the fixed pair.
func TestACertificateRotatesAsDocumented(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	first := ca.Valid(t)
	h := enableHTTPS(t, ca, first, nil)
	refreshes := systemdVersion(t) >= 260
	pid := propInt(t, unit, "MainPID")
	l := startLoadWith(t, h.client(true), h.url, 4)
	l.served(t, 50, "HTTPS on")

	second := ca.Valid(t)
	second.Write(t, tlsDir)
	systemctl(t, "reload", unit)
	if !refreshes {
		if serial, _ := h.serial(t, h.client(true)); serial.Cmp(first.Cert.SerialNumber) != 0 {
			t.Errorf("systemd %d: a reload changed the certificate, which it does not refresh", systemdVersion(t))
		}
		systemctl(t, "restart", unit)
	}
	if serial, _ := h.serial(t, h.client(true)); serial.Cmp(second.Cert.SerialNumber) != 0 {
		t.Errorf("systemd %d: after the rotation a new connection got %v, want the new certificate", systemdVersion(t), serial)
	}
	l.served(t, 50, "the rotation")
	if after := propInt(t, unit, "MainPID"); refreshes && after != pid {
		t.Errorf("the reload restarted the daemon: MainPID %d, was %d", after, pid)
	}
	t.Logf("systemd %d: rotated by %s; %d requests served, %d refused, %d failed",
		systemdVersion(t), map[bool]string{true: "reload", false: "restart"}[refreshes], l.ok.Load(), l.refused.Load(), l.failed.Load())
	if l.failed.Load()+l.refused.Load() > 0 {
		t.Errorf("requests lost during the rotation:\n%s", l.errorList())
	}
	l.halt()

	// A broken pair: the key of another certificate.
	tlstest.WriteFile(t, tlsDir+"/tls.key", ca.Valid(t).KeyPEM)
	if refreshes {
		systemctl(t, "reload", unit)
		if status := prop(t, unit, "StatusText"); !strings.Contains(status, "reload failed") || !strings.Contains(status, "private key does not match") {
			t.Errorf("StatusText=%q after a reload with a broken pair", status)
		}
		if serial, _ := h.serial(t, h.client(true)); serial.Cmp(second.Cert.SerialNumber) != 0 {
			t.Error("the broken pair replaced the good one")
		}
		return
	}
	if out, err := tryCommand("systemctl", "restart", unit); err == nil {
		t.Fatalf("systemctl restart with a broken pair succeeded: %s", out)
	}
	if status := prop(t, unit, "StatusText"); !strings.Contains(status, "private key does not match") {
		t.Errorf("StatusText=%q after a start with a broken pair", status)
	}
	if r := prop(t, unit, "Result"); r != "exit-code" || prop(t, unit, "ActiveState") != "failed" {
		t.Errorf("Result=%s ActiveState=%s: want failed for good (RestartPreventExitStatus=)", r, prop(t, unit, "ActiveState"))
	}
	// A client connecting now waits in the socket's backlog, and is
	// served by the start with the fixed pair.
	answer := make(chan error, 1)
	go func() {
		_, err := h.client(true).Get(h.url + "/healthz")
		answer <- err
	}()
	second.Write(t, tlsDir)
	systemctl(t, "reset-failed", unit)
	systemctl(t, "start", unit)
	if err := <-answer; err != nil {
		t.Errorf("a client that connected while the pair was broken: %v", err)
	}
}

// TestClientCertificatesAreRequired: with client-ca.conf, a client without
// a certificate from the CA is refused at the handshake; one with a
// certificate is served; and the CA rotates as the certificate does.
func TestClientCertificatesAreRequired(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	clients := tlstest.NewCA(t, "client CA")
	h := enableHTTPS(t, ca, ca.Valid(t), clients)
	alice := clients.Client(t, "alice").TLS(t)
	if resp, err := h.client(true).Get(h.url + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("a client without a certificate was served")
	}
	h.serial(t, h.client(true, alice))

	next := tlstest.NewCA(t, "next client CA")
	tlstest.WriteFile(t, tlsDir+"/client-ca.crt", next.PEM)
	if systemdVersion(t) >= 260 {
		systemctl(t, "reload", unit)
	} else {
		systemctl(t, "restart", unit)
	}
	if resp, err := h.client(true, alice).Get(h.url + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("after the client CA rotated, a certificate from the old one was served")
	}
	h.serial(t, h.client(true, next.Client(t, "bob").TLS(t)))
}

// TestACertificateNearItsEndFiresItsAlert: a certificate in the last third
// of its validity is in STATUS=, and the shipped rule
// DaemonTLSCertificateExpiresSoon fires in a real Prometheus; a renewed
// one, put in force as the runbook says, resolves it.
func TestACertificateNearItsEndFiresItsAlert(t *testing.T) {
	containerLegOnly(t)
	ca := tlstest.NewCA(t, "test CA")
	near := ca.Server(t, time.Now().Add(-80*24*time.Hour), time.Now().Add(5*24*time.Hour))
	enableHTTPS(t, ca, near, nil)
	if status := prop(t, unit, "StatusText"); !strings.Contains(status, "the TLS certificate expires") {
		t.Errorf("StatusText=%q, want the certificate's end", status)
	}
	p := startPrometheus(t)
	start := time.Now()
	firing, a := p.waitAlert(t, "DaemonTLSCertificateExpiresSoon", "firing", start, 15*time.Second)
	if a.Labels["severity"] != "warning" {
		t.Errorf("labels %v, want severity warning", a.Labels)
	}

	ca.Valid(t).Write(t, tlsDir)
	verb := map[bool]string{true: "reload", false: "restart"}[systemdVersion(t) >= 260]
	systemctl(t, verb, unit)
	renewed := time.Now()
	resolved := p.waitResolved(t, "DaemonTLSCertificateExpiresSoon", renewed, 15*time.Second)
	t.Logf("systemd %d: DaemonTLSCertificateExpiresSoon firing %s after the first scrapes; resolved %s after systemctl %s",
		systemdVersion(t), firing.Round(time.Millisecond), resolved.Round(time.Millisecond), verb)
}
