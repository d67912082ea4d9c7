package main

import (
	"bytes"
	"path/filepath"
	"testing"
)

// TestTheDocsAreMadeFromTheSettings: the README's tables, the manual
// page's list and deploy/config.toml are what the settings' descriptions
// make; a file edited by hand, or a setting added without `make docs`,
// fails here.
func TestTheDocsAreMadeFromTheSettings(t *testing.T) {
	files, err := made(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !bytes.Equal(f.now, f.made) {
			t.Errorf("%s is not what the settings make: run make docs", f.path)
		}
	}
}
