package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nscap/nscap/internal/testutil"
)

// nscapTTY runs Main with stderr taken for a terminal.
func nscapTTY(tb testing.TB, args ...string) result {
	tb.Helper()
	ios, _, out, errOut := Test()
	ios.IsStderrTTY = true
	code := Main(context.Background(), args, ios)
	return result{Code: code, Stdout: out.String(), Stderr: errOut.String()}
}

// On a terminal backup, restore and verify draw a status line redrawn in
// place ("\r" and erase-line) and leave its final state on its own line
// before the summary; backup and restore of a file reach 100% of a known
// total. -q, --no-progress and --json draw none.
func TestProgressOnTerminal(t *testing.T) {
	dir := testutil.TempDir(t)
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b", "c"} {
		if err := os.WriteFile(filepath.Join(tree, "d", n), []byte(strings.Repeat(n, 5000)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	archive := filepath.Join(dir, "t.tar")
	dest := filepath.Join(dir, "dest")
	final := func(label string) *regexp.Regexp {
		return regexp.MustCompile(`\r\x1b\[K\[0:\d\d\] 100% ` + label + `: [^\r\n]*\n`)
	}
	steps := []struct {
		args  []string
		final *regexp.Regexp
		after string // the line that follows the final status
	}{
		{[]string{"backup", "-o", archive, tree}, final("backup"), "backup: 5 entries"},
		{[]string{"restore", archive, dest}, final("restore"), "restored 3 files"},
		{[]string{"verify", archive, dest}, final("verify"), "verify: " + dest + " matches " + archive + ": no differences"},
	}
	for _, s := range steps {
		r := nscapTTY(t, s.args...)
		if r.Code != ExitOK {
			t.Fatalf("nscap %v: exit %d, stderr %q", s.args, r.Code, r.Stderr)
		}
		loc := s.final.FindStringIndex(r.Stderr)
		if loc == nil {
			t.Errorf("nscap %v: no final status line matching %q in stderr %q", s.args, s.final, r.Stderr)
			continue
		}
		if rest := r.Stderr[loc[1]:]; !strings.HasPrefix(rest, s.after) || strings.ContainsAny(rest, "\r\x1b") {
			t.Errorf("nscap %v: after the status line %q, want a plain %q...", s.args, rest, s.after)
		}
	}
	for _, off := range [][]string{{"-q"}, {"--no-progress"}, {"--json"}} {
		args := append(off, "verify", archive, dest)
		if r := nscapTTY(t, args...); r.Code != ExitOK || strings.ContainsAny(r.Stderr, "\r\x1b") {
			t.Errorf("nscap %v: exit %d, stderr %q: want no progress", args, r.Code, r.Stderr)
		}
	}
}
