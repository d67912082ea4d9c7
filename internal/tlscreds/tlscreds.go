// Package tlscreds serves HTTPS with the certificate and key systemd hands
// the unit as credentials (docs/hardening.md, "HTTPS"): tls.crt, the
// certificate in PEM, leaf first, then its chain; tls.key, its private key
// in PEM; and, optionally, tls-client-ca.crt, the CAs whose client
// certificates the daemon then requires. Without tls.crt and tls.key the
// daemon serves plain HTTP.
//
// Load reads them at start and again at every reload. Each handshake takes
// what is in force when it begins, so a reload changes the certificate for
// new connections while open ones finish as they are; a pair that is
// broken, mismatched or expired is refused, and the one before it stays.
package tlscreds

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"example.com/daemon/internal/systemd"
)

// The credentials' names: LoadCredential=NAME:FILE in the unit.
const (
	CertName     = "tls.crt"
	KeyName      = "tls.key"
	ClientCAName = "tls-client-ca.crt"
)

// ErrOff is wrapped by Load when the unit gives neither tls.crt nor
// tls.key: the daemon serves plain HTTP.
var ErrOff = errors.New("no TLS credentials")

// ErrUnusable is wrapped by Load when the credentials are there but
// cannot serve: a start fails with it as with a bad configuration, since a
// restart would fail the same way.
var ErrUnusable = errors.New("TLS credentials unusable")

// Certificate is what a Load put in force.
type Certificate struct {
	Leaf *x509.Certificate
	// ClientCAs is how many CAs client certificates are checked against;
	// 0 when the daemon asks for none.
	ClientCAs int
}

// Server holds the TLS configuration in force.
type Server struct {
	creds   systemd.Credentials
	now     func() time.Time
	current atomic.Pointer[inForce]
}

type inForce struct {
	config *tls.Config
	cert   Certificate
}

// New returns a Server for the credentials in creds; nothing is read until
// Load. now is the clock certificates are checked against (time.Now).
func New(creds systemd.Credentials, now func() time.Time) *Server {
	return &Server{creds: creds, now: now}
}

// Load reads the credentials and, if they make a usable configuration,
// puts it in force for the handshakes that begin from now on, and returns
// it. Anything wrong is an error that names the credential and the fault,
// and changes nothing: a reload keeps the certificate it had. Neither
// tls.crt nor tls.key is ErrOff.
func (s *Server) Load() (Certificate, error) {
	cert, err := s.load()
	if err != nil && !errors.Is(err, ErrOff) {
		return Certificate{}, fmt.Errorf("%w: %w", ErrUnusable, err)
	}
	return cert, err
}

func (s *Server) load() (Certificate, error) {
	certPEM, certErr := s.creds.Read(CertName)
	keyPEM, keyErr := s.creds.Read(KeyName)
	switch {
	case errors.Is(certErr, systemd.ErrNoCredential) && errors.Is(keyErr, systemd.ErrNoCredential):
		return Certificate{}, fmt.Errorf("%w: serving plain HTTP; give the unit %s and %s to serve HTTPS", ErrOff, CertName, KeyName)
	case certErr != nil:
		return Certificate{}, certErr
	case keyErr != nil:
		return Certificate{}, keyErr
	}
	pair, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		return Certificate{}, fmt.Errorf("credentials %s and %s: %w", CertName, KeyName, err)
	}
	leaf := pair.Leaf // parsed by X509KeyPair
	switch now := s.now(); {
	case now.After(leaf.NotAfter):
		return Certificate{}, fmt.Errorf("credential %s: the certificate for %s expired at %s", CertName, subject(leaf), leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return Certificate{}, fmt.Errorf("credential %s: the certificate for %s is not valid before %s", CertName, subject(leaf), leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	config := &tls.Config{
		// TLS 1.2 and 1.3 with Go's cipher suites: 1.0 and 1.1 are
		// deprecated (RFC 8996), and Go's defaults leave out the weak
		// suites of 1.2.
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		// HTTP/2 first, by ALPN; net/http serves it on a *tls.Conn that
		// negotiated "h2".
		NextProtos: []string{"h2", "http/1.1"},
	}
	cert := Certificate{Leaf: leaf}
	if config.ClientCAs, cert.ClientCAs, err = s.clientCAs(); err != nil {
		return Certificate{}, err
	}
	if cert.ClientCAs > 0 {
		config.ClientAuth = tls.RequireAndVerifyClientCert
	}
	// Tickets of its own: a client resumes a session only with the
	// configuration that made it, so after a reload a client
	// certificate is checked against the CAs in force, not trusted
	// because an older configuration once checked it.
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return Certificate{}, err
	}
	config.SetSessionTicketKeys([][32]byte{key})
	s.current.Store(&inForce{config: config, cert: cert})
	return cert, nil
}

// clientCAs reads the client CAs, if the unit gives any: none is no pool.
func (s *Server) clientCAs() (*x509.CertPool, int, error) {
	pemCAs, err := s.creds.Read(ClientCAName)
	if errors.Is(err, systemd.ErrNoCredential) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	pool := x509.NewCertPool()
	var n int
	for block, rest := pem.Decode([]byte(pemCAs)); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		ca, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, 0, fmt.Errorf("credential %s, certificate %d: %w", ClientCAName, n+1, err)
		}
		pool.AddCert(ca)
		n++
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("credential %s holds no PEM certificate", ClientCAName)
	}
	return pool, n, nil
}

// Enabled reports whether a Load succeeded: the daemon serves HTTPS.
func (s *Server) Enabled() bool { return s.current.Load() != nil }

// InForce returns the certificate new handshakes get.
func (s *Server) InForce() Certificate {
	if c := s.current.Load(); c != nil {
		return c.cert
	}
	return Certificate{}
}

// Config is the configuration to listen with (tls.NewListener): each
// handshake takes the one in force as it begins, versions and ALPN
// included, so this one holds nothing else.
func (s *Server) Config() *tls.Config {
	return &tls.Config{
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.current.Load().config, nil
		},
	}
}

// WarnFrom is when a certificate is near its end: a third of its validity
// left, as ACME clients renew, and at most 30 days. The alert
// DaemonTLSCertificateExpiresSoon (deploy/prometheus) uses the same rule.
func WarnFrom(leaf *x509.Certificate) time.Time {
	left := min(leaf.NotAfter.Sub(leaf.NotBefore)/3, 30*24*time.Hour)
	return leaf.NotAfter.Add(-left)
}

// subject names a certificate for a message: its first DNS name, else its
// subject.
func subject(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return c.Subject.String()
}

// Subject names the certificate for the log and STATUS=.
func (c Certificate) Subject() string { return subject(c.Leaf) }
