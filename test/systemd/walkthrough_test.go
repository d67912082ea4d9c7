//go:build systemd

package systemd_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.com/daemon/test/systemd/walkthrough"
)

// TestWalkthrough runs the commands of docs/walkthrough.md's generated
// blocks, in order, from a first install of the package on, and checks that
// they print what the doc shows, times, PIDs and IDs aside (the walkthrough
// package says what is normalised, and why the check is made only on the
// systemd the doc was made on). With WALKTHROUGH_OUT set (`make
// walkthrough`), it writes the doc with the fresh outputs there instead.
//
// It removes the package and empties the journal first, so that the
// outputs are those of a machine that has just installed the package,
// whatever scenarios ran before: its file sorts after upgrade_test.go, so
// it comes last.
func TestWalkthrough(t *testing.T) {
	docPath := envOr("WALKTHROUGH", "/var/cache/"+name+"-walkthrough.md")
	text, err := os.ReadFile(docPath)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("no %s: run.sh copies docs/walkthrough.md there", docPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	doc, err := walkthrough.Parse(string(text))
	if err != nil {
		t.Fatalf("docs/walkthrough.md: %v", err)
	}
	if packagePath == "" {
		t.Skip("no PACKAGE: the walkthrough starts with installing it")
	}
	version := systemdVersion(t)
	out := os.Getenv("WALKTHROUGH_OUT")
	if out == "" && version != doc.Version {
		// Run all the same: the commands must still work here.
		t.Logf("docs/walkthrough.md was made on systemd %d, this is %d: its outputs are not compared", doc.Version, version)
	}

	// As on a machine that never had the package: no package, no
	// configuration, no token, no journal of earlier runs (systemctl status
	// and journalctl -F show it all).
	command(t, "dpkg", "--purge", name)
	command(t, "journalctl", "--rotate")
	command(t, "journalctl", "--vacuum-size=1")
	// The package as `make deb` names it, alone in the working directory.
	dir := t.TempDir()
	deb := fmt.Sprintf("%s_%s_%s.deb", name,
		strings.TrimSpace(command(t, "dpkg-deb", "--field", packagePath, "Version")),
		strings.TrimSpace(command(t, "dpkg-deb", "--field", packagePath, "Architecture")))
	command(t, "cp", packagePath, filepath.Join(dir, deb))

	sh := startShell(t, dir)
	fresh := make([]walkthrough.Block, len(doc.Blocks))
	for i, b := range doc.Blocks {
		fresh[i] = walkthrough.Block{Name: b.Name}
		for _, s := range b.Steps {
			output := walkthrough.Present(sh.run(t, b.Name, s.Command))
			fresh[i].Steps = append(fresh[i].Steps, walkthrough.Step{Command: s.Command, Output: output})
		}
	}

	if out != "" {
		rendered, err := doc.Render(fresh, version)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, []byte(rendered), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("docs/walkthrough.md made again on systemd %d: %s", version, out)
		return
	}
	if version != doc.Version {
		t.Skipf("docs/walkthrough.md was made on systemd %d, this is %d: the commands ran, the outputs are compared on %d only", doc.Version, version, doc.Version)
	}
	if err := doc.Compare(fresh); err != nil {
		t.Fatal(err)
	}
}

// shell is one bash that runs the walkthrough's commands one after
// another, as an operator's shell would: a variable set by one command is
// there for the next.
type shell struct {
	stdin io.Writer
	lines chan string
	cmd   *exec.Cmd
}

// shellDone ends each command's output, with the command's exit status.
const shellDone = "::walkthrough-done::"

// shellLimit bounds each command; the longest waits for a watchdog restart.
const shellLimit = time.Minute

func startShell(t *testing.T, dir string) *shell {
	t.Helper()
	cmd := exec.Command("bash", "--norc", "--noprofile")
	cmd.Dir = dir
	// No terminal, so no pager and no colours, and wide enough lines.
	cmd.Env = append(os.Environ(), "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "HOME=/root", "LC_ALL=C.UTF-8")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sh := &shell{stdin: stdin, lines: make(chan string), cmd: cmd}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			sh.lines <- sc.Text()
		}
		close(sh.lines)
	}()
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
		w.Close()
	})
	return sh
}

// run runs one command and returns what it printed.
func (sh *shell) run(t *testing.T, block, command string) string {
	t.Helper()
	if _, err := fmt.Fprintf(sh.stdin, "%s\nprintf '\\n%s %%d\\n' $?\n", command, shellDone); err != nil {
		t.Fatalf("block %q: %s: %v", block, command, err)
	}
	var out []string
	deadline := time.After(shellLimit)
	for {
		select {
		case l, ok := <-sh.lines:
			if !ok {
				t.Fatalf("block %q: %s: the shell ended:\n%s", block, command, strings.Join(out, "\n"))
			}
			if rc, done := strings.CutPrefix(l, shellDone+" "); done {
				// The printf's own newline ends the output's last line,
				// or makes an empty one if it had ended already.
				if n := len(out); n > 0 && out[n-1] == "" {
					out = out[:n-1]
				}
				t.Logf("# %s  (exit status %s)", command, rc)
				return strings.Join(out, "\n")
			}
			out = append(out, l)
		case <-deadline:
			t.Fatalf("block %q: %s: still running after %s:\n%s", block, command, shellLimit, strings.Join(out, "\n"))
		}
	}
}
