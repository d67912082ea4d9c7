// Package docs checks that what the documentation says of the code stays
// true: every test it cites exists, the README's list of metrics is the
// daemon's, and the manual page describes every flag. (The settings' docs
// are made from the code: tools/docs.)
package docs

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"example.com/daemon/internal/lifecycle"
	"example.com/daemon/internal/metrics"
	"example.com/daemon/internal/service"
	"example.com/daemon/internal/systemd"
)

const top = "../.."

// docs returns the text of the README, the docs and the units (whose
// comments cite tests too), by file name.
func docs(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, pattern := range []string{"README.md", "docs/*.md", "deploy/systemd/*", "deploy/systemd/*/*"} {
		names, err := filepath.Glob(filepath.Join(top, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if st, err := os.Stat(name); err != nil || st.IsDir() {
				continue
			}
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			files[name] = string(data)
		}
	}
	return files
}

func TestEveryTestTheDocsCiteExists(t *testing.T) {
	defined := map[string]bool{}
	def := regexp.MustCompile(`(?m)^func ((?:Test|Benchmark|Fuzz)[A-Z]\w*)\(`)
	err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		data, err := os.ReadFile(path)
		for _, m := range def.FindAllStringSubmatch(string(data), -1) {
			defined[m[1]] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	cite := regexp.MustCompile(`\b(?:Test|Benchmark|Fuzz)[A-Z]\w*`)
	cited := 0
	for name, text := range docs(t) {
		for _, c := range cite.FindAllString(text, -1) {
			cited++
			if !defined[c] {
				t.Errorf("%s cites %s, which no test file defines", name, c)
			}
		}
	}
	if cited == 0 {
		t.Error("the docs cite no test at all; is the pattern right?")
	}
}

// TestREADMEListsEveryMetric: the README names every metric of the
// daemon's own, and none it does not have.
func TestREADMEListsEveryMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics.New(reg, metrics.Build{Version: "v", Revision: "r", GoVersion: "go"})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range families {
		if name, ok := strings.CutPrefix(f.GetName(), "daemon_"); ok {
			want = append(want, name)
		}
	}
	// Series with labels appear once observed; these are counted from the
	// first request, or the first panic; the certificate's, once one is
	// loaded.
	for _, name := range []string{"http_requests_total", "http_request_duration_seconds", "http_panics_total",
		"tls_certificate_not_before_timestamp_seconds", "tls_certificate_not_after_timestamp_seconds"} {
		if !slices.Contains(want, name) {
			want = append(want, name)
		}
	}
	section := section(t, filepath.Join(top, "README.md"), "Metrics, all under", "\n#")
	var got []string
	for _, m := range regexp.MustCompile("`([a-z_]+)(?:\\{[^}]*\\})?`").FindAllStringSubmatch(section, -1) {
		if m[1] != "daemon_" && !strings.HasSuffix(m[1], "_") {
			got = append(got, m[1])
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	got = slices.Compact(got)
	if !slices.Equal(got, want) {
		t.Errorf("README lists the metrics\n  %v\nthe daemon has\n  %v", got, want)
	}
}

// TestManPageDescribesEveryFlag: the manual page has a term for each flag
// the daemon takes, as the daemon's own -help lists them. (Its settings
// are made from their descriptions in the code: tools/docs.)
func TestManPageDescribesEveryFlag(t *testing.T) {
	pages, err := filepath.Glob(filepath.Join(top, "packaging", "*.8.md"))
	if err != nil || len(pages) != 1 {
		t.Fatalf("packaging/*.8.md: %v %v, want one manual page", pages, err)
	}
	page, err := os.ReadFile(pages[0])
	if err != nil {
		t.Fatal(err)
	}
	var help bytes.Buffer
	err = service.Run(context.Background(), service.AppSpec[struct{}]{}, []string{"daemon", "-help"},
		func(string) string { return "" }, lifecycle.Signals{}, systemd.Passed{}, io.Discard, &help)
	if err != nil {
		t.Fatal(err)
	}
	var flags []string
	for _, line := range strings.Split(help.String(), "\n") {
		if name, ok := strings.CutPrefix(line, "  -"); ok {
			name, _, _ = strings.Cut(name, " ")
			flags = append(flags, name)
		}
	}
	if len(flags) < 8 {
		t.Fatalf("-help lists %d flags:\n%s", len(flags), help.String())
	}
	for _, f := range flags {
		if !strings.Contains(string(page), "**-"+f+"**") {
			t.Errorf("the manual page does not describe -%s", f)
		}
	}
}

// section returns the text of the file at path from the first line holding
// start up to the first line after it holding end.
func section(t testing.TB, path, start, end string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i := strings.Index(text, start)
	if i < 0 {
		t.Fatalf("%s has no %q", path, start)
	}
	text = text[i:]
	j := strings.Index(text, end)
	if j < 0 {
		t.Fatalf("%s has no %q after %q", path, end, start)
	}
	return text[:j]
}
