package service

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"example.com/daemon/internal/config"
	"example.com/daemon/internal/lifecycle"
)

// greeting is greeter's part of the configuration file.
type greeting struct {
	Greeting string `toml:"greeting"`
}

// greeter is an app that keeps what Apply gave it.
type greeter struct{ applied []string }

func (*greeter) Start(context.Context, lifecycle.Progress) error { return nil }
func (*greeter) Routes(func(string, http.Handler))               {}
func (*greeter) Check(context.Context) error                     { return nil }
func (*greeter) Close() error                                    { return nil }
func (g *greeter) Apply(c greeting)                              { g.applied = append(g.applied, c.Greeting) }

// TestAReloadHandsTheAppItsSettingsOnlyWhenTheLifecycleSaysSo: reading the
// file again changes nothing in the app; applyApp, which the lifecycle
// calls once the whole reload is valid, does. Applied any sooner, a reload
// that then fails (a broken certificate) would leave the app's part
// changed and the daemon's not.
func TestAReloadHandsTheAppItsSettingsOnlyWhenTheLifecycleSaysSo(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte("greeting = \"new\"\ndrain_timeout = \"3s\""), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &greeter{}
	next, applyApp, err := loadConfig(config.File[greeting]{Path: path}, g)()
	if err != nil {
		t.Fatal(err)
	}
	if next.DrainTimeout.String() != "3s" {
		t.Errorf("the daemon's settings read: drain_timeout %s, want 3s", next.DrainTimeout)
	}
	if len(g.applied) > 0 {
		t.Fatalf("the app was given %q before applyApp was called", g.applied)
	}
	applyApp()
	if len(g.applied) != 1 || g.applied[0] != "new" {
		t.Errorf("after applyApp the app was given %q, want [new]", g.applied)
	}
}
