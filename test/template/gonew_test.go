// Package template_test checks that the repository works as a template:
// `gonew` copies it into a module of a new name that builds and vets, and
// nothing outside Go code still names the old module.
package template_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// gonewVersion is the golang.org/x/tools release whose cmd/gonew is run.
const gonewVersion = "v0.52.0"

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// file is a file of the working tree, for the module zip.
type file struct{ root, path string }

func (f file) Path() string                 { return f.path }
func (f file) Lstat() (fs.FileInfo, error)  { return os.Lstat(filepath.Join(f.root, f.path)) }
func (f file) Open() (io.ReadCloser, error) { return os.Open(filepath.Join(f.root, f.path)) }

func TestGonewMakesABuildableCopyUnderANewModulePath(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gonew and a copy of the whole module")
	}
	root := strings.TrimSpace(run(t, ".", nil, "git", "rev-parse", "--show-toplevel"))
	oldPath := strings.TrimSpace(run(t, root, nil, "go", "list", "-m"))
	const newPath = "example.net/gonew/copy" // not a path a rename would choose
	tmp := t.TempDir()
	// The version the working tree is published as, in a module proxy made
	// of files. A new one each run: the module cache keeps every version it
	// downloaded, and would hand gonew an older tree under a reused one.
	now := time.Now().UTC()
	templateVersion := fmt.Sprintf("v0.0.0-%s-%012x", now.Format("20060102150405"), now.UnixNano()&(1<<48-1))

	// gonew itself, from the module proxy.
	bin := filepath.Join(tmp, "bin")
	run(t, root, []string{"GOBIN=" + bin, "GOFLAGS="}, "go", "install", "golang.org/x/tools/cmd/gonew@"+gonewVersion)

	// The working tree as it would be published: the files git tracks or
	// would track (so nothing ignored, such as bin/), zipped as a module
	// and served by a proxy made of files.
	listed := run(t, root, nil, "git", "ls-files", "--cached", "--others", "--exclude-standard")
	var files []modzip.File
	for _, p := range strings.Split(strings.TrimSpace(listed), "\n") {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil { // not deleted in the tree
			files = append(files, file{root, p})
		}
	}
	proxy := filepath.Join(tmp, "proxy")
	vdir := filepath.Join(proxy, oldPath, "@v")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		t.Fatal(err)
	}
	zf, err := os.Create(filepath.Join(vdir, templateVersion+".zip"))
	if err != nil {
		t.Fatal(err)
	}
	if err := modzip.Create(zf, module.Version{Path: oldPath, Version: templateVersion}, files); err != nil {
		t.Fatalf("module zip: %v", err)
	}
	zf.Close()
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	info, _ := json.Marshal(map[string]any{"Version": templateVersion, "Time": now})
	for name, data := range map[string][]byte{
		templateVersion + ".mod":  gomod,
		templateVersion + ".info": info,
		"list":                    []byte(templateVersion + "\n"),
	} {
		if err := os.WriteFile(filepath.Join(vdir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// gonew, offline: the template from the file proxy, the dependencies
	// from the module cache.
	offline := []string{"GOPROXY=file://" + proxy, "GONOSUMDB=" + oldPath, "GOFLAGS=-mod=mod"}
	dst := filepath.Join(tmp, "copy")
	run(t, tmp, offline, filepath.Join(bin, "gonew"), oldPath+"@"+templateVersion, newPath, dst)

	// The copy builds, vets and names only its new module.
	if got := strings.TrimSpace(run(t, dst, offline, "go", "list", "-m")); got != newPath {
		t.Errorf("copy's module is %q, want %q", got, newPath)
	}
	run(t, dst, offline, "go", "build", "./...")
	run(t, dst, offline, "go", "vet", "./...")
	run(t, dst, offline, "go", "vet", "-tags", "systemd", "./...")
	err = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			t.Errorf("%s is a symlink: module zips drop them", p)
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(oldPath)) {
			t.Errorf("%s still names %s: gonew rewrites only Go imports and go.mod", strings.TrimPrefix(p, dst+"/"), oldPath)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
