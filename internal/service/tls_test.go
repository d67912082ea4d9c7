package service_test

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"example.com/daemon/internal/systemd/systemdtest"
	"example.com/daemon/internal/tlscreds/tlstest"
)

// These tests point tools made by others at the daemon's HTTPS listener:
// curl, openssl s_client and the testssl.sh scanner, as an operator
// would.

// httpsProcess runs the daemon with config, serving HTTPS from the
// credentials tls.crt and tls.key on a socket passed in. It returns the
// process, the listener's address, and the path of the CA to trust.
func httpsProcess(t *testing.T, config string) (*systemdtest.Process, string, string) {
	t.Helper()
	creds := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	ca.Valid(t).Write(t, creds)
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caPath, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ln := systemdtest.ListenTCP(t)
	cmd := command(t, config)
	cmd.Env = append(cmd.Env, "CREDENTIALS_DIRECTORY="+creds)
	systemdtest.PassSockets(t, cmd, []string{"http"}, ln)
	p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
	if status := p.WaitReady(t)["STATUS"]; !strings.HasPrefix(status, "HTTPS:") {
		t.Fatalf("STATUS=%q, want HTTPS", status)
	}
	return p, ln.Addr().String(), caPath
}

func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s is not installed (apt-get install %s)", tool, pkg)
	}
	return path
}

func TestCurlGetsHTTP2AndPlainHTTPIsRefused(t *testing.T) {
	curl := need(t, "curl", "curl")
	_, addr, ca := httpsProcess(t, "")
	_, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(curl, "--http2", "--cacert", ca, "--resolve", "localhost:"+port+":127.0.0.1",
		"-sS", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", "https://localhost:"+port+"/healthz").CombinedOutput()
	if err != nil || string(out) != "2 200" {
		t.Errorf("curl --http2 https://…/healthz: %q %v, want HTTP/2 and 200", out, err)
	}
	out, err = exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://"+addr+"/healthz").CombinedOutput()
	if err != nil || string(out) != "400" {
		t.Errorf("curl http://…/healthz to the HTTPS port: %q %v, want 400", out, err)
	}
}

func TestOpenSSLVerifiesTheChainAndNegotiatesH2(t *testing.T) {
	openssl := need(t, "openssl", "openssl")
	_, addr, ca := httpsProcess(t, "")
	for _, version := range []string{"-tls1_2", "-tls1_3"} {
		cmd := exec.Command(openssl, "s_client", "-connect", addr, "-servername", "localhost", "-verify_hostname", "localhost",
			"-CAfile", ca, "-verify_return_error", "-alpn", "h2,http/1.1", version)
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.Output() // its summary; stderr has progress only
		if err != nil {
			t.Errorf("openssl s_client %s: %v\n%s", version, err, out)
			continue
		}
		for _, want := range []string{"Verify return code: 0 (ok)", "ALPN protocol: h2", "Protocol  : TLSv1." + version[len("-tls1_"):]} {
			if !strings.Contains(string(out), want) {
				t.Errorf("openssl s_client %s says no %q:\n%s", version, want, out)
			}
		}
	}
}

// TestTestsslFindsNothingHighOrCritical runs testssl.sh, a scanner that
// checks protocols, ciphers, known vulnerabilities and the certificate,
// and fails on any finding it rates HIGH or CRITICAL. Its summary is in
// docs/hardening.md, "HTTPS".
func TestTestsslFindsNothingHighOrCritical(t *testing.T) {
	testssl := need(t, "testssl", "testssl.sh")
	if testing.Short() {
		t.Skip("a scan takes a minute")
	}
	_, addr, ca := httpsProcess(t, "")
	report := filepath.Join(t.TempDir(), "testssl.json")
	// --add-ca trusts the test's CA, as clients of a real deployment
	// trust theirs; --ip one scans the one address.
	cmd := exec.Command(testssl, "--quiet", "--color", "0", "--warnings", "batch", "--ip", "one",
		"--add-ca", ca, "--jsonfile", report, addr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Logf("testssl exited with %v (its exit status counts findings too)", err)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("no report: %v\n%s", err, out)
	}
	var findings []struct{ ID, Severity, Finding string }
	if err := json.Unmarshal(b, &findings); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, f := range findings {
		count[f.Severity]++
		if f.Severity == "HIGH" || f.Severity == "CRITICAL" {
			t.Errorf("testssl %s: %s %s", f.Severity, f.ID, f.Finding)
		}
	}
	t.Logf("testssl findings by severity: %v", count)
	if len(findings) < 50 {
		t.Errorf("testssl reported only %d findings; the scan did not run:\n%s", len(findings), out)
	}
	for _, f := range findings {
		if f.Severity == "MEDIUM" || f.Severity == "LOW" || f.Severity == "WARN" {
			t.Logf("testssl %s: %s %s", f.Severity, f.ID, f.Finding)
		}
	}
}

// A pair that cannot serve stops the start as a bad configuration does
// (78, which the units' RestartPreventExitStatus= names), saying why: a
// restart would fail the same way.
func TestAMismatchedPairFailsTheStartAsABadConfigDoes(t *testing.T) {
	creds := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	ca.Valid(t).Write(t, creds)
	tlstest.WriteFile(t, filepath.Join(creds, "tls.key"), ca.Valid(t).KeyPEM)
	cmd := command(t, "")
	cmd.Env = append(cmd.Env, "CREDENTIALS_DIRECTORY="+creds)
	p := systemdtest.Spawn(t, cmd, systemdtest.Listen(t, false))
	if code := p.ExitCode(t); code != 78 {
		t.Errorf("exit status %d, want 78", code)
	}
	if msg := p.Stderr.String(); !strings.Contains(msg, "private key does not match public key") {
		t.Errorf("stderr %q does not say why", msg)
	}
}
