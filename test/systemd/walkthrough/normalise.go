package walkthrough

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
)

// A rule rewrites every match of re into with (regexp.ReplaceAllString's
// template).
type rule struct {
	re   *regexp.Regexp
	with string
}

func rules(pairs ...string) []rule {
	rs := make([]rule, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		rs = append(rs, rule{regexp.MustCompile(pairs[i]), pairs[i+1]})
	}
	return rs
}

func apply(rs []rule, text string) string {
	for _, r := range rs {
		text = r.re.ReplaceAllString(text, r.with)
	}
	return text
}

// presentation is what the doc shortens in every output, when it is made
// as when it is compared: what depends on where the harness runs, not on
// the daemon.
var presentation = rules(
	// The container's cgroup, above its system.slice.
	`(CGroup: )\S*/system\.slice/`, `$1…/system.slice/`,
	// The module path in the journal's CODE_* fields: a make rename changes it.
	`[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(/[A-Za-z0-9._~-]+)*/(internal|cmd)/`, `…/$3/`,
)

// Present shortens an output as the doc shows it: trailing spaces off, the
// container's cgroup prefix and the module path replaced by "…".
func Present(output string) string {
	lines := strings.Split(output, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	return apply(presentation, strings.Join(lines, "\n"))
}

// variable is what changes from run to run of the same build on the same
// systemd, and from build to build without a change to what the daemon
// says. In order: the first rules make room for the later ones (dates go
// before PIDs, so that a date's digits are never a PID).
var variable = rules(
	// Times and dates: systemctl's "Sun 2026-12-06 02:51:25 UTC", the
	// journal's "Dec 06 02:51:25" and its verbose "…:25.390163".
	`(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?( [A-Z]{2,5})?`, `<date>`,
	`(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d\d \d\d:\d\d:\d\d(\.\d+)?`, `<date>`,
	// "; 1s ago", "; 1min 3s ago", "5ms ago".
	`(\d+(\.\d+)?(us|ms|s|min|h) )+ago`, `<ago>`,
	// The short journal's hostname (the container's ID).
	`<date> [^\s\[\]]+ ([^\s\[\]]+\[\d+\]:)`, `<date> <host> $1`,
	// PIDs: daemon[249], Main PID: 249, └─249, MainPID=249, _PID=249,
	// "process 249", and the UID of DynamicUser=, picked from a hash.
	`([A-Za-z0-9_.-]+)\[\d+\]`, `$1[<pid>]`,
	`(Main PID: |MainPID=|_PID=|process |─|_UID=|_GID=)\d+`, `$1<n>`,
	// Boot, invocation and machine IDs, journal cursors and sequence numbers.
	`[0-9a-f]{32}`, `<id>`,
	`\[s=[^\]]*\]`, `[<cursor>]`,
	`"(__CURSOR|__REALTIME_TIMESTAMP|__MONOTONIC_TIMESTAMP|__SEQNUM|__SEQNUM_ID|_SOURCE_REALTIME_TIMESTAMP)":"[^"]*"`, `"$1":"<n>"`,
	// Durations and figures: time's "0m4.516s", CPU, memory, tasks.
	`\b\d+m\d+\.\d+s\b`, `<duration>`,
	`(CPU|Memory|Tasks|IO|Consumed): .*`, `$1: <figure>`,
	`Consumed .* CPU time`, `Consumed <figure> CPU time`,
	// The source line of a log call moves with every edit above it.
	`(CODE_LINE=|"CODE_LINE":")\d+`, `$1<n>`,
	// The package's version and architecture, and dpkg's file count.
	`_[0-9][^_\s]*_[a-z0-9]+\.deb\b`, `_<version>_<arch>.deb`,
	`\(\d[^)\s]*\)`, `(<version>)`,
	`\d+ files and directories`, `<n> files and directories`,
	// Go's stack dump: addresses and thread numbers.
	`0x[0-9a-f]+`, `0x<hex>`,
	`\b(m|sigcode|mp|gp)=\d+`, `$1=<n>`,
)

// Normalise takes out of a presented output what legitimately changes from
// run to run: times, dates and durations, PIDs and UIDs, hostnames, IDs and
// cursors, CPU and memory figures, source line numbers, the package
// version. What is left is the words of the daemon and of systemd, which
// must match the doc's. Two things are put in an order of their own,
// because they come in an order that changes from run to run: a JSON
// entry's fields (journalctl prints them in the order of a hash table),
// and the journal lines of different processes written at the same moment
// (the daemon's "ready" and systemd's "Started", which systemd logs once
// it has the READY=1 sent just before): each process's own lines keep
// their order.
func Normalise(output string) string {
	lines := strings.Split(apply(variable, Present(output)), "\n")
	for i, l := range lines {
		lines[i] = sortedJSON(l)
	}
	byProcess(lines)
	unitLists(lines)
	return strings.Join(lines, "\n")
}

// unitLists sorts the lists of units that systemctl prints in the order of
// a hash table: status's TriggeredBy:, and the units that stop's warning
// says can still start the unit. Each list is a head line and the lines
// after it with the head's indent.
func unitLists(lines []string) {
	for i := 0; i < len(lines); i++ {
		head, first := "", i+1
		switch {
		case strings.HasPrefix(lines[i], "TriggeredBy: "):
			// The head line holds the first unit.
			head, first = "TriggeredBy: ", i
		case strings.HasSuffix(lines[i], "but it can still be activated by:"):
		default:
			continue
		}
		if first >= len(lines) {
			continue
		}
		indent := strings.Repeat(" ", len(head))
		if head == "" {
			// The units are on the lines after the warning.
			head, indent = "  ", "  "
		}
		items := []string{strings.TrimPrefix(lines[first], head)}
		end := first + 1
		for end < len(lines) && strings.HasPrefix(lines[end], indent) && !strings.HasPrefix(lines[end], indent+" ") {
			items = append(items, strings.TrimPrefix(lines[end], indent))
			end++
		}
		slices.Sort(items)
		for k, item := range items {
			if k == 0 {
				lines[first] = head + item
			} else {
				lines[first+k] = indent + item
			}
		}
		i = end - 1
	}
}

// sortedJSON returns a line that is a JSON object with its keys sorted, and
// any other line as it is.
func sortedJSON(line string) string {
	if !strings.HasPrefix(line, "{") {
		return line
	}
	var v map[string]any
	if json.Unmarshal([]byte(line), &v) != nil {
		return line
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) != nil { // encoding/json sorts a map's keys
		return line
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// journalLine matches a normalised line of journalctl's short output and
// captures the process's name.
var journalLine = regexp.MustCompile(`^<date> (?:<host> )?([^\s\[\]]+)\[<pid>\]: `)

// byProcess sorts each run of journal lines by process name, keeping the
// order of each process's lines.
func byProcess(lines []string) {
	for i := 0; i < len(lines); {
		j := i
		for j < len(lines) && journalLine.MatchString(lines[j]) {
			j++
		}
		if j == i {
			i++
			continue
		}
		slices.SortStableFunc(lines[i:j], func(a, b string) int {
			return strings.Compare(journalLine.FindStringSubmatch(a)[1], journalLine.FindStringSubmatch(b)[1])
		})
		i = j
	}
}
