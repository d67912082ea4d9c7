package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestDropBlocksRemovesMarkedLinesAndBlocks(t *testing.T) {
	in := strings.Join([]string{
		"kept 1",
		"| a row | <!-- example:line --> |",
		"kept 2",
		"# example:begin",
		"gone",
		"# example:end",
		"kept 3",
		"",
	}, "\n")
	out, err := dropBlocks("f", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := "kept 1\nkept 2\nkept 3\n"; string(out) != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestDropBlocksRefusesUnbalancedMarkers(t *testing.T) {
	for _, in := range []string{
		"a\n# example:begin\nb\n",                           // never ended
		"a\n# example:end\n",                                // no begin
		"# example:begin\n# example:begin\n# example:end\n", // nested
	} {
		if _, err := dropBlocks("f", []byte(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestIsExample(t *testing.T) {
	for path, want := range map[string]bool{
		"internal/example/app.go":              true,
		"cmd/hello/example_test.go":            true,
		"test/systemd/example_notes_test.go":   true,
		"tools/example_drop/main.go":           true,
		"internal/app/app.go":                  false,
		"docs/examples.md":                     false,
		"internal/lifecycle/lifecycle_test.go": false,
	} {
		if got := isExample(path); got != want {
			t.Errorf("isExample(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestPlugAppImportsInternalApp(t *testing.T) {
	src := "package main\n\nimport (\n\t\"fmt\"\n\n\tapp \"example.org/x/internal/example\"\n\t\"example.org/x/internal/service\"\n)\n\nvar _ = app.New\nvar _ = fmt.Sprint\nvar _ = service.Run\n"
	out, err := plugApp("main.go", []byte(src), "example.org/x")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("\t\"example.org/x/internal/app\"\n\t\"example.org/x/internal/service\"\n")) || bytes.Contains(out, []byte("internal/example")) {
		t.Errorf("got:\n%s", out)
	}
}

// TestRunRefusesADirtyTree: like make rename, it works only where git can
// show and undo what it did.
func TestRunRefusesADirtyTree(t *testing.T) {
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.org/x\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "internal", "example"), 0o755)
	os.WriteFile(filepath.Join(dir, "internal", "example", "a.go"), []byte("package example\n"), 0o644)
	git("add", "-A")
	git("commit", "-qm", "x")
	os.WriteFile(filepath.Join(dir, "new"), []byte("x"), 0o644)
	var out bytes.Buffer
	if err := run([]string{"example_drop", "-dir", dir}, &out); err == nil || !strings.Contains(err.Error(), "uncommitted") {
		t.Errorf("run in a dirty tree: %v, want it refused", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "internal", "example", "a.go")); err != nil {
		t.Errorf("a refused drop removed a file: %v", err)
	}
}
