// Package docstest reads the README's tables of settings, for the tests
// that keep them equal to the code: the kit's in test/docs, an app's beside
// the app.
package docstest

import (
	"encoding"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"example.com/daemon/internal/config"
)

// Section returns the text of the file at path from the first line holding
// start up to the first line after it holding end.
func Section(t testing.TB, path, start, end string) string {
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

// CheckSettingsTable checks that the table of settings in text lists the
// keys of settings (a struct with toml tags, holding its defaults), and no
// others, each with its default.
func CheckSettingsTable(t testing.TB, text string, settings any) {
	t.Helper()
	want := map[string]reflect.Value{}
	keys("", reflect.ValueOf(settings), want)
	row := regexp.MustCompile("(?m)^\\| (?:`\\[(\\w+)\\]` )?`(\\w+)` \\| ([^|]*) \\|")
	got := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(text, -1) {
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
			t.Errorf("the table lacks %s", key)
		case !sameDefault(readme, def):
			t.Errorf("the table gives %s the default %q; the code has %v", key, readme, def)
		}
	}
	for key := range got {
		if _, ok := want[key]; !ok {
			t.Errorf("the table lists %s, which the code does not have", key)
		}
	}
}

// Keys returns the keys of a settings struct (holding its defaults), its
// tables' keys as table.key.
func Keys(settings any) []string {
	m := map[string]reflect.Value{}
	keys("", reflect.ValueOf(settings), m)
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ManPage returns the manual page's source: the one packaging/*.8.md below
// top.
func ManPage(t testing.TB, top string) string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(top, "packaging", "*.8.md"))
	if err != nil || len(names) != 1 {
		t.Fatalf("packaging/*.8.md: %v %v, want one manual page", names, err)
	}
	data, err := os.ReadFile(names[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// CheckManPageLists checks that the manual page lists each key (the last
// part of table.key) as a term of its own, **key**.
func CheckManPageLists(t testing.TB, page string, keys []string) {
	t.Helper()
	for _, k := range keys {
		if i := strings.LastIndexByte(k, '.'); i >= 0 {
			k = k[i+1:]
		}
		if !strings.Contains(page, "\n**"+k+"**\n") {
			t.Errorf("the manual page does not describe %s", k)
		}
	}
}

// keys returns the keys of a settings struct, with its tables' keys as
// table.key, each with its default value.
func keys(prefix string, v reflect.Value, into map[string]reflect.Value) {
	text := reflect.TypeFor[encoding.TextUnmarshaler]()
	for i := range v.NumField() {
		f := v.Type().Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(text) {
			keys(prefix+key+".", v.Field(i), into)
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
	case int64:
		return readme == strconv.FormatInt(x, 10)
	case bool:
		return readme == strconv.FormatBool(x)
	case string:
		return readme == x
	}
	return false
}
