package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	man, md := filepath.Join(dir, "man"), filepath.Join(dir, "md")
	if err := run(man, md); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nscap.1", "nscap-get.1", "nscap-set.1", "nscap-remove.1", "nscap-decode.1", "nscap-encode.1"} {
		b, err := os.ReadFile(filepath.Join(man, name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "\n.SH EXIT STATUS\n") {
			t.Errorf("%s has no EXIT STATUS section", name)
		}
	}
	if _, err := os.Stat(filepath.Join(md, "nscap_get.md")); err != nil {
		t.Error(err)
	}
}
