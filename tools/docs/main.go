// Command docs writes what the docs say of the settings from the settings'
// one description, their config.Setting beside the struct (the kit's in
// internal/config/settings.go, the app's beside its Config):
//
//	make docs
//
// It writes, between the lines <!-- settings: kit (make docs) --> (or app)
// and <!-- end of settings -->, the README's table and the manual page's
// list of the kit's and of the app's settings, and deploy/config.toml
// after its opening comment: every key, at its default, under its
// description. The prose around them is the files' own.
// TestTheDocsAreMadeFromTheSettings fails while a file is not what this
// would write.
//
// The app is the one cmd/daemon runs: the example, until `make
// drop-example` plugs in internal/app here as there, and writes the docs
// again.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"example.com/daemon/internal/config"
	app "example.com/daemon/internal/example"
)

func main() {
	if err := run(os.Args, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "docs: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("docs", flag.ContinueOnError)
	dir := flags.String("dir", ".", "the repository's top `directory`")
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	files, err := made(*dir)
	if err != nil {
		return err
	}
	for _, f := range files {
		if bytes.Equal(f.now, f.made) {
			continue
		}
		if err := os.WriteFile(f.path, f.made, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", f.path)
	}
	return nil
}

// file is a file of the docs as it is (now) and as the settings make it.
type file struct {
	path      string
	now, made []byte
}

// made reads the files below dir that describe the settings and returns
// each with what it should hold.
func made(dir string) ([]file, error) {
	kit, err := config.Keys(config.Default())
	if err != nil {
		return nil, err
	}
	appKeys, err := config.Keys(app.DefaultConfig())
	if err != nil {
		return nil, err
	}
	pages, err := filepath.Glob(filepath.Join(dir, "packaging", "*.8.md"))
	if err != nil {
		return nil, err
	}
	if len(pages) != 1 {
		return nil, fmt.Errorf("packaging/*.8.md: %v, want one manual page", pages)
	}
	var files []file
	for _, f := range []struct {
		path string
		make func(text string) (string, error)
	}{
		{filepath.Join(dir, "README.md"), func(text string) (string, error) {
			return replaceRegions(text, map[string]string{"kit": readmeTable(kit), "app": readmeTable(appKeys)})
		}},
		{pages[0], func(text string) (string, error) {
			return replaceRegions(text, map[string]string{"kit": manList(kit), "app": manList(appKeys)})
		}},
		{filepath.Join(dir, "deploy", "config.toml"), func(text string) (string, error) {
			return configFile(text, kit, appKeys)
		}},
	} {
		now, err := os.ReadFile(f.path)
		if err != nil {
			return nil, err
		}
		made, err := f.make(string(now))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.path, err)
		}
		files = append(files, file{f.path, now, []byte(made)})
	}
	return files, nil
}

// The lines around a region the settings make, in Markdown.
const (
	regionBegin = "<!-- settings: %s (make docs) -->\n"
	regionEnd   = "<!-- end of settings -->\n"
)

// replaceRegions puts, in text, regions[name] between the lines that begin
// and end the region name. Each region must be there, once.
func replaceRegions(text string, regions map[string]string) (string, error) {
	for name, body := range regions {
		begin := fmt.Sprintf(regionBegin, name)
		before, rest, ok := strings.Cut(text, begin)
		if !ok {
			return "", fmt.Errorf("no line %q", strings.TrimSpace(begin))
		}
		_, after, ok := strings.Cut(rest, regionEnd)
		if !ok {
			return "", fmt.Errorf("no line %q after %q", strings.TrimSpace(regionEnd), strings.TrimSpace(begin))
		}
		if strings.Contains(after, begin) {
			return "", fmt.Errorf("two regions %q", name)
		}
		text = before + begin + body + regionEnd + after
	}
	return text, nil
}

// readmeTable is the README's table of keys.
func readmeTable(keys []config.Key) string {
	var b strings.Builder
	b.WriteString("| key | default | reloadable | meaning |\n|---|---|---|---|\n")
	for _, k := range keys {
		if k.Table {
			continue
		}
		name := "`" + k.Key + "`"
		if table, key, ok := strings.Cut(k.Key, "."); ok {
			name = "`[" + table + "]` `" + key + "`"
		}
		reload := "no"
		if k.Reloadable {
			reload = "yes"
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", name, text(k.Default), reload, k.Doc)
	}
	return b.String()
}

// manList is the manual page's list of keys, a table's under a heading.
func manList(keys []config.Key) string {
	var b strings.Builder
	for _, k := range keys {
		if k.Table {
			fmt.Fprintf(&b, "\n%s\n", wrap("**["+k.Key+"]** section. "+k.Doc, "", 76))
			continue
		}
		doc := fmt.Sprintf("%s Default %s.", k.Doc, manDefault(k.Default))
		if k.Reloadable {
			doc += " Reloadable."
		}
		_, name, ok := strings.Cut(k.Key, ".")
		if !ok {
			name = k.Key
		}
		fmt.Fprintf(&b, "\n**%s**\n:   %s\n", name, strings.TrimPrefix(wrap(doc, "    ", 76), "    "))
	}
	return b.String()
}

func manDefault(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return text(v)
}

// configFile is deploy/config.toml: its opening comment, then every key at
// its default under its description; the top-level keys (the app's, then
// the kit's) before the tables, as TOML needs.
func configFile(now string, kit, appKeys []config.Key) (string, error) {
	head, _, ok := strings.Cut(now, "\n\n")
	if !ok || !strings.HasPrefix(head, "#") {
		return "", fmt.Errorf("no opening comment, followed by an empty line")
	}
	var b strings.Builder
	b.WriteString(head + "\n")
	var tables []config.Key
	for _, keys := range [][]config.Key{appKeys, kit} {
		for _, k := range keys {
			if k.Table || strings.Contains(k.Key, ".") {
				tables = append(tables, k)
				continue
			}
			if err := writeKey(&b, k.Key, k); err != nil {
				return "", err
			}
		}
	}
	for _, k := range tables {
		if k.Table {
			fmt.Fprintf(&b, "\n%s\n[%s]\n", wrap(k.Doc, "# ", 76), k.Key)
			continue
		}
		_, name, _ := strings.Cut(k.Key, ".")
		if err := writeKey(&b, name, k); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

func writeKey(b *strings.Builder, name string, k config.Key) error {
	doc := k.Doc + " Takes effect at the next start."
	if k.Reloadable {
		doc = k.Doc + " Reloadable."
	}
	line := name + " = " + tomlValue(k.Default)
	// What is written must read back as the default.
	var back map[string]any
	if err := toml.Unmarshal([]byte(line), &back); err != nil {
		return fmt.Errorf("%s: the default written as %s: %w", k.Key, line, err)
	}
	fmt.Fprintf(b, "\n%s\n%s\n", wrap(doc, "# ", 76), line)
	return nil
}

// tomlValue is v as a TOML value: a text setting, and a string, in double
// quotes, the way people write them.
func tomlValue(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case interface{ MarshalText() ([]byte, error) }:
		return strconv.Quote(text(v))
	}
	return fmt.Sprint(v)
}

// text is a default as the docs show it: a text setting by its
// MarshalText, the others as Go prints them.
func text(v any) string {
	if m, ok := v.(interface{ MarshalText() ([]byte, error) }); ok {
		if b, err := m.MarshalText(); err == nil {
			return string(b)
		}
	}
	return fmt.Sprint(v)
}

// wrap breaks s into lines of at most width, each starting with prefix.
func wrap(s, prefix string, width int) string {
	var lines []string
	line := prefix
	for _, w := range strings.Fields(s) {
		if line != prefix && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = prefix
		}
		if line != prefix {
			line += " "
		}
		line += w
	}
	return strings.Join(append(lines, line), "\n")
}
