package cli

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeGoVersion: the README names the Go version the go line of
// go.mod needs, and how to install it on Debian (issue 14), so the two
// cannot drift apart.
func TestReadmeGoVersion(t *testing.T) {
	t.Parallel()
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+(?:\.\d+)?)$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	v := string(m[1])
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, want := range []string{
		"Go " + v + " or newer",
		"https://go.dev/dl/go" + v + ".linux-amd64.tar.gz",
		"tar -C /usr/local -xzf go" + v + ".linux-amd64.tar.gz",
		"bookworm-backports",
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md does not say %q (go.mod: go %s)", want, v)
		}
	}
}
