package config

import (
	"strings"
	"testing"
	"time"
)

// TestEveryKeyOfConfigIsDescribed: each key the decoder reads into Config
// has its Setting, with a Doc, and each Setting names a key, so the docs
// made from them list exactly the keys the daemon takes.
func TestEveryKeyOfConfigIsDescribed(t *testing.T) {
	keys, err := Keys(Default())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, k := range keys {
		names = append(names, k.Key)
		if strings.TrimSpace(k.Doc) == "" {
			t.Errorf("%s: empty Doc", k.Key)
		}
	}
	// The decoder's own view of the keys: each, set in a file, is read.
	for _, k := range keys {
		if k.Table {
			continue
		}
		table, key, ok := strings.Cut(k.Key, ".")
		doc := k.Key + " = 1"
		if ok {
			doc = "[" + table + "]\n" + key + " = 1"
		}
		if _, err := Parse("c.toml", []byte(doc), nil); err != nil && strings.Contains(err.Error(), "unknown key") {
			t.Errorf("%s is described but the decoder does not know it: %v", k.Key, err)
		}
	}
	if got := strings.Join(names, " "); !strings.Contains(got, "http http.read_header_timeout") || !strings.HasPrefix(got, "log_level ") {
		t.Errorf("keys %s: want Config's order, each table before its keys", got)
	}
}

type described struct {
	Greeting string `toml:"greeting"`
	Notes    struct {
		Max int `toml:"max"`
	} `toml:"notes"`
	Skipped  int `toml:"-"`
	settings []Setting
}

func (d described) Settings() []Setting { return d.settings }

// TestKeysRefusesAKeyWithoutSettingAndASettingWithoutKey: the docs can
// neither lack a key nor describe one the decoder refuses.
func TestKeysRefusesAKeyWithoutSettingAndASettingWithoutKey(t *testing.T) {
	all := []Setting{{Key: "greeting", Doc: "g"}, {Key: "notes", Doc: "n"}, {Key: "notes.max", Doc: "m"}}
	keys, err := Keys(described{Greeting: "hi", settings: all})
	if err != nil || len(keys) != 3 || keys[0].Default != "hi" || !keys[1].Table || keys[2].Default != 0 {
		t.Fatalf("Keys: %+v, %v", keys, err)
	}
	for _, tc := range []struct {
		settings []Setting
		want     string
	}{
		{all[:2], "notes.max has no Setting"},
		{append(all[1:3:3], Setting{Key: "greting"}), "greeting has no Setting"},
		{append(all[:3:3], Setting{Key: "greting"}), "the Setting greting names no key"},
		{append(all[:3:3], Setting{Key: "Skipped"}), "the Setting Skipped names no key"},
		{append(all[:3:3], all[0]), "greeting is described twice"},
	} {
		if _, err := Keys(described{settings: tc.settings}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Keys with %v: %v, want %q", tc.settings, err, tc.want)
		}
	}
}

// TestTextSettingsAreWrittenAsTheFileWritesThem: what the docs show as a
// default is what a file may say, in its shortest form.
func TestTextSettingsAreWrittenAsTheFileWritesThem(t *testing.T) {
	for _, tc := range []struct {
		v    interface{ MarshalText() ([]byte, error) }
		want string
	}{
		{Duration{0}, "0s"},
		{Duration{10 * time.Second}, "10s"},
		{Duration{2 * time.Minute}, "2m"},
		{Duration{90 * time.Second}, "1m30s"},
		{Duration{time.Hour}, "1h"},
		{Duration{time.Hour + 10*time.Minute}, "1h10m"},
		{Duration{1500 * time.Millisecond}, "1.5s"},
		{Level{}, "info"},
		{Address{"127.0.0.1:8080"}, "127.0.0.1:8080"},
	} {
		b, _ := tc.v.MarshalText()
		if string(b) != tc.want {
			t.Errorf("%#v written as %q, want %q", tc.v, b, tc.want)
			continue
		}
		if d, ok := tc.v.(Duration); ok {
			var back Duration
			if err := back.UnmarshalText(b); err != nil || back != d {
				t.Errorf("%q read back as %v, %v", b, back, err)
			}
		}
	}
}
