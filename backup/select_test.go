package backup

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/internal/tarfmt"
	"github.com/nscap/nscap/internal/testutil"
)

// treeNames lists the paths below root, sorted.
func treeNames(tb testing.TB, root string) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(root, p); rel != "." {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestRestorePaths: Restore with Paths writes the members named, what is
// below those that are directories, and the directories above them (with
// their archive mode), the same set of names GNU tar -x NAME... makes;
// a path no member matches gives a *NotFoundError after the others are
// restored. List with the same Paths lists those members. Runs as root
// and unprivileged (members of the caller's own ids).
func TestRestorePaths(t *testing.T) {
	testutil.RequireTool(t, "tar")
	uid, gid := os.Getuid(), os.Getgid()
	dir := func(n string) member { return member{name: n, typ: '5', mode: 0o750, uid: uid, gid: gid} }
	file := func(n string) member { return member{name: n, data: n, uid: uid, gid: gid} }
	a := makeArchive(t, "", []member{
		dir("./"), dir("./etc/"), file("./etc/passwd"), file("./etc/shadow"), dir("./usr/"), dir("./usr/bin/"),
		file("./usr/bin/ping"), dir("./usr/lib/"), file("./usr/lib/x"), dir("./var/"), file("./var/x"),
	})
	for _, tc := range []struct {
		paths   []string
		missing []string
	}{
		{paths: []string{"etc/passwd", "./usr/bin"}},
		{paths: []string{"/usr"}},
		{paths: []string{"./etc/passwd", "nope", "etc/passwd/x"}, missing: []string{"nope", "etc/passwd/x"}},
	} {
		t.Run(strings.Join(tc.paths, ","), func(t *testing.T) {
			dest := testutil.TempDir(t)
			_, err := Restore(context.Background(), bytes.NewReader(a), dest, RestoreOptions{Paths: tc.paths, StateDir: testutil.TempDir(t)})
			var nf *NotFoundError
			if tc.missing != nil {
				if !errors.As(err, &nf) || !cmp.Equal(nf.Paths, tc.missing) || !errors.Is(err, ErrNotInArchive) {
					t.Fatalf("Restore(Paths %q) = %v, want *NotFoundError %q", tc.paths, err, tc.missing)
				}
			} else if err != nil {
				t.Fatalf("Restore(Paths %q) = %v", tc.paths, err)
			}
			// GNU tar -x NAME... as the oracle of the names made.
			oracle := testutil.TempDir(t)
			args := []string{"-C", oracle, "-xf", "-"}
			for _, p := range tc.paths {
				if !slices.Contains(tc.missing, p) {
					args = append(args, "./"+strings.TrimPrefix(strings.TrimPrefix(p, "/"), "./"))
				}
			}
			cmd := exec.Command("tar", args...)
			cmd.Stdin = bytes.NewReader(a)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("tar %q: %v: %s", args, err, out)
			}
			want, got := treeNames(t, oracle), treeNames(t, dest)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Paths %q: names (-tar +nscap):\n%s", tc.paths, diff)
			}
			// Parents get the archive's mode (tar makes them 0755-umask).
			if fi, err := os.Stat(filepath.Join(dest, "usr")); err == nil && fi.Mode().Perm() != 0o750 {
				t.Errorf("parent usr has mode %v, want the archive's 0750", fi.Mode().Perm())
			}
			var listed []string
			err = List(context.Background(), bytes.NewReader(a), ListOptions{Paths: tc.paths}, func(e ListEntry) error {
				listed = append(listed, strings.TrimSuffix(strings.TrimPrefix(e.Name, "./"), "/"))
				return nil
			})
			if (tc.missing == nil) != (err == nil) {
				t.Errorf("List(Paths %q) = %v", tc.paths, err)
			}
			listed = slices.DeleteFunc(listed, func(s string) bool { return s == "" })
			slices.Sort(listed)
			if diff := cmp.Diff(got, listed); diff != "" {
				t.Errorf("List(Paths %q) (-restored +listed):\n%s", tc.paths, diff)
			}
		})
	}
	if _, err := Restore(context.Background(), bytes.NewReader(a), testutil.TempDir(t), RestoreOptions{Paths: []string{"../x"}, StateDir: testutil.TempDir(t)}); !errors.Is(err, tarfmt.ErrInsecurePath) {
		t.Errorf("Restore(Paths ../x) = %v, want ErrInsecurePath", err)
	}
}
