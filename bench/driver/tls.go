package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// measureTLS: HTTPS, the daemon with its certificate from the credentials
// tls.crt and tls.key, against the bare baseline (a) serving the same
// certificate with crypto/tls's defaults. Two loads, alternating as in the
// http phase: requests over kept-alive connections (what TLS adds to each
// request once connected), and a new connection for every request
// (Connection: close), so that each request pays a full handshake: the
// handshakes per second a server makes.
func (b *bench) measureTLS() error {
	creds := filepath.Join(b.dir, "credentials")
	if err := writeCertificate(creds); err != nil {
		return err
	}
	daemon := *b.daemon
	daemon.env = append(daemon.env[:len(daemon.env):len(daemon.env)], "CREDENTIALS_DIRECTORY="+creds)
	withCert := func(s *server) *server {
		c := *s
		c.env = append(c.env[:len(c.env):len(c.env)],
			"BARE_TLS_CERT="+filepath.Join(creds, "tls.crt"), "BARE_TLS_KEY="+filepath.Join(creds, "tls.key"))
		return &c
	}
	// bare (a), the goal's baseline, and bare+timeouts (a+t), to tell the
	// timeouts' share (the http phase's rows) from the rest.
	bare, bareTimeouts := withCert(b.bare), withCert(b.bareTimeouts)
	servers := []*server{&daemon, bare, bareTimeouts}
	f, err := b.serveAll(servers, "https")
	if err != nil {
		return err
	}
	defer f.kill()
	procs, urls := f.procs, f.urls
	for _, s := range servers {
		if err := checkHTTPS(urls[s]); err != nil {
			return fmt.Errorf("%s: %w%s", s.name, err, b.logTail(s))
		}
	}
	loads := []struct {
		name  string
		extra []string
	}{
		{"requests over TLS, kept-alive connections, req/s", nil},
		{"TLS handshakes (a new connection per request), per s", []string{"-H", "Connection: close"}},
	}
	for _, l := range loads {
		for _, s := range servers { // warm up
			if _, err := b.wrk(procs[s], urls[s], 2*time.Second, l.extra...); err != nil {
				return err
			}
		}
		rps := map[*server][]float64{}
		for round := range b.opts.rounds {
			for _, s := range rotate(servers, round) {
				r, err := b.wrk(procs[s], urls[s], b.opts.duration, l.extra...)
				if err != nil {
					return fmt.Errorf("%s: %w", s.name, err)
				}
				rps[s] = append(rps[s], r.rps)
			}
		}
		ratio := pairedRatio(rps[&daemon], rps[bare])
		b.rows = append(b.rows, row{
			measure: fmt.Sprintf("GET %s %s (median of %d × %s, %d conns)", b.opts.path, l.name, b.opts.rounds, b.opts.duration, b.opts.conns),
			daemon:  fmt.Sprintf("%.0f", medianF(rps[&daemon])), a: fmt.Sprintf("%.0f", medianF(rps[bare])),
			ratio: fmt.Sprintf("%.2f× (a)", ratio), goal: "≥ 0.90× (a)", state: metIf(round2(ratio) >= 0.9),
		})
		b.note("%s: bare+timeouts over TLS %.0f, %.2f× bare; the daemon %.2f× bare+timeouts", l.name,
			medianF(rps[bareTimeouts]), pairedRatio(rps[bareTimeouts], rps[bare]), pairedRatio(rps[&daemon], rps[bareTimeouts]))
	}
	return b.stopAll(f, servers)
}

// checkHTTPS makes sure url answers over TLS: the daemon took the
// credentials, and the baseline its files.
func checkHTTPS(url string) error {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a certificate made a moment ago, for this benchmark
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// writeCertificate writes a self-signed certificate for 127.0.0.1, ECDSA
// P-256 as ACME CAs issue them, into dir as tls.crt and tls.key.
func writeCertificate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(90 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	for name, block := range map[string]*pem.Block{
		"tls.crt": {Type: "CERTIFICATE", Bytes: der},
		"tls.key": {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			return err
		}
	}
	return nil
}
