// Package docs checks that what the documentation says of the code stays
// true: every test it cites exists, and the README's tables of settings and
// metrics are the ones the code has.
package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"example.com/daemon/internal/config"
	"example.com/daemon/internal/metrics"
	"example.com/daemon/test/docs/docstest"
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

// TestREADMEConfigTableIsTheConfig: the README's table of the daemon's
// settings lists every key of config.Config, with the defaults the code has.
// (The example's table is checked in internal/app.)
func TestREADMEConfigTableIsTheConfig(t *testing.T) {
	docstest.CheckSettingsTable(t,
		docstest.Section(t, filepath.Join(top, "README.md"), "The configuration (", "and, beside them"),
		config.Default())
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
	// first request, or the first panic.
	for _, name := range []string{"http_requests_total", "http_request_duration_seconds", "http_panics_total"} {
		if !slices.Contains(want, name) {
			want = append(want, name)
		}
	}
	section := docstest.Section(t, filepath.Join(top, "README.md"), "Metrics, all under", "\n#")
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

// TestManPageDescribesEveryFlagAndSetting: the manual page has a term for
// each flag the daemon takes (from internal/service) and each of the
// daemon's settings. (The example's settings are checked in internal/app.)
func TestManPageDescribesEveryFlagAndSetting(t *testing.T) {
	page := docstest.ManPage(t, top)
	src, err := os.ReadFile(filepath.Join(top, "internal", "service", "service.go"))
	if err != nil {
		t.Fatal(err)
	}
	flags := regexp.MustCompile(`flags\.(?:String|Bool|TextVar)\((?:&\w+, )?"([a-z-]+)"`).FindAllSubmatch(src, -1)
	if len(flags) < 8 {
		t.Fatalf("found %d flags in service.go; is the pattern right?", len(flags))
	}
	for _, f := range flags {
		if !strings.Contains(page, "**-"+string(f[1])+"**") {
			t.Errorf("the manual page does not describe -%s", f[1])
		}
	}
	docstest.CheckManPageLists(t, page, docstest.Keys(config.Default()))
}
