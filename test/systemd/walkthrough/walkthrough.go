// Package walkthrough keeps docs/walkthrough.md true to what the daemon
// prints. The doc's generated blocks are its script: TestWalkthrough (in
// test/systemd, under real systemd) runs each block's commands in order,
// then either writes their outputs back into the doc (`make walkthrough`)
// or compares them with the doc's (every other run of the harness), after
// Normalise has taken out what differs from run to run.
//
// A generated block is a console block right after a marker line:
//
//	<!-- walkthrough: status -->
//	```console
//	# systemctl status daemon.service
//	● daemon.service - …
//	```
//
// Lines starting with "# " are commands, run as root by one bash, so that a
// variable one sets is there for the next; the lines after a command, up
// to the next, are its output (standard output and error). Commands
// that wait for something the next one shows are commands too, shown as an
// operator would type them. The doc also says on which systemd it was made:
//
//	<!-- walkthrough made by `make walkthrough` on systemd 252 -->
//
// Another systemd prints other lines of its own (docs/systemd-versions.md),
// so the outputs are compared only on the version the doc was made on.
package walkthrough

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Target is the make target that regenerates the doc, named in every
// failure.
const Target = "make walkthrough"

// Step is one command of a block and what it printed.
type Step struct {
	Command string
	Output  string
}

// Block is one generated console block.
type Block struct {
	Name  string
	Steps []Step
	// first and end are the indexes in Doc.lines of the block's first
	// line inside the fence and of the closing fence.
	first, end int
}

// Doc is the walkthrough, split into lines, with its generated blocks.
type Doc struct {
	lines   []string
	Blocks  []Block
	Version int // the systemd version the outputs are from
	version int // the index of the version marker's line
}

// versionLine is the version marker, with the version for %d.
const versionLine = "<!-- walkthrough made by `" + Target + "` on systemd %d -->"

var (
	blockMarker   = regexp.MustCompile(`^<!-- walkthrough: ([a-z0-9-]+) -->$`)
	versionMarker = regexp.MustCompile("^" + strings.Replace(regexp.QuoteMeta(versionLine), "%d", "([0-9]+)", 1) + "$")
)

// Parse reads the doc's version marker and generated blocks.
func Parse(text string) (*Doc, error) {
	d := &Doc{lines: strings.Split(text, "\n"), version: -1}
	seen := map[string]bool{}
	for i := 0; i < len(d.lines); i++ {
		line := d.lines[i]
		if m := versionMarker.FindStringSubmatch(line); m != nil {
			if d.version >= 0 {
				return nil, fmt.Errorf("line %d: a second version marker", i+1)
			}
			d.Version, _ = strconv.Atoi(m[1])
			d.version = i
			continue
		}
		m := blockMarker.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		b := Block{Name: m[1], first: i + 2}
		if seen[b.Name] {
			return nil, fmt.Errorf("line %d: a second block named %q", i+1, b.Name)
		}
		seen[b.Name] = true
		if i+1 >= len(d.lines) || d.lines[i+1] != "```console" {
			return nil, fmt.Errorf("line %d: block %q: the marker is not followed by ```console", i+1, b.Name)
		}
		for j := b.first; ; j++ {
			if j >= len(d.lines) {
				return nil, fmt.Errorf("line %d: block %q has no closing ```", i+1, b.Name)
			}
			if d.lines[j] == "```" {
				b.end = j
				break
			}
		}
		steps, err := splitSteps(d.lines[b.first:b.end])
		if err != nil {
			return nil, fmt.Errorf("line %d: block %q: %w", i+1, b.Name, err)
		}
		b.Steps = steps
		d.Blocks = append(d.Blocks, b)
		i = b.end
	}
	if d.version < 0 {
		return nil, fmt.Errorf("no version marker, a line %q", fmt.Sprintf(versionLine, 252))
	}
	if len(d.Blocks) == 0 {
		return nil, errors.New("no generated blocks")
	}
	return d, nil
}

func splitSteps(lines []string) ([]Step, error) {
	var steps []Step
	var out []string
	flush := func() {
		if len(steps) > 0 {
			steps[len(steps)-1].Output = strings.Join(out, "\n")
		}
		out = nil
	}
	for _, l := range lines {
		if cmd, ok := strings.CutPrefix(l, "# "); ok {
			flush()
			steps = append(steps, Step{Command: cmd})
			continue
		}
		if len(steps) == 0 {
			return nil, fmt.Errorf("output before the first command: %q", l)
		}
		out = append(out, l)
	}
	flush()
	if len(steps) == 0 {
		return nil, errors.New("no command")
	}
	return steps, nil
}

// Render returns the doc with each block's outputs replaced by fresh's (the
// same blocks, in the same order, as run) and the version marker set to
// version. The prose is left as it is.
func (d *Doc) Render(fresh []Block, version int) (string, error) {
	if err := sameCommands(d.Blocks, fresh); err != nil {
		return "", err
	}
	var out []string
	at := 0
	for i, b := range d.Blocks {
		out = append(out, d.lines[at:b.first]...)
		out = append(out, blockLines(fresh[i])...)
		at = b.end
	}
	out = append(out, d.lines[at:]...)
	out[d.version] = fmt.Sprintf(versionLine, version)
	return strings.Join(out, "\n"), nil
}

func blockLines(b Block) []string {
	var lines []string
	for _, s := range b.Steps {
		lines = append(lines, "# "+s.Command)
		if s.Output != "" {
			lines = append(lines, strings.Split(s.Output, "\n")...)
		}
	}
	return lines
}

func sameCommands(doc, fresh []Block) error {
	if len(doc) != len(fresh) {
		return fmt.Errorf("%d blocks run, the doc has %d", len(fresh), len(doc))
	}
	for i := range doc {
		if len(doc[i].Steps) != len(fresh[i].Steps) {
			return fmt.Errorf("block %q: %d commands run, the doc has %d", doc[i].Name, len(fresh[i].Steps), len(doc[i].Steps))
		}
		for j := range doc[i].Steps {
			if doc[i].Steps[j].Command != fresh[i].Steps[j].Command {
				return fmt.Errorf("block %q: command %q run, the doc has %q", doc[i].Name, fresh[i].Steps[j].Command, doc[i].Steps[j].Command)
			}
		}
	}
	return nil
}

// Compare checks that fresh, the outputs of a run of d's commands, are d's
// outputs, once both are normalised. The error names each block that
// drifted, its first differing line, and the target that rewrites the doc.
func (d *Doc) Compare(fresh []Block) error {
	if err := sameCommands(d.Blocks, fresh); err != nil {
		return err
	}
	var errs []error
	for i, b := range d.Blocks {
		want := strings.Split(Normalise(strings.Join(blockLines(b), "\n")), "\n")
		got := strings.Split(Normalise(strings.Join(blockLines(fresh[i]), "\n")), "\n")
		if n, ok := firstDifference(want, got); !ok {
			errs = append(errs, fmt.Errorf("docs/walkthrough.md, block %q: the daemon and systemd print otherwise now (normalised, line %d):\n  the doc: %s\n  now:     %s\nthe whole block now:\n%s",
				b.Name, n+1, lineAt(want, n), lineAt(got, n), strings.Join(blockLines(fresh[i]), "\n")))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w\n`%s` regenerates docs/walkthrough.md from a run on systemd %d (then read the prose around the blocks that changed)", errors.Join(errs...), Target, d.Version)
	}
	return nil
}

func firstDifference(a, b []string) (int, bool) {
	for i := range max(len(a), len(b)) {
		if i >= len(a) || i >= len(b) || a[i] != b[i] {
			return i, false
		}
	}
	return 0, true
}

func lineAt(lines []string, i int) string {
	if i >= len(lines) {
		return "(no more lines)"
	}
	return strconv.Quote(lines[i])
}
