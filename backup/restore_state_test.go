//go:build linux

package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nscap/nscap/internal/jobstate"
	"github.com/nscap/nscap/internal/restorer"
	"github.com/nscap/nscap/internal/testutil"
)

// Issue 12, item 8: DEST may be the rootfs of a running container, whose
// root writes in it. Nothing it plants there may pass for the state of a
// restore, nor be removed by one.

// plantedNames are entries a container plants in DEST that look like a
// restore's own: the marker file of earlier versions, a staging
// directory, temporary names (in both the old and the new form).
var plantedNames = map[string]string{
	".nscap-restore-incomplete":                        "",
	".nscap-staging.0123456789abcdef/keep":             "container data",
	".nscap-tmp.0123456789abcdef":                      "container data",
	"sub/.nscap-tmp.0011223344556677.8899aabbccddeeff": "container data",
	"sub/.nscap-tmp.x":                                 "container data",
}

// plant writes plantedNames under dest, the marker with content marker.
func plant(t *testing.T, dest, marker string) {
	t.Helper()
	for name, data := range plantedNames {
		if name == ".nscap-restore-incomplete" {
			data = marker
		}
		p := filepath.Join(dest, name)
		testutil.NoErr(t, os.MkdirAll(filepath.Dir(p), 0o755))
		testutil.NoErr(t, os.WriteFile(p, []byte(data), 0o644))
	}
}

// checkPlanted fails unless every planted entry is still there, intact.
func checkPlanted(t *testing.T, dest, marker string) {
	t.Helper()
	for name, data := range plantedNames {
		if name == ".nscap-restore-incomplete" {
			data = marker
		}
		if b, err := os.ReadFile(filepath.Join(dest, name)); err != nil || string(b) != data {
			t.Errorf("planted %s = %q, %v; want it kept, %q", name, b, err, data)
		}
	}
}

// selfMembers sets the owner of ms to the caller, so that the test runs
// unprivileged too.
func selfMembers(ms []member) []member {
	for i := range ms {
		ms[i].uid, ms[i].gid = os.Getuid(), os.Getgid()
	}
	return ms
}

// TestRestorePlantedMarker: a marker file, a staging directory and
// temporary names planted in DEST by the container change nothing: a
// "direct" marker does not make --overwrite never overwrite, and nothing
// planted is removed.
func TestRestorePlantedMarker(t *testing.T) {
	a := makeArchive(t, "", selfMembers([]member{
		{name: "f", data: "new"},
		{name: "g", data: "new"},
		{name: "sub/", typ: tar.TypeDir, mode: 0o755},
		{name: "sub/l", typ: tar.TypeSymlink, link: "../f"},
	}))
	for name, marker := range map[string]string{
		"direct":  "direct\n",
		"staging": "staging .nscap-staging.0123456789abcdef\n",
		"empty":   "",
	} {
		t.Run(name, func(t *testing.T) {
			dest := testutil.TempDir(t)
			testutil.NoErr(t, os.WriteFile(filepath.Join(dest, "f"), []byte("old"), 0o644))
			plant(t, dest, marker)
			var errs []string
			if _, err := Restore(context.Background(), bytes.NewReader(a), dest, RestoreOptions{Overwrite: OverwriteNever, Reporter: funcs{err: collect(&errs)}}); err != nil || len(errs) > 0 {
				t.Fatalf("Restore = %v %q", err, errs)
			}
			if b, err := os.ReadFile(filepath.Join(dest, "f")); err != nil || string(b) != "old" {
				t.Errorf("f = %q, %v; want the existing file kept (--overwrite never)", b, err)
			}
			if b, err := os.ReadFile(filepath.Join(dest, "g")); err != nil || string(b) != "new" {
				t.Errorf("g = %q, %v; want it restored", b, err)
			}
			checkPlanted(t, dest, marker)
		})
	}
}

// stateChildEnv makes the test binary run TestRestoreStateChild:
// "ARCHIVE DEST SIGNAL".
const stateChildEnv = "NSCAP_TEST_STATE_CHILD"

// TestRestoreStateChild is the restore that killRestore kills: it stops
// for good once a symlink is under its temporary name in DEST, after
// creating SIGNAL.
func TestRestoreStateChild(t *testing.T) {
	spec := testutil.ChildEnv(t, stateChildEnv, "killRestore")
	f := strings.Fields(spec)
	restorer.TestHookSpecial = func(int, string) {
		if err := os.WriteFile(f[2], nil, 0o644); err != nil {
			t.Error(err) // the parent times out waiting for it
		}
		select {} // until killed
	}
	a, err := os.ReadFile(f[0])
	testutil.NoErr(t, err)
	// The parent kills this restore; an error before that is the
	// parent's to see.
	_, _ = Restore(context.Background(), bytes.NewReader(a), f[1], RestoreOptions{})
}

// killRestore runs a restore of a into dest in a child process and kills
// it (SIGKILL) while a symlink of the archive is under its temporary
// name: dest is left as a killed restore leaves it.
func killRestore(t *testing.T, a []byte, dest string, env ...string) {
	t.Helper()
	dir := t.TempDir()
	ap, signal := filepath.Join(dir, "a.tar"), filepath.Join(dir, "stopped")
	testutil.NoErr(t, os.WriteFile(ap, a, 0o644))
	cmd := exec.Command(os.Args[0], "-test.run=^TestRestoreStateChild$")
	cmd.Env = append(append(os.Environ(), env...), stateChildEnv+"="+ap+" "+dest+" "+signal)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	testutil.NoErr(t, cmd.Start())
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(signal); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill() // it may have exited already
			_ = cmd.Wait()         // killed: the status is the kill
			t.Fatalf("the child restore never reached its symlink:\n%s", out.String())
		}
	}
	_ = cmd.Process.Kill() // it may have exited already
	_ = cmd.Wait()         // killed: the status is the kill
}

// restoreTmpNames lists the entries under dest named like a restore's
// temporaries and not planted (skip: a directory not to descend into).
func restoreTmpNames(t *testing.T, dest, skip string) []string {
	t.Helper()
	var names []string
	testutil.NoErr(t, filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dest, p)
		if rel == skip {
			return fs.SkipDir
		}
		if _, ok := plantedNames[rel]; !ok && strings.HasPrefix(d.Name(), restorer.TmpPrefix) {
			names = append(names, rel)
		}
		return nil
	}))
	return names
}

// stateArchive is the archive of the resume tests: files, and symlinks
// (made under a temporary name, then renamed).
func stateArchive(t *testing.T) []byte {
	var ms []member
	ms = append(ms, member{name: "sub/", typ: tar.TypeDir, mode: 0o755})
	for i := range 20 {
		ms = append(ms, member{name: fmt.Sprintf("sub/f%d", i), data: strings.Repeat("x", i*100)})
		ms = append(ms, member{name: fmt.Sprintf("sub/l%d", i), typ: tar.TypeSymlink, link: fmt.Sprintf("f%d", i)})
	}
	return makeArchive(t, "", selfMembers(ms))
}

// extrasOnly fails on any difference but the extra entries named in
// extra (relative to dest).
func extrasOnly(t *testing.T, diffs []Difference, dest string, extra ...string) {
	t.Helper()
	var got []string
	for _, d := range diffs {
		rel, _ := filepath.Rel(dest, d.Path)
		got = append(got, rel+" "+string(d.Kind))
	}
	var want []string
	for _, e := range extra {
		want = append(want, e+" "+string(DiffExtra))
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Verify (-want +got):\n%s", diff)
	}
}

// plantedExtras are the planted names Verify reports as extra (a
// directory, not what is in it).
var plantedExtras = []string{
	".nscap-restore-incomplete", ".nscap-staging.0123456789abcdef", ".nscap-tmp.0123456789abcdef",
	"sub/.nscap-tmp.0011223344556677.8899aabbccddeeff", "sub/.nscap-tmp.x",
}

// TestRestoreResumeKeepsPlanted: a restore killed while one of its
// temporary names is in DEST, then names planted in DEST that look like
// its temporaries; the next restore removes what the killed one left and
// nothing of what was planted.
func TestRestoreResumeKeepsPlanted(t *testing.T) {
	a := stateArchive(t)
	dest := testutil.TempDir(t)
	testutil.NoErr(t, os.WriteFile(filepath.Join(dest, "keep"), nil, 0o644)) // not empty: temporaries in DEST
	killRestore(t, a, dest)
	if left := restoreTmpNames(t, dest, ""); len(left) == 0 {
		t.Fatal("the killed restore left no temporary name")
	}
	plant(t, dest, "direct\n")
	var errs []string
	if _, err := Restore(context.Background(), bytes.NewReader(a), dest, RestoreOptions{Reporter: funcs{err: collect(&errs)}}); err != nil || len(errs) > 0 {
		t.Fatalf("Restore = %v %q", err, errs)
	}
	checkPlanted(t, dest, "direct\n")
	if left := restoreTmpNames(t, dest, ""); len(left) > 0 {
		t.Errorf("temporary names of the killed restore left: %q", left)
	}
	diffs, err := Verify(context.Background(), bytes.NewReader(a), dest, VerifyOptions{})
	testutil.NoErr(t, err)
	extrasOnly(t, diffs, dest, append([]string{"keep"}, plantedExtras...)...)
}

// deepChainDepth is deeper than the open descriptors a process may have
// (ulimit -n is 20000 or less on the machines the suite runs on).
const deepChainDepth = 21000

// deepChain makes a chain of n directories named d under dir, each made
// relative to a descriptor of the one above (its path is far longer
// than PATH_MAX), and removes it at the end of the test, the same way.
func deepChain(t *testing.T, dir string, n int) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	testutil.NoErr(t, err)
	t.Cleanup(func() { removeChain(t, dir) })
	for range n {
		if err := unix.Mkdirat(fd, "d", 0o755); err != nil {
			unix.Close(fd)
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, "d", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		testutil.NoErr(t, err)
		fd = next
	}
	unix.Close(fd)
}

// removeChain removes the chain of directories named d under dir: down
// to its end one descriptor at a time, then up through "..", removing
// each level.
func removeChain(t *testing.T, dir string) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Error(err)
		return
	}
	depth := 0
	for {
		next, err := unix.Openat(fd, "d", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		unix.Close(fd)
		fd, depth = next, depth+1
	}
	for ; depth > 0; depth-- {
		up, err := unix.Openat(fd, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Error(err)
			return
		}
		fd = up
		if err := unix.Unlinkat(fd, "d", unix.AT_REMOVEDIR); err != nil {
			t.Errorf("remove the chain at depth %d: %v", depth, err)
			break
		}
	}
	unix.Close(fd)
}

// TestRestoreDeepPlantedChain: a chain of directories deeper than the
// descriptors a process may open, planted in DEST, does not make the
// restore that resumes a killed one fail.
func TestRestoreDeepPlantedChain(t *testing.T) {
	a := stateArchive(t)
	dest := testutil.TempDir(t)
	testutil.NoErr(t, os.WriteFile(filepath.Join(dest, "keep"), nil, 0o644))
	killRestore(t, a, dest)
	testutil.NoErr(t, os.MkdirAll(filepath.Join(dest, "sub/chain"), 0o755))
	deepChain(t, filepath.Join(dest, "sub/chain"), deepChainDepth)
	start := time.Now()
	var errs []string
	if _, err := Restore(context.Background(), bytes.NewReader(a), dest, RestoreOptions{Reporter: funcs{err: collect(&errs)}}); err != nil || len(errs) > 0 {
		t.Fatalf("Restore = %v %q", err, errs)
	}
	t.Logf("resumed over a chain %d deep in %v", deepChainDepth, time.Since(start))
	if left := restoreTmpNames(t, dest, "sub/chain"); len(left) > 0 {
		t.Errorf("temporary names of the killed restore left: %q", left)
	}
	diffs, err := Verify(context.Background(), bytes.NewReader(a), dest, VerifyOptions{})
	testutil.NoErr(t, err)
	extrasOnly(t, diffs, dest, "keep", "sub/chain")
}

// stateFile returns the path of the state file of a restore into dest
// kept in stateDir.
func stateFile(t *testing.T, stateDir, dest string) string {
	t.Helper()
	id, err := restorer.DestID(dest)
	testutil.NoErr(t, err)
	return filepath.Join(stateDir, id.FileName())
}

// plantState writes in stateDir the state a restore into dest killed
// after writing records would have left: records are added to the state
// that killed restores left there, if any.
func plantState(t *testing.T, stateDir, dest string, records ...string) {
	t.Helper()
	id, err := restorer.DestID(dest)
	testutil.NoErr(t, err)
	p := filepath.Join(stateDir, id.FileName())
	if _, err := os.Stat(p); err != nil {
		records = append([]string{restorer.StateHeader, id.Record(), "path " + dest}, records...)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	testutil.NoErr(t, err)
	_, err = f.WriteString(strings.Join(records, "\n") + "\n")
	testutil.NoErr(t, err)
	testutil.NoErr(t, f.Close())
}

// TestRestoreStateOutsideDest: while a restore runs, its state is a file
// of the state directory (made 0700), locked, and nothing in DEST; a
// second restore into DEST meanwhile fails with ErrRestoreRunning and
// changes nothing; the state is gone when the restore ends.
func TestRestoreStateOutsideDest(t *testing.T) {
	a := stateArchive(t)
	dest := testutil.TempDir(t)
	testutil.NoErr(t, os.WriteFile(filepath.Join(dest, "keep"), nil, 0o644))
	stateDir := filepath.Join(t.TempDir(), "state") // made by the restore
	var top []string
	var stateErr, second error
	calls := 0
	restorer.TestHookSpecial = func(int, string) {
		if calls++; calls > 1 {
			return
		}
		ents, err := os.ReadDir(dest)
		testutil.NoErr(t, err)
		for _, e := range ents {
			top = append(top, e.Name())
		}
		_, stateErr = os.Stat(stateFile(t, stateDir, dest))
		_, second = Restore(context.Background(), bytes.NewReader(a), dest, RestoreOptions{StateDir: stateDir})
	}
	defer func() { restorer.TestHookSpecial = nil }()
	var errs []string
	if _, err := Restore(context.Background(), bytes.NewReader(a), dest, RestoreOptions{StateDir: stateDir, Reporter: funcs{err: collect(&errs)}}); err != nil || len(errs) > 0 {
		t.Fatalf("Restore = %v %q", err, errs)
	}
	if want := []string{"keep", "sub"}; !cmp.Equal(want, top) {
		t.Errorf("DEST while restored holds %q, want %q", top, want)
	}
	if stateErr != nil {
		t.Errorf("no state file while restoring: %v", stateErr)
	}
	if !errors.Is(second, ErrRestoreRunning) {
		t.Errorf("a second restore into DEST meanwhile = %v, want ErrRestoreRunning", second)
	}
	if fi, err := os.Stat(stateDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory = %v, %v; want mode 0700", fi, err)
	}
	if ents, err := os.ReadDir(stateDir); err != nil || len(ents) != 0 {
		t.Errorf("state left after the restore: %v %v", ents, err)
	}
	diffs, err := Verify(context.Background(), bytes.NewReader(a), dest, VerifyOptions{StateDir: stateDir})
	testutil.NoErr(t, err)
	extrasOnly(t, diffs, dest, "keep")
}

// TestRestoreStaleState: the state file of another directory that had
// DEST's inode before (another birth time), or one cut short before its
// first records, is no restore of DEST to resume: a "direct" in it does
// not make --overwrite never overwrite.
func TestRestoreStaleState(t *testing.T) {
	a := makeArchive(t, "", selfMembers([]member{{name: "f", data: "new"}}))
	for name, content := range map[string]func(id jobstate.TreeID) string{
		"other inode": func(id jobstate.TreeID) string {
			return restorer.StateHeader + "\n" + fmt.Sprintf("dest %d %d 1.000000000", id.Dev, id.Ino) + "\ntoken 0123456789abcdef\ndirect\n"
		},
		"cut short": func(jobstate.TreeID) string { return restorer.StateHeader + "\ndest 1" },
		"garbage":   func(jobstate.TreeID) string { return "direct\n" },
	} {
		t.Run(name, func(t *testing.T) {
			dest := testutil.TempDir(t)
			stateDir := t.TempDir()
			testutil.NoErr(t, os.WriteFile(filepath.Join(dest, "f"), []byte("old"), 0o644))
			testutil.NoErr(t, os.WriteFile(filepath.Join(dest, ".nscap-tmp.0123456789abcdef.0123456789abcdef"), nil, 0o644))
			id, err := restorer.DestID(dest)
			testutil.NoErr(t, err)
			testutil.NoErr(t, os.WriteFile(filepath.Join(stateDir, id.FileName()), []byte(content(id)), 0o600))
			if _, err := Restore(context.Background(), bytes.NewReader(a), dest, RestoreOptions{Overwrite: OverwriteNever, StateDir: stateDir}); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(dest, "f")); err != nil || string(b) != "old" {
				t.Errorf("f = %q, %v; want the existing file kept", b, err)
			}
			if _, err := os.Stat(filepath.Join(dest, ".nscap-tmp.0123456789abcdef.0123456789abcdef")); err != nil {
				t.Errorf("a name of a token the stale state records was removed: %v", err)
			}
			if ents, err := os.ReadDir(stateDir); err != nil || len(ents) != 0 {
				t.Errorf("state left after the restore: %v %v", ents, err)
			}
		})
	}
}

// TestRestoreStateDirChecked: a state directory that others may write in
// (or that is not the caller's) is refused before DEST is created.
func TestRestoreStateDirChecked(t *testing.T) {
	a := makeArchive(t, "", selfMembers([]member{{name: "f", data: "new"}}))
	open := t.TempDir()
	testutil.NoErr(t, os.Chmod(open, 0o777))
	cases := map[string]struct{ dir, want string }{
		"writable by others": {open, "lets others than its owner write in it"},
	}
	if testutil.IsRoot() {
		other := t.TempDir()
		testutil.NoErr(t, os.Chown(other, 12345, 12345))
		cases["another owner"] = struct{ dir, want string }{other, "owned by uid 12345, not by the caller"}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dest := filepath.Join(testutil.TempDir(t), "dest")
			_, err := Restore(context.Background(), bytes.NewReader(a), dest, RestoreOptions{StateDir: tc.dir})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Restore with state directory %s = %v, want %q", tc.dir, err, tc.want)
			}
			if _, err := os.Lstat(dest); err == nil {
				t.Errorf("DEST was created")
			}
		})
	}
}

// TestVerifyReportsState: Verify reports the state of a restore that did
// not end, the staging directory and the temporary names it records, and
// nothing planted as theirs.
func TestVerifyReportsState(t *testing.T) {
	const token, staging = "00112233445566ff", ".nscap-staging.00112233445566ff"
	a := makeArchive(t, "", selfMembers([]member{{name: "sub/", typ: tar.TypeDir, mode: 0o755}}))
	dest := testutil.TempDir(t)
	testutil.NoErr(t, os.Mkdir(filepath.Join(dest, "sub"), 0o755))
	testutil.NoErr(t, os.Chmod(dest, 0o755))
	testutil.NoErr(t, os.Mkdir(filepath.Join(dest, staging), 0o700))
	ours := "sub/" + restorer.TmpPrefix + token + ".0123456789abcdef"
	testutil.NoErr(t, os.WriteFile(filepath.Join(dest, ours), nil, 0o600))
	plant(t, dest, "direct\n")
	stateDir := t.TempDir()
	plantState(t, stateDir, dest, "token "+token, "staging "+staging)
	diffs, err := Verify(context.Background(), bytes.NewReader(a), dest, VerifyOptions{StateDir: stateDir})
	testutil.NoErr(t, err)
	var got []string
	for _, d := range diffs {
		rel, _ := filepath.Rel(dest, d.Path)
		got = append(got, fmt.Sprintf("%s %s %q", rel, d.Kind, d.Got))
	}
	want := []string{
		`. error "a restore into this destination was interrupted: it is incomplete until a restore completes"`,
		`.nscap-restore-incomplete extra ""`,
		`.nscap-staging.00112233445566ff error "staging directory of an interrupted restore: a restore into this destination removes it"`,
		`.nscap-staging.0123456789abcdef extra ""`,
		`.nscap-tmp.0123456789abcdef extra ""`,
		`sub/.nscap-tmp.0011223344556677.8899aabbccddeeff extra ""`,
		`sub/.nscap-tmp.00112233445566ff.0123456789abcdef extra "temporary name of an interrupted restore: a restore into this destination removes it"`,
		`sub/.nscap-tmp.x extra ""`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Verify (-want +got):\n%s", diff)
	}
}

// TestRestoreRootlessState: through the helper user namespace, the state
// is the caller's (its state directory handed to the helper): the helper
// removes what the state records and nothing planted, and its Verify
// reports the state.
func TestRestoreRootlessState(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	const token = "00112233445566ff"
	a := stateArchive(t)
	m := mustMap(t, "0:300000:65536")
	dest := testutil.TempDir(t)
	testutil.NoErr(t, os.WriteFile(filepath.Join(dest, "keep"), nil, 0o644))
	plant(t, dest, "direct\n")
	ours := filepath.Join(dest, "sub", restorer.TmpPrefix+token+".0123456789abcdef")
	testutil.NoErr(t, os.WriteFile(ours, nil, 0o600))
	stateDir := t.TempDir()
	plantState(t, stateDir, dest, "token "+token)

	diffs, err := VerifyRootless(context.Background(), bytes.NewReader(a), dest, VerifyOptions{UIDMap: m, StateDir: stateDir}, RootlessOptions{})
	testutil.NoErr(t, err)
	reported := false
	for _, d := range diffs {
		reported = reported || (d.Path == dest && d.Kind == DiffError && strings.Contains(d.Got, "interrupted"))
	}
	if !reported {
		t.Errorf("VerifyRootless = %v, want the interrupted restore reported", diffs)
	}
	var stderr bytes.Buffer
	var errs []string
	if _, err := RestoreRootless(context.Background(), bytes.NewReader(a), dest, RestoreOptions{UIDMap: m, StateDir: stateDir, Reporter: funcs{err: collect(&errs)}},
		RootlessOptions{Stderr: &stderr}); err != nil || len(errs) > 0 {
		t.Fatalf("RestoreRootless = %v %q (helper stderr %q)", err, errs, stderr.String())
	}
	if _, err := os.Lstat(ours); err == nil {
		t.Errorf("the temporary name the state records is left")
	}
	checkPlanted(t, dest, "direct\n")
	if ents, err := os.ReadDir(stateDir); err != nil || len(ents) != 0 {
		t.Errorf("state left after the restore: %v %v", ents, err)
	}
	diffs, err = VerifyRootless(context.Background(), bytes.NewReader(a), dest, VerifyOptions{UIDMap: m, StateDir: stateDir}, RootlessOptions{})
	testutil.NoErr(t, err)
	extrasOnly(t, diffs, dest, append([]string{"keep"}, plantedExtras...)...)
}

// TestRestoreStagingReplaced: the container renames the staging
// directory away while the restore empties it into DEST and puts a
// directory of its own under its name: the restore completes, fails that
// name with ErrStagingReplaced and leaves the container's directory as it
// is.
func TestRestoreStagingReplaced(t *testing.T) {
	a := makeArchive(t, "", selfMembers([]member{{name: "f", data: "f"}, {name: "g", data: "g"}}))
	dest := testutil.TempDir(t)
	done := false
	restorer.TestHookCommit = func(string) {
		if done {
			return
		}
		done = true
		ents, err := os.ReadDir(dest)
		testutil.NoErr(t, err)
		for _, e := range ents {
			if restorer.IsStagingName(e.Name()) {
				testutil.NoErr(t, os.Rename(filepath.Join(dest, e.Name()), filepath.Join(dest, "moved")))
				testutil.NoErr(t, os.Mkdir(filepath.Join(dest, e.Name()), 0o755))
				testutil.NoErr(t, os.WriteFile(filepath.Join(dest, e.Name(), "container"), []byte("data"), 0o644))
			}
		}
	}
	defer func() { restorer.TestHookCommit = nil }()
	var errs []string
	sum, err := Restore(context.Background(), bytes.NewReader(a), dest, RestoreOptions{StateDir: t.TempDir(), Reporter: funcs{err: func(p string, err error) error {
		if !errors.Is(err, ErrStagingReplaced) {
			errs = append(errs, p+": "+err.Error())
		}
		return nil
	}}})
	if err != nil || len(errs) > 0 || sum.Failures != 1 || sum.Files != 2 {
		t.Fatalf("Restore = %+v, %v, %q; want 2 files and the replaced staging directory failed", sum, err, errs)
	}
	var kept int
	ents, err := os.ReadDir(dest)
	testutil.NoErr(t, err)
	for _, e := range ents {
		if restorer.IsStagingName(e.Name()) {
			if b, err := os.ReadFile(filepath.Join(dest, e.Name(), "container")); err == nil && string(b) == "data" {
				kept++
			}
		}
	}
	if kept != 1 {
		t.Errorf("the container's directory under the staging name was not kept: %v", ents)
	}
	for _, n := range []string{"f", "g"} {
		if b, err := os.ReadFile(filepath.Join(dest, n)); err != nil || string(b) != n {
			t.Errorf("%s = %q, %v", n, b, err)
		}
	}
}
