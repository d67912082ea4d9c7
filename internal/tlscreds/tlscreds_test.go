package tlscreds

import (
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.com/daemon/internal/systemd"
	"example.com/daemon/internal/tlscreds/tlstest"
)

func newServer(t *testing.T) (*Server, string) {
	dir := t.TempDir()
	return New(systemd.Credentials{Dir: dir}, time.Now), dir
}

// handshake connects a real TLS client to s, trusting ca, and returns the
// certificate the server presented.
func handshake(t *testing.T, s *Server, client *tls.Config) (*tls.ConnectionState, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	tlsLn := tls.NewListener(ln, s.Config())
	go func() {
		c, err := tlsLn.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if c.(*tls.Conn).Handshake() == nil {
			c.Write([]byte{1})      // for the client to read: the handshake is done
			c.Read(make([]byte, 1)) // until the client closes
		}
	}()
	client.ServerName = "localhost"
	conn, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// TLS 1.3 sends the server's verdict on a client certificate after
	// the client's side of the handshake is done: the read shows it.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		return nil, err
	}
	state := conn.ConnectionState()
	return &state, nil
}

func TestWithoutCredentialsTheDaemonServesPlainHTTP(t *testing.T) {
	s, _ := newServer(t)
	_, err := s.Load()
	if !errors.Is(err, ErrOff) {
		t.Fatalf("Load without credentials: %v, want ErrOff", err)
	}
	if s.Enabled() {
		t.Error("Enabled without credentials")
	}
}

func TestAHandshakeGetsTheCertificateInForce(t *testing.T) {
	s, dir := newServer(t)
	ca := tlstest.NewCA(t, "test CA")
	first := ca.Valid(t)
	first.Write(t, dir)
	if _, err := s.Load(); err != nil {
		t.Fatal(err)
	}
	state, err := handshake(t, s, &tls.Config{RootCAs: ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	if got := state.PeerCertificates[0].SerialNumber; got.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("served serial %v, want %v", got, first.Cert.SerialNumber)
	}

	// Rotated: the next handshake gets the new one.
	second := ca.Valid(t)
	second.Write(t, dir)
	if _, err := s.Load(); err != nil {
		t.Fatal(err)
	}
	state, err = handshake(t, s, &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := state.PeerCertificates[0].SerialNumber; got.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after a Load, served serial %v, want the new %v", got, second.Cert.SerialNumber)
	}
	if state.NegotiatedProtocol != "h2" {
		t.Errorf("ALPN chose %q, want h2 offered first", state.NegotiatedProtocol)
	}
}

func TestOnlyTLS12AndNewerAreServed(t *testing.T) {
	s, dir := newServer(t)
	ca := tlstest.NewCA(t, "test CA")
	ca.Valid(t).Write(t, dir)
	if _, err := s.Load(); err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, s, &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("a TLS 1.1 client completed a handshake")
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		if _, err := handshake(t, s, &tls.Config{RootCAs: ca.Pool(), MinVersion: v, MaxVersion: v}); err != nil {
			t.Errorf("%s: %v", tls.VersionName(v), err)
		}
	}
}

// A pair that cannot serve is refused with what is wrong, and the pair in
// force stays in force.
func TestABadPairIsRefusedAndTheOneInForceStays(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	other := tlstest.NewCA(t, "other CA")
	good := ca.Valid(t)
	hour := time.Hour
	tests := []struct {
		name  string
		write func(t *testing.T, dir string)
		want  string
	}{
		{"mismatched", func(t *testing.T, dir string) {
			tlstest.WriteFile(t, filepath.Join(dir, KeyName), other.Valid(t).KeyPEM)
		}, "private key does not match public key"},
		{"expired", func(t *testing.T, dir string) {
			ca.Server(t, time.Now().Add(-48*hour), time.Now().Add(-hour)).Write(t, dir)
		}, "expired at"},
		{"not yet valid", func(t *testing.T, dir string) {
			ca.Server(t, time.Now().Add(hour), time.Now().Add(48*hour)).Write(t, dir)
		}, "not valid before"},
		{"not PEM", func(t *testing.T, dir string) {
			tlstest.WriteFile(t, filepath.Join(dir, CertName), []byte("not a certificate\n"))
		}, "tls.crt and tls.key"},
		{"key missing", func(t *testing.T, dir string) {
			tlstest.WriteFile(t, filepath.Join(dir, KeyName), []byte("\n"))
		}, "credential tls.key"},
		{"client CA not PEM", func(t *testing.T, dir string) {
			tlstest.WriteFile(t, filepath.Join(dir, ClientCAName), []byte("junk\n"))
		}, "tls-client-ca.crt holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := newServer(t)
			good.Write(t, dir)
			if _, err := s.Load(); err != nil {
				t.Fatal(err)
			}
			tt.write(t, dir)
			_, err := s.Load()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load: %v, want an error saying %q", err, tt.want)
			}
			if got := s.InForce().Leaf.SerialNumber; got.Cmp(good.Cert.SerialNumber) != 0 {
				t.Fatal("a refused pair replaced the one in force")
			}
			state, err := handshake(t, s, &tls.Config{RootCAs: ca.Pool()})
			if err != nil {
				t.Fatal(err)
			}
			if state.PeerCertificates[0].SerialNumber.Cmp(good.Cert.SerialNumber) != 0 {
				t.Fatal("a handshake got another certificate than the one in force")
			}
		})
	}
}

func TestAClientCARequiresClientCertificatesAndRotates(t *testing.T) {
	s, dir := newServer(t)
	ca := tlstest.NewCA(t, "server CA")
	ca.Valid(t).Write(t, dir)
	clients := tlstest.NewCA(t, "client CA")
	tlstest.WriteFile(t, filepath.Join(dir, ClientCAName), clients.PEM)
	cert, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if cert.ClientCAs != 1 {
		t.Fatalf("ClientCAs = %d, want 1", cert.ClientCAs)
	}
	alice := clients.Client(t, "alice").TLS(t)
	if _, err := handshake(t, s, &tls.Config{RootCAs: ca.Pool()}); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	if _, err := handshake(t, s, &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{alice}}); err != nil {
		t.Fatalf("a client with a certificate from the client CA: %v", err)
	}

	// A new client CA: the old one's clients are refused from the next
	// handshake on, and the new one's served.
	next := tlstest.NewCA(t, "next client CA")
	tlstest.WriteFile(t, filepath.Join(dir, ClientCAName), next.PEM)
	if _, err := s.Load(); err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, s, &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{alice}}); err == nil {
		t.Fatal("after the client CA rotated, a certificate from the old one was accepted")
	}
	bob := next.Client(t, "bob").TLS(t)
	if _, err := handshake(t, s, &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{bob}}); err != nil {
		t.Fatalf("a certificate from the new client CA: %v", err)
	}
}

func TestWarnFromIsAThirdOfTheValidityAtMost30Days(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, tt := range []struct {
		valid, warn time.Duration // the validity, and how long before its end the warning comes
	}{
		{90 * day, 30 * day},  // ACME's 90 days: renewed at 30 left
		{6 * day, 2 * day},    // short-lived
		{365 * day, 30 * day}, // a year: 30 days, not four months
	} {
		leaf := tlstest.NewCA(t, "ca").Server(t, start, start.Add(tt.valid)).Cert
		if got := leaf.NotAfter.Sub(WarnFrom(leaf)); got != tt.warn {
			t.Errorf("valid %v: warns %v before the end, want %v", tt.valid, got, tt.warn)
		}
	}
}
