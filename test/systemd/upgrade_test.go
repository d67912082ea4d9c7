//go:build systemd

package systemd_test

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The package's life as dpkg runs it (packaging/): what it installed, an
// upgrade under load, removal, purge, and a fresh install on a running
// system. These scenarios come last (their file's name sorts last), since
// removing the package stops everything; each ends with the package
// installed again and the sockets listening, as booted.

// TestPackageInstalledItsFiles: the files, the conffile, the dependency, the
// drop-ins linked where this systemd is new enough for them, and the
// sockets enabled, as Dockerfile.test's dpkg -i left them.
func TestPackageInstalledItsFiles(t *testing.T) {
	out := command(t, "dpkg-query", "--show", "--showformat=${db:Status-Status}\n${Version}\n${Depends}\n${Conffiles}\n", name)
	lines := strings.SplitN(out, "\n", 4)
	if len(lines) < 4 {
		t.Fatalf("dpkg-query: %q", out)
	}
	t.Logf("package %s %s", name, lines[1])
	if lines[0] != "installed" {
		t.Errorf("dpkg says %s is %q, want installed", name, lines[0])
	}
	if !strings.Contains(lines[2], "procps") {
		t.Errorf("Depends: %q, want procps (for /bin/kill)", lines[2])
	}
	if !strings.Contains(lines[3], configPath+" ") {
		t.Errorf("Conffiles: %q, want %s", lines[3], configPath)
	}
	files := strings.Split(command(t, "dpkg-query", "--listfiles", name), "\n")
	units := "/usr/lib/systemd/system/"
	doc := "/usr/share/doc/" + name + "/"
	for _, want := range []string{"/usr/bin/" + name, units + unit, units + standaloneUnit, units + sockets[0], units + sockets[1], configPath,
		// What Debian asks of every package (packaging/lintian.sh checks them).
		doc + "copyright", doc + "changelog.gz", "/usr/share/man/man8/" + name + ".8.gz", "/usr/share/lintian/overrides/" + name} {
		if !contains(files, want) {
			t.Errorf("the package does not install %s", want)
		}
	}
	if fi, err := os.Stat("/usr/bin/" + name); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("/usr/bin/%s: %v, %v", name, fi, err)
	}

	// The drop-ins: shipped under /usr/share, linked by postinst into the
	// units' .d directories where `systemctl --version` is new enough, and
	// then in effect (DropInPaths).
	v := systemdVersion(t)
	shipped := shippedDropIns(t)
	if len(shipped) == 0 {
		t.Fatalf("no drop-ins under /usr/share/%s/systemd", name)
	}
	for _, d := range shipped {
		target, err := os.Readlink(d.link)
		inEffect := strings.Contains(prop(t, d.unit, "DropInPaths"), d.link)
		t.Logf("systemd %d: %s needs %d: linked %v, in effect %v", v, d.link, d.need, err == nil, inEffect)
		if v >= d.need {
			if err != nil || target != d.shipped || !inEffect {
				t.Errorf("%s: %q, %v, in effect %v; want a link to %s, in effect", d.link, target, err, inEffect, d.shipped)
			}
		} else if _, err := os.Lstat(d.link); err == nil || inEffect {
			t.Errorf("%s is installed on systemd %d, which is too old for it", d.link, v)
		}
	}

	// Enabled as deb-systemd-helper does it, and recorded by it, so that a
	// purge removes the links.
	for _, s := range sockets {
		if st := strings.TrimSpace(command(t, "systemctl", "is-enabled", s)); st != "enabled" {
			t.Errorf("%s is %s, want enabled", s, st)
		}
	}
	if st, _ := tryCommand("systemctl", "is-enabled", standaloneUnit); strings.TrimSpace(st) != "disabled" {
		t.Errorf("%s is %q, want disabled: it conflicts with the sockets", standaloneUnit, strings.TrimSpace(st))
	}
	if _, err := os.Stat("/var/lib/systemd/deb-systemd-helper-enabled/" + sockets[0] + ".dsh-also"); err != nil {
		t.Errorf("deb-systemd-helper has no record of enabling %s: %v", sockets[0], err)
	}
}

// TestInstalledUnitsPassVerify: systemd-analyze verify of the units as
// installed, drop-ins included, by the systemd that runs them. The host's
// check-units.sh can only check what its own systemd accepts; this is where
// the drop-ins for newer versions get checked. Any output fails, as there.
func TestInstalledUnitsPassVerify(t *testing.T) {
	for _, u := range append([]string{unit, standaloneUnit}, sockets...) {
		out, err := exec.Command("systemd-analyze", "verify", "--man=no", u).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, out)
		}
	}
}

// TestPackageUpgradeUnderLoadKeepsServing: installing the package over
// itself runs the upgrade path (the old prerm "upgrade", the new postinst
// "configure <old version>"), which restarts whichever daemon runs, so that
// the new binary serves, and keeps its port open meanwhile: the sockets are
// not restarted, and the standalone unit's restart keeps its stored socket.
// Clients under load see no refused connection.
func TestPackageUpgradeUnderLoadKeepsServing(t *testing.T) {
	if packagePath == "" {
		t.Fatal("PACKAGE is not set: run.sh passes the package it installed")
	}
	cases := []struct {
		what  string
		unit  string
		start func(t *testing.T) int
	}{
		{"socket-activated", unit, func(t *testing.T) int { return freshStart(t, baseConfig) }},
		{"standalone", standaloneUnit, func(t *testing.T) int {
			// As deployed: the sockets disabled, so that the upgrade's
			// postinst does not start them (deb-systemd-invoke starts
			// only enabled units).
			systemctl(t, "disable", sockets[0])
			t.Cleanup(func() { systemctl(t, "enable", sockets[0]) })
			return startStandalone(t, baseConfig, true)
		}},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			pid := c.start(t)
			port := portOf(listenAddr(t, sockets[0]))
			inode := listeningInode(t, port)
			socketSince := prop(t, sockets[0], "ActiveEnterTimestampMonotonic")
			const workers = 4
			l := startLoad(t, baseURL(t), workers)
			l.served(t, 50, "the start")
			systemctl(t, "reset-failed", c.unit)
			token := apiToken(t)
			start := time.Now()
			out, err := tryCommand("dpkg", "--install", packagePath)
			if err != nil {
				t.Fatalf("dpkg --install: %v\n%s", err, out)
			}
			t.Logf("dpkg --install took %s", time.Since(start).Round(time.Millisecond))
			if apiToken(t) != token {
				t.Errorf("the upgrade replaced the API token in %s", tokenPath)
			}
			newPID := propInt(t, c.unit, "MainPID")
			if newPID == pid || newPID == 0 {
				t.Errorf("%s MainPID %d after the upgrade (was %d): not restarted", c.unit, newPID, pid)
			}
			if got := listeningInode(t, port); got != inode {
				t.Errorf("port %s listens on socket %d after the upgrade, was %d: the port was closed", port, got, inode)
			}
			if c.unit == unit && prop(t, sockets[0], "ActiveEnterTimestampMonotonic") != socketSince {
				t.Errorf("%s was restarted by the upgrade", sockets[0])
			}
			if c.unit == standaloneUnit {
				for _, s := range sockets {
					if st := prop(t, s, "ActiveState"); st != "inactive" {
						t.Errorf("the upgrade started the disabled %s (%s), stopping %s", s, st, standaloneUnit)
					}
				}
			}
			l.served(t, 20, "the upgrade")
			l.halt()
			t.Logf("%d requests served, %d connections refused, %d other failures", l.ok.Load(), l.refused.Load(), l.failed.Load())
			if n := l.refused.Load(); n > 0 {
				t.Errorf("%d connections refused during the upgrade", n)
			}
			// See TestFDStoreKeepsThePortThroughSystemctlRestart.
			if n := l.failed.Load(); n > workers {
				t.Errorf("%d requests failed, more than the %d a graceful restart can drop:\n%s", n, workers, l.errorList())
			}
		})
	}
}

// TestPackageRemoveReleasesTheStandalonePort: removing the package while the
// standalone unit is enabled and running frees its port, even where
// fdstore-preserve.conf would keep it after a stop (prerm empties the
// store), and reinstalling leaves the administrator's choice of unit alone.
func TestPackageRemoveReleasesTheStandalonePort(t *testing.T) {
	systemctl(t, "disable", sockets[0])
	startStandalone(t, baseConfig, true)
	t.Cleanup(func() {
		installPackage(t) // if the test stopped half-way
		systemctl(t, "enable", sockets[0])
	})
	port := portOf(listenAddr(t, sockets[0]))

	if out, err := tryCommand("dpkg", "--remove", name); err != nil {
		t.Fatalf("dpkg --remove: %v\n%s", err, out)
	}
	eventually(t, 5*time.Second, "port closed after the removal", func() (bool, string) {
		ino := listeningInode(t, port)
		return ino == 0, fmt.Sprintf("socket %d listens on port %s (held by systemd: %v)", ino, port, holdsSocket(1, ino))
	})
	if pids := processesNamed(name); len(pids) > 0 {
		t.Errorf("processes named %s still run after the removal: %v", name, pids)
	}

	installPackage(t)
	if st, _ := tryCommand("systemctl", "is-enabled", sockets[0]); strings.TrimSpace(st) != "disabled" {
		t.Errorf("after reinstalling, %s is %q: the administrator had disabled it", sockets[0], strings.TrimSpace(st))
	}
	if st, _ := tryCommand("systemctl", "is-enabled", standaloneUnit); strings.TrimSpace(st) != "enabled" {
		t.Errorf("after reinstalling, %s is %q: the administrator had enabled it", standaloneUnit, strings.TrimSpace(st))
	}
}

// TestPackageRemoveAndPurge: dpkg --remove stops the units, closes the ports
// and takes away the files and the drop-in links, keeping the configuration
// and the state; dpkg --purge takes those and the enablement links too.
// Then a fresh install, on a running system, starts the sockets at once,
// and the daemon the first connection starts runs on the packaged config.
func TestPackageRemoveAndPurge(t *testing.T) {
	freshStart(t, baseConfig)
	t.Cleanup(func() { installPackage(t) }) // if the test stopped half-way
	ports := []string{portOf(listenAddr(t, sockets[0])), portOf(listenAddr(t, sockets[1]))}
	stateDir := filepath.Join("/var/lib/private", prop(t, unit, "StateDirectory"))
	if _, err := os.Stat(stateDir); err != nil {
		t.Fatalf("state directory before removal: %v", err)
	}
	shipped := shippedDropIns(t)

	// Remove.
	if out, err := tryCommand("dpkg", "--remove", name); err != nil {
		t.Fatalf("dpkg --remove: %v\n%s", err, out)
	}
	if st := packageStatus(t); st != "config-files" {
		t.Errorf("after dpkg --remove the package is %q, want config-files", st)
	}
	for _, p := range ports {
		if ino := listeningInode(t, p); ino != 0 {
			t.Errorf("port %s still listens after the removal (socket %d)", p, ino)
		}
	}
	if pids := processesNamed(name); len(pids) > 0 {
		t.Errorf("processes named %s still run after the removal: %v", name, pids)
	}
	for _, u := range append([]string{unit, standaloneUnit}, sockets...) {
		if ls := prop(t, u, "LoadState"); ls != "not-found" {
			t.Errorf("%s is %s after the removal, want not-found", u, ls)
		}
	}
	for _, d := range shipped {
		if _, err := os.Lstat(d.link); err == nil {
			t.Errorf("%s is left after the removal", d.link)
		}
		if _, err := os.Stat(filepath.Dir(d.link)); err == nil {
			t.Errorf("%s is left after the removal", filepath.Dir(d.link))
		}
	}
	for _, kept := range []string{configPath, stateDir} {
		if _, err := os.Stat(kept); err != nil {
			t.Errorf("dpkg --remove took %s, which only a purge may: %v", kept, err)
		}
	}

	// Purge.
	if out, err := tryCommand("dpkg", "--purge", name); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}
	if st := packageStatus(t); st != "not-installed" {
		t.Errorf("after dpkg --purge the package is %q, want not-installed", st)
	}
	for _, gone := range []string{
		filepath.Dir(configPath), stateDir, "/var/lib/" + name,
		"/etc/systemd/system/sockets.target.wants/" + sockets[0],
		"/etc/systemd/system/sockets.target.wants/" + sockets[1],
		"/var/lib/systemd/deb-systemd-helper-enabled/" + sockets[0] + ".dsh-also",
	} {
		if _, err := os.Lstat(gone); err == nil {
			t.Errorf("%s is left after the purge", gone)
		}
	}

	// Install afresh, with systemd running: the sockets listen at once,
	// the service waits for its first connection.
	installPackage(t)
	for _, s := range sockets {
		if st := prop(t, s, "ActiveState") + "/" + prop(t, s, "SubState"); st != "active/listening" {
			t.Errorf("%s is %s after a fresh install, want active/listening", s, st)
		}
	}
	if st := prop(t, unit, "ActiveState"); st != "inactive" {
		t.Errorf("%s is %s after a fresh install, want inactive until the first connection", unit, st)
	}
	// The packaged config passes the daemon's own check.
	if out, err := tryCommand("/usr/bin/"+name, "-config", configPath, "-check-config"); err != nil {
		t.Errorf("%s -check-config of the packaged %s: %v\n%s", name, configPath, err, out)
	}
	packaged, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	// The first connection starts the daemon and is answered.
	cursor := journalCursor(t)
	if code, body := get(t, baseURL(t)+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz after a fresh install = %d %q, want 200 \"ok\"", code, body)
	}
	pid := activeMainPID(t, unit, "start (by the first connection)")
	if st := prop(t, unit, "StatusText"); !strings.HasPrefix(st, "Serving on ") {
		t.Errorf("StatusText=%q after a fresh install, want \"Serving on ...\"", st)
	}
	// The daemon runs on the packaged config, which the purge left the only
	// one: the test instruments are off in it, as in production (they answer
	// 404, even with the token), and the daemon logs at its log_level, so at
	// debug (the sd_notify lines) only if that says debug.
	if regexp.MustCompile(`(?m)^\s*(instruments\.)?enabled\s*=\s*true`).Match(packaged) {
		t.Errorf("the packaged %s turns the test instruments on", configPath)
	}
	if code := instrumentsAnswer(t); code != http.StatusNotFound {
		t.Errorf("GET /debug/sleep?d=0s with the token after a fresh install = %d, want 404: the instruments are on", code)
	}
	level := "info" // the kit's default
	if m := regexp.MustCompile(`(?m)^log_level = "(.*)"$`).FindSubmatch(packaged); m != nil {
		level = string(m[1])
	}
	systemctl(t, "stop", unit) // the stop's STOPPING=1 is logged at debug too
	command(t, "journalctl", "--sync")
	started := journal(t, cursor, "_PID="+strconv.Itoa(pid), "MESSAGE=runtime limits")
	// The daemon's own entries: systemd's, from the same PID before the
	// exec, can be at debug too (see TestTheRunAfterAFailureLogsAtDebug).
	debug := journal(t, cursor, "_PID="+strconv.Itoa(pid), "SYSLOG_IDENTIFIER="+name, "PRIORITY=7")
	t.Logf("fresh install: log_level %q in the packaged config; the daemon logged %d entries at debug", level, len(debug))
	if len(started) == 0 {
		t.Errorf("no \"runtime limits\" entry from the daemon (PID %d) started after the fresh install", pid)
	}
	if (len(debug) > 0) != (level == "debug") {
		t.Errorf("log_level %q in the packaged config, yet the daemon logged %d entries at debug:\n%s", level, len(debug), strings.Join(messages(debug), "\n"))
	}
}

// installPackage installs the package if it is not, and checks that the
// sockets listen.
func installPackage(t *testing.T) {
	t.Helper()
	if packageStatus(t) != "installed" {
		if out, err := tryCommand("dpkg", "--install", packagePath); err != nil {
			t.Fatalf("dpkg --install: %v\n%s", err, out)
		}
	}
}

// packageStatus is dpkg's word for the package's state: installed,
// config-files, not-installed...
func packageStatus(t *testing.T) string {
	t.Helper()
	out, err := tryCommand("dpkg-query", "--show", "--showformat=${db:Status-Status}", name)
	if err != nil {
		return "not-installed" // dpkg-query knows nothing of it
	}
	return strings.TrimSpace(out)
}

// dropIn is one drop-in the package ships, and where postinst links it.
type dropIn struct {
	shipped string // /usr/share/NAME/systemd/UNIT.d/FILE
	link    string // /usr/lib/systemd/system/UNIT.d/FILE
	unit    string
	need    int // the systemd version its first line asks for
}

func shippedDropIns(t *testing.T) []dropIn {
	t.Helper()
	base := filepath.Join("/usr/share", name, "systemd")
	paths, err := filepath.Glob(filepath.Join(base, "*.d", "*.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var ds []dropIn
	for _, p := range paths {
		rel, _ := filepath.Rel(base, p)
		d := dropIn{shipped: p, link: filepath.Join("/usr/lib/systemd/system", rel), unit: strings.TrimSuffix(filepath.Dir(rel), ".d")}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		if sc.Scan() {
			fmt.Sscanf(sc.Text(), "# Needs systemd %d or later.", &d.need)
		}
		f.Close()
		ds = append(ds, d)
	}
	return ds
}

// processesNamed returns the PIDs whose command name is comm.
func processesNamed(comm string) []string {
	var pids []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, d := range dirs {
		if b, err := os.ReadFile(d); err == nil && strings.TrimSpace(string(b)) == comm {
			pids = append(pids, filepath.Base(filepath.Dir(d)))
		}
	}
	return pids
}
