//go:build systemd

package systemd_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The journal shipped to a collector, as docs/operating.md sets it up for
// a fleet: systemd-journal-upload sends this machine's journal over HTTPS
// to systemd-journal-remote (Debian's systemd-journal-remote package,
// which base-image.sh installs), which stores it in journal files of its
// own. Both run as transient units, on loopback, with certificates made
// here: a CA, and signed by it the collector's (for 127.0.0.1) and the
// uploader's. The uploader checks the collector's against the CA; the
// collector cannot check the uploader's: Debian builds journal-remote
// without GnuTLS, and it refuses --trust= ("Option --trust is not
// available"), so it takes any client that can reach its port.

// journalRemoteAddr is where the collector listens: journal-remote's own
// port.
const journalRemoteAddr = "127.0.0.1:19532"

// tlsFiles are the PEM files of a CA and of the two ends it signed.
type tlsFiles struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

// makeCerts writes a CA and, signed by it, a certificate for the
// collector at 127.0.0.1 and one for the uploader (clientName, which the
// collector names the machine's journal file after).
func makeCerts(t testing.TB, dir, clientName string) tlsFiles {
	t.Helper()
	files := tlsFiles{
		ca:         filepath.Join(dir, "ca.pem"),
		serverCert: filepath.Join(dir, "collector.pem"), serverKey: filepath.Join(dir, "collector.key"),
		clientCert: filepath.Join(dir, "uploader.pem"), clientKey: filepath.Join(dir, "uploader.key"),
	}
	now := time.Now()
	caKey := newKey(t)
	caTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scenario CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, files.ca, "CERTIFICATE", caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP, certPath, keyPath string) {
		key := newKey(t)
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}, ca, key.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, certPath, "CERTIFICATE", der)
		pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, keyPath, "PRIVATE KEY", pkcs8)
	}
	leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)}, files.serverCert, files.serverKey)
	leaf(3, clientName, x509.ExtKeyUsageClientAuth, nil, files.clientCert, files.clientKey)
	return files
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func writePEM(t testing.TB, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// journalDir returns the entries of the journal files in dir that have
// every FIELD=value of matches, by journalctl --directory, which also
// applies args (more matches, -u).
func journalDir(t testing.TB, dir string, args ...string) []map[string]any {
	t.Helper()
	out := command(t, "journalctl", append([]string{"--directory=" + dir, "--output=json", "--no-pager"}, args...)...)
	var entries []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("journalctl --directory -o json: %v: %s", err, sc.Text())
		}
		entries = append(entries, e)
	}
	return entries
}

// localOnly are the fields of an entry that name its place in one journal
// file, not the entry: a copy in another file has its own.
var localOnly = map[string]bool{"__CURSOR": true, "__SEQNUM": true, "__SEQNUM_ID": true}

// TestTheJournalReachesACollectorWithEveryField: the daemon's log records
// (the instrument POST /debug/log, a burst with a SEQ field each) reach the
// collector through journal-upload, each entry with every field it has in
// the local journal, the same value: the daemon's own (SEQ), those of the
// logging protocol (PRIORITY, CODE_FILE, SYSLOG_IDENTIFIER), journald's
// trusted ones (_SYSTEMD_UNIT, _PID, _BOOT_ID) and the timestamps. On the
// collector, `journalctl --directory -u` and a field match find them as
// they find them on the machine.
func TestTheJournalReachesACollectorWithEveryField(t *testing.T) {
	remote, upload := "/usr/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-upload"
	for _, bin := range []string{remote, upload} {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("%s is not installed here (test/systemd/base-image.sh installs systemd-journal-remote in the containers): %v", bin, err)
		}
	}
	freshStart(t, baseConfig)
	dir := t.TempDir()
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	certs := makeCerts(t, dir, hostname)
	collected := filepath.Join(dir, "remote")
	if err := os.Mkdir(collected, 0o755); err != nil {
		t.Fatal(err)
	}
	transient(t, name+"-scenario-journal-remote.service", remote,
		"--listen-https="+journalRemoteAddr, "--key="+certs.serverKey, "--cert="+certs.serverCert,
		"--output="+collected+"/")
	eventually(t, 10*time.Second, "journal-remote listening on "+journalRemoteAddr, func() (bool, string) {
		c, err := net.Dial("tcp", journalRemoteAddr)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
	// From the end of the journal as it is now: the records logged below,
	// not the whole boot's.
	cursorFile := filepath.Join(dir, "upload.state")
	if err := os.WriteFile(cursorFile, []byte("LAST_CURSOR="+journalCursor(t)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	transient(t, name+"-scenario-journal-upload.service", upload,
		"--url=https://"+journalRemoteAddr, "--key="+certs.clientKey, "--cert="+certs.clientCert, "--trust="+certs.ca,
		"--save-state="+cursorFile)

	// A SEQ no earlier scenario logged.
	const n = 20
	seq := int(time.Now().Unix()%1_000_000) * 1000
	cursor := journalCursor(t)
	start := time.Now()
	if code, body := instrument(t, http.MethodPost, fmt.Sprintf("/debug/log?seq=%d&n=%d", seq, n)); code != http.StatusNoContent {
		t.Fatalf("POST /debug/log = %d %q, want 204", code, body)
	}
	inRange := func(e map[string]any) bool {
		s, err := strconv.Atoi(fmt.Sprint(e["SEQ"]))
		return err == nil && s >= seq && s < seq+n
	}
	var local []map[string]any
	eventually(t, 10*time.Second, "the records in the local journal", func() (bool, string) {
		local = slices.DeleteFunc(journal(t, cursor, "_SYSTEMD_UNIT="+unit), func(e map[string]any) bool { return !inRange(e) })
		return len(local) == n, fmt.Sprintf("%d of %d", len(local), n)
	})
	var remoteEntries map[string]map[string]any
	eventually(t, 15*time.Second, "the records on the collector", func() (bool, string) {
		remoteEntries = map[string]map[string]any{}
		for _, e := range journalDir(t, collected, "_SYSTEMD_UNIT="+unit) {
			if inRange(e) {
				remoteEntries[fmt.Sprint(e["SEQ"])] = e
			}
		}
		return len(remoteEntries) == n, fmt.Sprintf("%d of %d; %s is %s", len(remoteEntries), n,
			name+"-scenario-journal-upload.service", prop(t, name+"-scenario-journal-upload.service", "ActiveState"))
	})
	took := time.Since(start)

	for _, l := range local {
		r := remoteEntries[fmt.Sprint(l["SEQ"])]
		for k, v := range l {
			if localOnly[k] {
				continue
			}
			if rv, ok := r[k]; !ok {
				t.Errorf("SEQ=%v: the collector's entry has no %s (%q here)", l["SEQ"], k, v)
			} else if !reflect.DeepEqual(rv, v) {
				t.Errorf("SEQ=%v: %s is %q on the collector, %q here", l["SEQ"], k, rv, v)
			}
		}
		for k := range r {
			if _, ok := l[k]; !ok && !localOnly[k] {
				t.Errorf("SEQ=%v: the collector's entry has a field %s=%q the local one has not", l["SEQ"], k, r[k])
			}
		}
	}

	// Found on the collector as on the machine: by the unit, and by a field.
	first := strconv.Itoa(seq)
	byUnit := journalDir(t, collected, "-u", unit, "SEQ="+first)
	byField := journalDir(t, collected, "SEQ="+first)
	if len(byUnit) != 1 || len(byField) != 1 {
		t.Errorf("on the collector, journalctl -u %s SEQ=%s finds %d entries and SEQ=%s %d, want 1 each", unit, first, len(byUnit), first, len(byField))
	}
	files, _ := filepath.Glob(filepath.Join(collected, "*.journal"))
	for i := range files {
		files[i] = filepath.Base(files[i])
	}
	t.Logf("systemd %d: %d records, %d fields each, on the collector %s after they were logged, in %v; identical but for %v",
		systemdVersion(t), n, len(local[0]), took.Round(time.Millisecond), files, keysOf(localOnly))
}

func keysOf(m map[string]bool) []string {
	ks := keys(m)
	slices.Sort(ks)
	return ks
}
