package walkthrough

import (
	"os"
	"strings"
	"testing"
)

// readDoc parses the repository's docs/walkthrough.md.
func readDoc(t *testing.T) (*Doc, string) {
	t.Helper()
	b, err := os.ReadFile("../../../docs/walkthrough.md")
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(string(b))
	if err != nil {
		t.Fatalf("docs/walkthrough.md: %v", err)
	}
	return d, string(b)
}

// TestTheDocParses: the doc has its version marker and generated blocks,
// each with a command, and a run that printed what the doc shows renders
// the doc unchanged.
func TestTheDocParses(t *testing.T) {
	d, text := readDoc(t)
	if d.Version == 0 || len(d.Blocks) == 0 {
		t.Fatalf("version %d, %d blocks", d.Version, len(d.Blocks))
	}
	same, err := d.Render(d.Blocks, d.Version)
	if err != nil {
		t.Fatal(err)
	}
	if same != text {
		t.Errorf("rendering the doc with its own outputs changed it")
	}
	if err := d.Compare(d.Blocks); err != nil {
		t.Errorf("the doc against itself: %v", err)
	}
}

// edited returns the doc's blocks with old replaced by new in the first
// output that has old, and that block's name; the test fails if none has.
func edited(t *testing.T, d *Doc, old, new string) ([]Block, string) {
	t.Helper()
	fresh := make([]Block, len(d.Blocks))
	name := ""
	for i, b := range d.Blocks {
		fresh[i] = Block{Name: b.Name, Steps: append([]Step(nil), b.Steps...)}
		for j, s := range fresh[i].Steps {
			if name == "" && strings.Contains(s.Output, old) {
				fresh[i].Steps[j].Output = strings.Replace(s.Output, old, new, 1)
				name = b.Name
			}
		}
	}
	if name == "" {
		t.Fatalf("no output in docs/walkthrough.md has %q", old)
	}
	return fresh, name
}

// TestCompareFindsWhatTheDaemonSaysDifferently: a changed log message or
// STATUS= text fails the comparison, naming the block and the make
// target; what changes from run to run does not.
func TestCompareFindsWhatTheDaemonSaysDifferently(t *testing.T) {
	d, _ := readDoc(t)
	for _, c := range []struct{ what, old, new string }{
		{"a log message", "]: ready", "]: ready to serve"},
		{"the STATUS= text", `Status: "Serving on`, `Status: "Listening on`},
		{"the STATUS= text of a failed reload", "StatusText=Serving on 127.0.0.1:8080 (socket-activated), metrics on [::]:9090; reload failed", "StatusText=Serving on 127.0.0.1:8080 (socket-activated), metrics on [::]:9090; reload refused"},
		{"an error's words", "is not a log level", "is no log level"},
	} {
		t.Run(c.what, func(t *testing.T) {
			fresh, block := edited(t, d, c.old, c.new)
			err := d.Compare(fresh)
			if err == nil {
				t.Fatalf("%q made %q: no difference found", c.old, c.new)
			}
			for _, want := range []string{`block "` + block + `"`, Target} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error does not name %s:\n%v", want, err)
				}
			}
		})
	}
}

// TestNormaliseSetsAsideWhatChangesFromRunToRun: lines from two runs of
// the same build, as systemd 252 prints them, are equal once normalised.
func TestNormaliseSetsAsideWhatChangesFromRunToRun(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"     Active: active (running) since Sun 2026-12-06 02:51:29 UTC; 5ms ago", "     Active: active (running) since Mon 2027-01-11 13:02:59 UTC; 1min 2s ago"},
		{"Dec 06 02:51:29 e4e466d23126 daemon[249]: ready", "Jan 11 13:02:59 0b1c2d3e4f5a daemon[1234]: ready"},
		{"   Main PID: 249 (daemon)", "   Main PID: 1234 (daemon)"},
		{"             └─249 /usr/bin/daemon", "             └─1234 /usr/bin/daemon"},
		{"    _SYSTEMD_INVOCATION_ID=4558688861e44cea8e0d2c8a928cfe0f", "    _SYSTEMD_INVOCATION_ID=0123456789abcdef0123456789abcdef"},
		{"Sun 2026-12-06 02:51:29.390163 UTC [s=fcb0a0ac;i=2c4;b=45;m=1;t=2;x=3]", "Mon 2027-01-11 13:02:59.000001 UTC [s=aa;i=1;b=2;m=3;t=4;x=5]"},
		{"Unpacking daemon (0.0.0+124.gfd60a33) ...", "Unpacking daemon (0.0.0+130.g0123abc) ..."},
		{"real\t0m4.516s", "real\t0m4.498s"},
		{"    CODE_LINE=255", "    CODE_LINE=262"},
		{"     CGroup: /libpod_parent/libpod-0123/system.slice/daemon.service", "     CGroup: /system.slice/daemon.service"},
		{"    CODE_FUNC=git.example.net/me/svc/internal/lifecycle.Run[...]", "    CODE_FUNC=example.org/you/daemon/internal/lifecycle.Run[...]"},
	} {
		if a, b := Normalise(c.a), Normalise(c.b); a != b {
			t.Errorf("%q\n%q\nnormalised differ:\n%q\n%q", c.a, c.b, a, b)
		}
	}
	for _, c := range []struct{ a, b string }{
		{"Dec 06 02:51:29 h daemon[249]: ready\nDec 06 02:51:29 h systemd[1]: Started daemon.service", "Dec 06 02:51:29 h systemd[1]: Started daemon.service\nDec 06 02:51:29 h daemon[249]: ready"},
		{`{"PRIORITY":"3","MESSAGE":"reload failed","__CURSOR":"s=1;i=2"}`, `{"__CURSOR":"s=3;i=4","MESSAGE":"reload failed","PRIORITY":"3"}`},
		{"TriggeredBy: ● daemon.socket\n             ● daemon-metrics.socket\n   Main PID: 1", "TriggeredBy: ● daemon-metrics.socket\n             ● daemon.socket\n   Main PID: 1"},
		{"Warning: Stopping daemon.service, but it can still be activated by:\n  daemon.socket\n  daemon-metrics.socket\n", "Warning: Stopping daemon.service, but it can still be activated by:\n  daemon-metrics.socket\n  daemon.socket\n"},
	} {
		if a, b := Normalise(c.a), Normalise(c.b); a != b {
			t.Errorf("%q\n%q\nnormalised differ:\n%q\n%q", c.a, c.b, a, b)
		}
	}
	for _, c := range []struct{ a, b string }{
		{"Dec 06 02:51:29 h daemon[249]: stop requested\nDec 06 02:51:29 h daemon[249]: stopped", "Dec 06 02:51:29 h daemon[249]: stopped\nDec 06 02:51:29 h daemon[249]: stop requested"},
		{"daemon[249]: ready", "daemon[249]: ready!"},
		{`     Status: "Serving on [::]:8080"`, `     Status: "Serving on [::]:8081"`},
		{"WatchdogUSec=10s", "WatchdogUSec=20s"},
		{"NRestarts=1", "NRestarts=2"},
	} {
		if Normalise(c.a) == Normalise(c.b) {
			t.Errorf("%q and %q are the same once normalised", c.a, c.b)
		}
	}
}
