// Package docs checks that what the documentation says of the code stays
// true: every test it cites exists, and the README's tables of settings and
// metrics are the ones the code has.
package docs

import (
	"encoding"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"example.com/daemon/internal/app"
	"example.com/daemon/internal/config"
	"example.com/daemon/internal/metrics"
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

// readmeSection returns the README's text from the line starting with
// start to the next heading.
func readmeSection(t *testing.T, start string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(top, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i := strings.Index(text, start)
	if i < 0 {
		t.Fatalf("README.md has no %q", start)
	}
	text = text[i:]
	if j := strings.Index(text[1:], "\n#"); j >= 0 {
		text = text[:j+1]
	}
	return text
}

// tomlKeys returns the keys of a settings struct, with its tables' keys as
// table.key, each with its default value.
func tomlKeys(prefix string, v reflect.Value, into map[string]reflect.Value) {
	text := reflect.TypeFor[encoding.TextUnmarshaler]()
	for i := range v.NumField() {
		f := v.Type().Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(text) {
			tomlKeys(prefix+key+".", v.Field(i), into)
			continue
		}
		into[prefix+key] = v.Field(i)
	}
}

// sameDefault reports whether the README's text for a default is v.
func sameDefault(readme string, v reflect.Value) bool {
	switch x := v.Interface().(type) {
	case config.Duration:
		d, err := time.ParseDuration(readme)
		return err == nil && d == x.Duration
	case config.Level:
		return readme == strings.ToLower(x.String())
	case fmt.Stringer:
		return readme == x.String()
	case int:
		return readme == strconv.Itoa(x)
	case bool:
		return readme == strconv.FormatBool(x)
	case string:
		return readme == x
	}
	return false
}

// TestREADMEConfigTableIsTheConfig: the README's table of settings lists
// every key the file may hold, the daemon's and the example's, with the
// defaults the code has.
func TestREADMEConfigTableIsTheConfig(t *testing.T) {
	want := map[string]reflect.Value{}
	tomlKeys("", reflect.ValueOf(config.Default()), want)
	tomlKeys("", reflect.ValueOf(app.DefaultConfig()), want)
	row := regexp.MustCompile("(?m)^\\| (?:`\\[(\\w+)\\]` )?`(\\w+)` \\| ([^|]*) \\|")
	got := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(readmeSection(t, "The configuration ("), -1) {
		key := m[2]
		if m[1] != "" {
			key = m[1] + "." + key
		}
		got[key] = strings.Trim(strings.TrimSpace(m[3]), "`")
	}
	for key, def := range want {
		readme, ok := got[key]
		switch {
		case !ok:
			t.Errorf("README's configuration table lacks %s", key)
		case !sameDefault(readme, def):
			t.Errorf("README gives %s the default %q; the code has %v", key, readme, def)
		}
	}
	for key := range got {
		if _, ok := want[key]; !ok {
			t.Errorf("README's configuration table lists %s, which the code does not have", key)
		}
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
	// first request, or the first panic.
	for _, name := range []string{"http_requests_total", "http_request_duration_seconds", "http_panics_total"} {
		if !slices.Contains(want, name) {
			want = append(want, name)
		}
	}
	section := readmeSection(t, "Metrics, all under")
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
