package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
)

// helperEnv makes the test binary run one WriteFile instead of the tests
// (see TestMain): "ROOT OUT MAP".
const helperEnv = "NSCAP_BACKUP_TEST_HELPER"

// restoreEnv makes the test binary run one Restore instead of the tests
// (see TestMain): "ARCHIVE DEST"; each failed entry is printed as
// "PATH: ERROR".
const restoreEnv = "NSCAP_RESTORE_TEST_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(restoreEnv); spec != "" {
		f := strings.Fields(spec)
		a, err := os.Open(f[0])
		if err == nil {
			_, err = Restore(context.Background(), a, f[1], RestoreOptions{StateDir: f[1] + ".state", Reporter: funcs{err: func(p string, err error) error {
				fmt.Printf("%s: %v (EPERM %v)\n", p, err, errors.Is(err, unix.EPERM))
				return nil
			}}})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if spec := os.Getenv(helperEnv); spec != "" {
		f := strings.Fields(spec)
		_, err := WriteFile(context.Background(), f[1], f[0], Options{UIDMap: mustMapOrExit(f[2])})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func mustMapOrExit(s string) userns.Map {
	m, err := userns.ParseMap(s)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	return m
}

// foreignFixture adds to the mapped fixture: a file owned by a host uid
// outside the map, a host-scoped (revision 2) cap, and a cap of another
// container (rootid 300000).
func foreignFixture(t *testing.T, owner bool) string {
	root := fixture(t, 100000)
	mk := func(rel string, uid int, caps []byte) {
		p := filepath.Join(root, rel)
		if err := os.WriteFile(p, []byte(rel), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, 100000); err != nil {
			t.Fatal(err)
		}
		if caps != nil {
			if err := unix.Setxattr(p, XattrCaps, caps, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("bin/hostcap", 100000, testutil.RawCaps(2, 0))
	mk("bin/othercap", 100000, testutil.RawCaps(3, 300000))
	if owner {
		mk("etc/hostowned", 5000, nil)
	}
	return root
}

// noLeftovers fails if dir holds anything but the names given.
func noLeftovers(t *testing.T, dir string, keep ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !contains(keep, e.Name()) {
			t.Errorf("left behind in %s: %s", dir, e.Name())
		}
	}
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

func TestWriteFileFailsListingPaths(t *testing.T) {
	root := foreignFixture(t, true)
	work := filepath.Dir(root)
	out := filepath.Join(work, "out.tar")
	rec := &recorder{}
	_, err := WriteFile(context.Background(), out, root, Options{UIDMap: mustMap(t, "0:100000:65536"), Reporter: rec})
	var ie *IncompleteError
	if !errors.As(err, &ie) {
		t.Fatalf("WriteFile = %v, want an *IncompleteError", err)
	}
	if diff := cmp.Diff([]string{"./bin/hostcap", "./bin/othercap", "./etc/hostowned"}, ie.Paths()); diff != "" {
		t.Errorf("failed paths (-want +got):\n%s", diff)
	}
	if !errors.Is(err, ErrForeignCaps) || !errors.Is(err, ErrUnmapped) {
		t.Errorf("errors.Is(err, ErrForeignCaps/ErrUnmapped) false for %v", err)
	}
	for _, want := range []string{"host rootid 0 outside the map 0:100000:65536", "host rootid 300000", "host uid 5000"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if len(rec.errs) != 3 {
		t.Errorf("Reporter.Error calls = %q, want 3", rec.errs)
	}
	noLeftovers(t, work, "rootfs")
}

func TestWriteForeignCapsPolicies(t *testing.T) {
	root := foreignFixture(t, false)
	m := mustMap(t, "0:100000:65536")
	for _, tc := range []struct {
		policy      ForeignCaps
		wantHost    string // caps of bin/hostcap in the archive
		wantOther   string
		wantComment string
		wantSkipped int64
	}{
		{ForeignCapsSkip, "", "", "", 3},
		{ForeignCapsHost, string(testutil.RawCaps(2, 0)), string(testutil.RawCaps(3, 300000)), HostScopedComment, 1},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			var buf bytes.Buffer
			rec := &recorder{}
			sum, err := Write(context.Background(), &buf, root, Options{UIDMap: m, ForeignCaps: tc.policy, Reporter: rec})
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			got, _ := readEntries(t, &buf)
			if g := got["./bin/hostcap"].Xattrs[XattrCaps]; g != tc.wantHost {
				t.Errorf("bin/hostcap caps = %x, want %x", g, tc.wantHost)
			}
			if g := got["./bin/othercap"].Xattrs[XattrCaps]; g != tc.wantOther {
				t.Errorf("bin/othercap caps = %x, want %x", g, tc.wantOther)
			}
			if g := got["./bin/hostcap"].Comment; g != tc.wantComment {
				t.Errorf("bin/hostcap comment = %q, want %q", g, tc.wantComment)
			}
			if g := got["./bin/ping"].Xattrs[XattrCaps]; g != string(testutil.RawCaps(2, 0)) {
				t.Errorf("bin/ping caps = %x, want the container root's", g)
			}
			if sum.Skipped != tc.wantSkipped {
				t.Errorf("Skipped = %d, want %d", sum.Skipped, tc.wantSkipped)
			}
			var n int
			for _, w := range rec.warns {
				if strings.Contains(w, "foreign-caps "+tc.policy.String()) {
					n++
				}
			}
			if n != 2 {
				t.Errorf("warnings = %q, want one per foreign cap", rec.warns)
			}
		})
	}
}

// TestWriteFileUnreadable runs a backup without CAP_DAC_OVERRIDE and
// CAP_DAC_READ_SEARCH (setpriv drops them from the bounding set), so that
// a mode-000 file is unreadable: the backup fails naming it and leaves no
// output file.
func TestWriteFileUnreadable(t *testing.T) {
	testutil.RequireTool(t, "setpriv")
	root := fixture(t, 100000)
	if err := os.Chmod(filepath.Join(root, "etc/xattr"), 0); err != nil {
		t.Fatal(err)
	}
	work := filepath.Dir(root)
	out := filepath.Join(work, "out.tar")
	cmd := exec.Command("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search", "--", os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+root+" "+out+" 0:100000:65536")
	msg, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("backup of an unreadable file succeeded: %s", msg)
	}
	if !strings.Contains(string(msg), "./etc/xattr: open ./etc/xattr: permission denied") {
		t.Errorf("error output does not name the file:\n%s", msg)
	}
	noLeftovers(t, work, "rootfs")
}

// TestRestoreCapsExplained: a capability the kernel refuses to restore is
// explained as nscap set explains it (restore writes caps with fcaps's
// writer): restored without CAP_SETFCAP (dropped from the bounding set
// for root, as an unprivileged user it is not held), the entry's error
// names the capability the write needs, and is EPERM.
func TestRestoreCapsExplained(t *testing.T) {
	uid, gid := os.Getuid(), os.Getgid()
	a := makeArchive(t, "", []member{{name: "ping", data: "x", mode: 0o755, uid: uid, gid: gid, xattrs: map[string]string{XattrCaps: capsV2()}}})
	dir := testutil.TempDir(t)
	arch := filepath.Join(dir, "a.tar")
	testutil.NoErr(t, os.WriteFile(arch, a, 0o644))
	argv := []string{os.Args[0]}
	if testutil.IsRoot() {
		testutil.RequireTool(t, "setpriv")
		argv = append([]string{"setpriv", "--bounding-set=-setfcap", "--inh-caps=-setfcap", "--"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), restoreEnv+"="+arch+" "+filepath.Join(dir, "dest"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "/ping: ") || !strings.Contains(string(out), "CAP_SETFCAP") || !strings.Contains(string(out), "(EPERM true)") {
		t.Errorf("refused cap not explained (want the entry, CAP_SETFCAP, EPERM):\n%s", out)
	}
}
