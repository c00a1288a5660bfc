package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/internal/archiver"
	"github.com/nscap/nscap/internal/testutil"
)

func TestExcludeMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p, name string
		want    bool
	}{
		{"shadow", "./etc/shadow", true},
		{"etc/shadow", "./etc/shadow", true},
		{"./etc/shadow", "./etc/shadow", true},
		{"/etc/shadow", "./etc/shadow", false},
		{"tc/shadow", "./etc/shadow", false}, // parts start after a "/"
		{"etc", "./var/etc", true},
		{"etc", "./etc/x", false}, // the directory is excluded, not matched below
		{".", ".", true},
		{"*", ".", true},
		{"etc/", "./etc", false},
	}
	for _, tc := range tests {
		if got := archiver.ExcludeMatch([]string{tc.p}, tc.name); got != tc.want {
			t.Errorf("archiver.ExcludeMatch(%q, %q) = %v, want %v", tc.p, tc.name, got, tc.want)
		}
	}
}

// TestExcludeOracle: the members Options.Exclude leaves in the archive
// are exactly those GNU tar --exclude leaves (tar -C ROOT --exclude P -c
// . | tar -t), for patterns of every kind; runs as root and unprivileged.
func TestExcludeOracle(t *testing.T) {
	testutil.RequireTool(t, "tar")
	root := filepath.Join(t.TempDir(), "r")
	for _, d := range []string{"etc/ssl", "var/log", "a/b/c", ".hid", "var/etc", "x y", "we[ird dir"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{
		"etc/shadow", "etc/passwd", "etc/ssl/x.pem", "var/log/a.log", "var/log/b.txt", "a/b/c/d", ".hid/f",
		"we[ird", "x*y", "x y/z 1", "var/etc/e", "a/b/c.log", "-dash", "we[ird dir/q", "1", "a/2",
	} {
		if err := os.WriteFile(filepath.Join(root, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("etc/shadow", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	patterns := [][]string{
		{"etc"},
		{"./etc"},
		{"etc/"},
		{"*.log"},
		{"e?c"},
		{"[a-c]*"},
		{"a/*/c"},
		{"log/*"},
		{".hid"},
		{"*/ssl"},
		{"[!e]tc"},
		{"[^e]tc"},
		{"we[ird"},
		{"r"},
		{"./"},
		{"etc/*"},
		{"shadow", "passwd"},
		{`x\*y`},
		{"x*y"},
		{"x y"},
		{"*[0-9]"},
		{"/etc"},
		{"a/b"},
		{"?"},
		{"**"},
		{"link"},
		{"-dash"},
		{"*/*/*"},
		{"[]"},
		{"[!]"},
		{"var/etc/e"},
		{"etc/ssl/x.pem"},
		{"e*"},
		{"*e"},
		{"."},
		{"*"},
	}
	for _, pats := range patterns {
		args := []string{"-C", root}
		for _, p := range pats {
			args = append(args, "--exclude="+p)
		}
		tarOut, err := exec.Command("tar", append(args, "-cf", "-", ".")...).Output()
		if err != nil {
			t.Fatalf("tar %q: %v", args, err)
		}
		want := memberNames(t, tarOut)
		var buf bytes.Buffer
		if _, err := Write(context.Background(), &buf, root, Options{Exclude: pats}); err != nil {
			t.Fatalf("Write(Exclude %q): %v", pats, err)
		}
		if diff := cmp.Diff(want, memberNames(t, buf.Bytes())); diff != "" {
			t.Errorf("Exclude %q: members differ from GNU tar's (-tar +nscap):\n%s", pats, diff)
		}
	}
}

// memberNames lists the members of a tar archive, sorted, without a
// trailing "/" and without pax global headers.
func memberNames(tb testing.TB, b []byte) []string {
	tb.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	names := []string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		names = append(names, strings.TrimSuffix(h.Name, "/"))
	}
	slices.Sort(names)
	return names
}
