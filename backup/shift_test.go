package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nscap/nscap/backup"
	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
)

// The shift suite judges `nscap shift` by independent oracles: the tree's
// snapshot (sha256 of the data, owners, modes with setuid/setgid, mtimes,
// hardlink groups, getfacl -n, getcap -n) translated by the maps, and GNU
// tar run as root of a user namespace with the source map over the
// original tree and with the target map over the shifted one: the two
// archives must be the same bytes (what the container sees, caps and ACLs
// included, did not change).

// shiftChildEnv makes the test binary a shift process (for the kill test):
// "ROOT FROM TO STATEDIR FOREIGN".
const shiftChildEnv = "NSCAP_SHIFT_CHILD"

func init() {
	spec := os.Getenv(shiftChildEnv)
	if spec == "" {
		return
	}
	f := strings.Fields(spec)
	foreign, _ := backup.ParseForeignCaps(f[4])
	_, err := backup.Shift(context.Background(), f[0], backup.ShiftOptions{
		FromUID: mustMapOrExit(f[1]), ToUID: mustMapOrExit(f[2]), StateDir: f[3], ForeignCaps: foreign,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// everyField compares everything a snapshot holds, mtimes included: a
// shift changes only ids.
const everyField = testutil.FieldsAll | testutil.FieldMTime

func mustMapOrExit(s string) userns.Map {
	m, err := userns.ParseMap(s)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	return m
}

// shiftCollect is a reporter that keeps every event.
type shiftCollect struct {
	mu      sync.Mutex
	changes map[string]backup.ShiftChange
	warns   []string
	errs    []string
}

func newShiftCollect() *shiftCollect { return &shiftCollect{changes: map[string]backup.ShiftChange{}} }

func (c *shiftCollect) Change(p string, ch backup.ShiftChange) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes[p] = ch
}

func (c *shiftCollect) Warn(p string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.warns = append(c.warns, p+": "+err.Error())
}

func (c *shiftCollect) Error(p string, err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, p+": "+err.Error())
	return nil
}

func (c *shiftCollect) Finish(backup.ShiftSummary) {}

// tarInNS archives dir with GNU tar as root of a user namespace with the
// uid and gid map m, deterministically (sorted, numeric owners, no atime
// or ctime), xattrs and ACLs included, and returns the archive's sha256
// and size.
func tarInNS(t *testing.T, e *oracleEnv, m userns.Map, dir string) (string, int64) {
	t.Helper()
	base := e.workDir(t)
	testutil.NoErr(t, os.Chmod(base, 0o777)) // the namespace's root makes out
	out := filepath.Join(base, "ns")
	archive := filepath.Join(out, "a.tar")
	msg, err := e.inNamespace(t, m, m, out, "tar", "--numeric-owner", "--sort=name", "--format=pax",
		"--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
		"--xattrs", "--xattrs-include=*", "--acls", "-cf", archive, "-C", dir, ".")
	if err != nil || len(bytes.TrimSpace(msg)) > 0 {
		t.Fatalf("tar in the namespace %s: %v\n%s", m, err, msg)
	}
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	if d := os.Getenv("NSCAP_SHIFT_KEEP_TAR"); d != "" {
		_ = os.WriteFile(filepath.Join(d, m.String()+".tar"), b, 0o600)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b)), int64(len(b))
}

func shiftOK(t *testing.T, root string, o backup.ShiftOptions) backup.ShiftSummary {
	t.Helper()
	col := newShiftCollect()
	o.Reporter = col
	if o.StateDir == "" {
		o.StateDir = t.TempDir()
	}
	sum, err := backup.Shift(context.Background(), root, o)
	if err != nil || len(col.errs) > 0 {
		t.Fatalf("shift %s -> %s: %v\n%s", o.FromUID, o.ToUID, err, strings.Join(col.errs, "\n"))
	}
	return sum
}

// TestShiftOracle shifts a generated rootfs (caps of the container root
// and of a nested root, a hardlink to a capped file, setuid and setgid
// files, access and default ACLs, sparse and big files, devices, fifos,
// symlinks, trusted.* and user.* xattrs) from 0:100000:65536 to
// 0:200000:65536 and back, as root.
func TestShiftOracle(t *testing.T) {
	testutil.RequireRoot(t)
	e := newOracleEnv(t)
	work := e.workDir(t)
	o := e.genOptions(7)
	o.Catalogue, o.Random, o.BigSizes, o.SparseSize = true, 300, []int64{9<<20 + 1}, 16<<20
	tree, snap0 := e.source(t, work, o)
	tarA, sizeA := tarInNS(t, e, e.srcU, tree.Root)

	// A dry run changes nothing and lists what a shift changes.
	col := newShiftCollect()
	dry, err := backup.Shift(context.Background(), tree.Root, backup.ShiftOptions{
		FromUID: e.srcU, ToUID: e.dstU, DryRun: true, Reporter: col,
	})
	if err != nil || len(col.errs) > 0 {
		t.Fatalf("dry run: %v %v", err, col.errs)
	}
	testutil.CheckTree(t, "after --dry-run", snap0, tree.Root, testutil.CompareOptions{Fields: everyField})
	if inodes := countInodes(t, tree.Root); dry.Changed != int64(len(col.changes)) || dry.Changed != inodes {
		t.Errorf("dry run: %d changed, %d listed, %d inodes in the tree (all owned in the source range)", dry.Changed, len(col.changes), inodes)
	}
	for _, rel := range tree.CapFiles {
		if c, ok := col.changes[rel]; !ok || !c.Caps {
			t.Errorf("dry run: %s has caps but no caps change listed (%+v)", rel, c)
		}
	}

	sum := shiftOK(t, tree.Root, backup.ShiftOptions{FromUID: e.srcU, ToUID: e.dstU})
	t.Logf("A->B: %+v", sum)
	if sum.Changed != dry.Changed || sum.Caps != dry.Caps || sum.ACLs != dry.ACLs {
		t.Errorf("shift changed %+v, the dry run listed %+v", sum, dry)
	}
	testutil.CheckTree(t, "shifted to 0:200000:65536", snap0, tree.Root, testutil.CompareOptions{Fields: everyField, IDs: e.ids(e.dstU, e.dstG)})
	tarB, sizeB := tarInNS(t, e, e.dstU, tree.Root)
	if tarA != tarB {
		t.Errorf("GNU tar in the container: the original at %s gives %s (%d bytes), the shifted tree at %s gives %s (%d bytes)",
			e.srcU, tarA, sizeA, e.dstU, tarB, sizeB)
	}

	// Run again: nothing left to do.
	if again := shiftOK(t, tree.Root, backup.ShiftOptions{FromUID: e.srcU, ToUID: e.dstU}); again.Changed != 0 {
		t.Errorf("second run changed %d inodes", again.Changed)
	}

	// And back: the original, bit for bit.
	shiftOK(t, tree.Root, backup.ShiftOptions{FromUID: e.dstU, ToUID: e.srcU})
	testutil.CheckTree(t, "shifted back to 0:100000:65536", snap0, tree.Root, testutil.CompareOptions{Fields: everyField})
}

// TestShiftFromHost shifts a privileged rootfs (raw host ids, host-scoped
// revision-2 caps) into a container's range and back.
func TestShiftFromHost(t *testing.T) {
	testutil.RequireRoot(t)
	e := newOracleEnv(t)
	work := e.workDir(t)
	host := mustMap(t, "0:0:65536")
	e.srcU, e.srcG = host, host
	o := e.genOptions(11)
	o.SetCap = func(path, caps string, rootid uint32) error {
		argv := []string{"setcap", caps, path} // rootid 0: revision 2, the host root's
		if rootid != 0 {
			argv = []string{"setcap", "-n", strconv.FormatUint(uint64(rootid), 10), caps, path}
		}
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %v: %s", argv, err, out)
		}
		return nil
	}
	o.Catalogue, o.BigSizes = true, []int64{2<<20 + 1}
	tree, snap0 := e.source(t, work, o)
	shiftOK(t, tree.Root, backup.ShiftOptions{FromUID: host, ToUID: e.dstU})
	testutil.CheckTree(t, "host -> 0:200000:65536", snap0, tree.Root, testutil.CompareOptions{Fields: everyField, IDs: e.ids(e.dstU, e.dstG)})
	caps := getcapN(t, tree.Root)
	if !strings.Contains(caps, "[rootid=200000]") {
		t.Errorf("the container root's caps should have rootid 200000:\n%s", caps)
	}
	shiftOK(t, tree.Root, backup.ShiftOptions{FromUID: e.dstU, ToUID: host})
	testutil.CheckTree(t, "and back to host ids", snap0, tree.Root, testutil.CompareOptions{Fields: everyField})
	// Run again: the revision-2 caps of the container root are in the
	// target's range (host uid 0): shifted already, not foreign.
	if again := shiftOK(t, tree.Root, backup.ShiftOptions{FromUID: e.dstU, ToUID: host}); again.Changed != 0 {
		t.Errorf("second run to host ids changed %d inodes", again.Changed)
	}
}

func getcapN(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("getcap", "-n", "-r", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("getcap: %v\n%s", err, out)
	}
	return string(out)
}

func runOut(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

func owner(t *testing.T, p string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d %04o", st.Uid, st.Gid, st.Mode&0o7777)
}

// TestShiftEdges: ids and caps outside the source map, overlapping
// ranges, a mount point, a symlink to a file outside the tree, and the
// journal of a shift between other maps.
func TestShiftEdges(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireOracle(t, "getcap", "setcap", "getfacl", "setfacl")
	from, to := mustMap(t, "0:100000:65536"), mustMap(t, "0:200000:65536")
	mk := func(t *testing.T) string {
		dir := filepath.Join(testutil.TempDir(t), "rootfs")
		testutil.RequireXattrFS(t, filepath.Dir(dir))
		for _, d := range []string{"bin", "etc", "mnt"} {
			testutil.NoErr(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
		}
		for _, f := range []string{"bin/ping", "bin/hostcap", "bin/other", "etc/stray"} {
			testutil.NoErr(t, os.WriteFile(filepath.Join(dir, f), []byte(f), 0o755))
		}
		runOut(t, "chown", "-R", "100000:100000", dir)
		runOut(t, "chown", "5000:5000", filepath.Join(dir, "etc/stray"))
		runOut(t, "setcap", "-n", "100000", "cap_net_raw=ep", filepath.Join(dir, "bin/ping"))
		runOut(t, "setcap", "cap_sys_admin=ep", filepath.Join(dir, "bin/hostcap"))               // host-scoped
		runOut(t, "setcap", "-n", "300000", "cap_net_admin=ep", filepath.Join(dir, "bin/other")) // another container's
		runOut(t, "setfacl", "-m", "u:100005:r,u:7000:r", filepath.Join(dir, "etc"))
		return dir
	}

	t.Run("foreign", func(t *testing.T) {
		for _, p := range []backup.ForeignCaps{backup.ForeignCapsFail, backup.ForeignCapsSkip, backup.ForeignCapsHost} {
			t.Run(p.String(), func(t *testing.T) {
				dir := mk(t)
				hostBefore, otherBefore := getcapOne(t, dir, "bin/hostcap"), getcapOne(t, dir, "bin/other")
				col := newShiftCollect()
				sum, err := backup.Shift(context.Background(), dir, backup.ShiftOptions{FromUID: from, ToUID: to, ForeignCaps: p, Reporter: col, StateDir: t.TempDir()})
				var fe *backup.ShiftFailedError
				if !errors.As(err, &fe) {
					t.Fatalf("err = %v, want a ShiftFailedError (etc/stray and an ACL id are outside the map)", err)
				}
				joined := strings.Join(col.errs, "\n")
				for _, want := range []string{"etc/stray: host uid 5000", "etc/stray: host gid 5000", "etc: system.posix_acl_access: host acl user 7000"} {
					if !strings.Contains(joined, want) {
						t.Errorf("errors lack %q:\n%s", want, joined)
					}
				}
				if got := owner(t, filepath.Join(dir, "etc/stray")); got != "5000:5000 0755" {
					t.Errorf("etc/stray: %s, want it left as it was", got)
				}
				if acl := runOut(t, "getfacl", "-n", "-p", "--omit-header", filepath.Join(dir, "etc")); !strings.Contains(acl, "user:200005:r--") || !strings.Contains(acl, "user:7000:r--") {
					t.Errorf("etc's ACL: 100005 moves to 200005, 7000 stays:\n%s", acl)
				}
				if got := getcapOne(t, dir, "bin/ping"); got != "cap_net_raw=ep [rootid=200000]" {
					t.Errorf("bin/ping: %q", got)
				}
				hostAfter, otherAfter := getcapOne(t, dir, "bin/hostcap"), getcapOne(t, dir, "bin/other")
				switch p {
				case backup.ForeignCapsFail:
					if hostAfter != hostBefore || otherAfter != otherBefore || owner(t, filepath.Join(dir, "bin/hostcap"))[:13] != "100000:100000" {
						t.Errorf("fail: foreign-capped files must be left as they were: %q %q %s", hostAfter, otherAfter, owner(t, filepath.Join(dir, "bin/hostcap")))
					}
					if !strings.Contains(joined, "bin/hostcap") || !strings.Contains(joined, "bin/other") {
						t.Errorf("fail: the foreign caps are not reported:\n%s", joined)
					}
				case backup.ForeignCapsSkip:
					if hostAfter != "" || otherAfter != "" || owner(t, filepath.Join(dir, "bin/hostcap"))[:13] != "200000:200000" {
						t.Errorf("skip: caps must be dropped and the files shifted: %q %q", hostAfter, otherAfter)
					}
				case backup.ForeignCapsHost:
					if hostAfter != hostBefore || otherAfter != otherBefore || owner(t, filepath.Join(dir, "bin/other"))[:13] != "200000:200000" {
						t.Errorf("host: caps must be kept as they were and the files shifted: %q %q", hostAfter, otherAfter)
					}
				}
				t.Logf("%s: %+v", p, sum)
			})
		}
	})

	t.Run("overlap", func(t *testing.T) {
		dir := mk(t)
		_, err := backup.Shift(context.Background(), dir, backup.ShiftOptions{FromUID: from, ToUID: mustMap(t, "0:150000:65536")})
		if !errors.Is(err, backup.ErrShiftOverlap) || !strings.Contains(err.Error(), "150000-165535") {
			t.Fatalf("err = %v, want ErrShiftOverlap naming 150000-165535", err)
		}
		if got := owner(t, filepath.Join(dir, "bin/ping")); got != "100000:100000 0755" {
			t.Errorf("refused, yet bin/ping is %s", got)
		}
	})

	t.Run("mount-and-symlink", func(t *testing.T) {
		dir := mk(t)
		mnt := filepath.Join(dir, "mnt")
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,uid=100000,gid=100000", "tmpfs", mnt).CombinedOutput(); err != nil {
			t.Fatalf("mount tmpfs: %v %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })
		testutil.NoErr(t, os.WriteFile(filepath.Join(mnt, "f"), nil, 0o644))
		testutil.NoErr(t, os.Chown(filepath.Join(mnt, "f"), 100001, 100001))
		outside := filepath.Join(filepath.Dir(dir), "outside")
		testutil.NoErr(t, os.WriteFile(outside, nil, 0o644))
		testutil.NoErr(t, os.Chown(outside, 100000, 100000))
		testutil.NoErr(t, os.Symlink(outside, filepath.Join(dir, "etc/link")))
		testutil.NoErr(t, os.Lchown(filepath.Join(dir, "etc/link"), 100000, 100000))

		col := newShiftCollect()
		sum, _ := backup.Shift(context.Background(), dir, backup.ShiftOptions{FromUID: from, ToUID: to, ForeignCaps: backup.ForeignCapsHost, Reporter: col, StateDir: t.TempDir()})
		if sum.Mounts != 1 || owner(t, filepath.Join(mnt, "f"))[:13] != "100001:100001" || owner(t, mnt)[:13] != "100000:100000" {
			t.Errorf("a mount point must be left alone: %d mounts, mnt %s, mnt/f %s; warnings %v", sum.Mounts, owner(t, mnt), owner(t, filepath.Join(mnt, "f")), col.warns)
		}
		if got := owner(t, filepath.Join(dir, "etc/link")); got[:13] != "200000:200000" {
			t.Errorf("the symlink itself is lchown'ed: %s", got)
		}
		if got := owner(t, outside); got != "100000:100000 0644" {
			t.Errorf("the symlink's target outside the tree was changed: %s", got)
		}
		sum, _ = backup.Shift(context.Background(), dir, backup.ShiftOptions{FromUID: from, ToUID: to, ForeignCaps: backup.ForeignCapsHost, CrossMounts: true, Reporter: newShiftCollect(), StateDir: t.TempDir()})
		if sum.Mounts != 0 || owner(t, filepath.Join(mnt, "f"))[:13] != "200001:200001" {
			t.Errorf("CrossMounts: mnt/f %s", owner(t, filepath.Join(mnt, "f")))
		}
	})

	t.Run("deep-and-already", func(t *testing.T) {
		// Paths past PATH_MAX (25 levels of 200-byte names), and an
		// inode owned in the target range before the shift.
		dir := mk(t)
		runOut(t, "chown", "100000:100000", filepath.Join(dir, "etc/stray"))
		runOut(t, "setfacl", "-b", filepath.Join(dir, "etc"))
		runOut(t, "chown", "200005:200005", filepath.Join(dir, "etc/stray"))
		name := strings.Repeat("d", 200)
		fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
		testutil.NoErr(t, err)
		for range 25 {
			testutil.NoErr(t, syscall.Mkdirat(fd, name, 0o755))
			testutil.NoErr(t, syscall.Fchownat(fd, name, 100000, 100000, 0))
			nfd, err := syscall.Openat(fd, name, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
			testutil.NoErr(t, err)
			syscall.Close(fd)
			fd = nfd
		}
		lfd, err := syscall.Openat(fd, "leaf", syscall.O_CREAT|syscall.O_WRONLY, 0o644)
		testutil.NoErr(t, err)
		testutil.NoErr(t, syscall.Fchown(lfd, 100000, 100000))
		testutil.NoErr(t, syscall.Fchmod(lfd, 0o4755))
		syscall.Close(lfd)
		syscall.Close(fd)
		t.Cleanup(func() { _ = exec.Command("rm", "-rf", filepath.Join(dir, name)).Run() })
		col := newShiftCollect()
		sum, err := backup.Shift(context.Background(), dir, backup.ShiftOptions{FromUID: from, ToUID: to, StateDir: t.TempDir(), ForeignCaps: backup.ForeignCapsHost, Reporter: col})
		if err != nil || len(col.errs) > 0 {
			t.Fatalf("shift of a deep tree: %v %v", err, col.errs)
		}
		left := runOut(t, "sh", "-c", "find "+dir+" -uid 100000 | wc -l; find "+dir+" -name leaf -printf '%U %m'")
		if strings.TrimSpace(left) != "0\n200000 4755" {
			t.Errorf("after the shift, find says: %q (want no inode left at 100000, leaf 200000 4755)", left)
		}
		if w := strings.Join(col.warns, "\n"); !strings.Contains(w, "1 inodes were owned in the --to range already") {
			t.Errorf("no warning for etc/stray, owned in the target range before the shift: %q (%+v)", w, sum)
		}
	})

	t.Run("journal", func(t *testing.T) {
		// A run that leaves an owner outside the map (a failure) but
		// completes every inode it journaled removes its journal: the
		// reverse shift is not held up.
		dir := mk(t)
		state := t.TempDir()
		_, err := backup.Shift(context.Background(), dir, backup.ShiftOptions{FromUID: from, ToUID: to, StateDir: state, ForeignCaps: backup.ForeignCapsHost, Reporter: newShiftCollect()})
		var fe *backup.ShiftFailedError
		if !errors.As(err, &fe) {
			t.Fatalf("err = %v, want a ShiftFailedError (etc/stray)", err)
		}
		if ents, _ := os.ReadDir(state); len(ents) != 0 {
			t.Errorf("the journal is left after a run that completed its inodes: %v", ents)
		}

		// A shift killed right after the chown of bin/ping (its cap
		// cleared), then the reverse shift: the reverse completes bin/ping
		// from the journal first, and the tree is the original.
		runOut(t, "chown", "100000:100000", filepath.Join(dir, "etc/stray"))
		runOut(t, "setfacl", "-b", filepath.Join(dir, "etc"))
		shiftOK(t, dir, backup.ShiftOptions{FromUID: to, ToUID: from, StateDir: state, ForeignCaps: backup.ForeignCapsHost})
		before := getcapN(t, dir)
		exe, err := os.Executable()
		testutil.NoErr(t, err)
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), shiftChildEnv+"="+strings.Join([]string{dir, from.String(), to.String(), state, "host"}, " "), "NSCAP_SHIFT_CRASH_AT=1")
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Fatalf("the shift was not killed after its first chown that cleared a cap: %s", out)
		}
		col := newShiftCollect()
		sum, err := backup.Shift(context.Background(), dir, backup.ShiftOptions{FromUID: to, ToUID: from, StateDir: state, ForeignCaps: backup.ForeignCapsHost, Reporter: col})
		if err != nil || sum.Replayed != 1 || len(col.warns) == 0 || !strings.Contains(strings.Join(col.warns, "\n"), "interrupted shift") {
			t.Fatalf("reverse after a kill: %v, %+v, warnings %q", err, sum, col.warns)
		}
		if after := getcapN(t, dir); after != before {
			t.Errorf("caps after the killed shift and the reverse:\n%s\nwant\n%s", after, before)
		}
		if ents, _ := os.ReadDir(state); len(ents) != 0 {
			t.Errorf("the journal is left after a complete run: %v", ents)
		}
	})
}

// countInodes counts the distinct inodes of the tree at dir.
func countInodes(t *testing.T, dir string) int64 {
	t.Helper()
	seen := map[uint64]bool{}
	testutil.NoErr(t, filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		seen[st.Ino] = true
		return nil
	}))
	return int64(len(seen))
}

// getcapOne returns what getcap -n prints for rel (without the path).
func getcapOne(t *testing.T, dir, rel string) string {
	t.Helper()
	out := strings.TrimSpace(runOut(t, "getcap", "-n", filepath.Join(dir, rel)))
	_, caps, _ := strings.Cut(out, " ")
	return caps
}

// TestShiftKill kills shifts with SIGKILL at random points, runs the shift
// again, and compares the tree with a copy shifted in one run. The tree is
// generated (NSCAP_SHIFT_KILL_FILES random entries besides the catalogue,
// default 3000), or NSCAP_SHIFT_KILL_TREE names a tree at
// NSCAP_SHIFT_KILL_BASE (e.g. mktree.py's 200k-file tree at 100000,
// which has host-scoped caps: they are kept, --foreign-caps host).
func TestShiftKill(t *testing.T) {
	testutil.RequireRoot(t)
	e := newOracleEnv(t)
	work := e.workDir(t)
	tree := os.Getenv("NSCAP_SHIFT_KILL_TREE")
	from := e.srcU
	if tree == "" {
		n := 3000
		if v := os.Getenv("NSCAP_SHIFT_KILL_FILES"); v != "" {
			n, _ = strconv.Atoi(v)
		}
		o := e.genOptions(23)
		o.Catalogue, o.Random, o.BigSizes, o.MaxRandomSize = true, n, []int64{1<<20 + 1}, 4096
		g, _ := e.source(t, work, o)
		tree = g.Root
	} else if b := os.Getenv("NSCAP_SHIFT_KILL_BASE"); b != "" {
		from = mustMap(t, "0:"+b+":65536")
	}
	to := mustMap(t, "0:300000:65536")
	ref := filepath.Join(work, "ref")
	runOut(t, "cp", "-a", tree, ref)
	testutil.CheckSnapshots(t, "cp -a copy", testutil.TakeSnapshot(t, tree), testutil.TakeSnapshot(t, ref), testutil.CompareOptions{Fields: everyField})

	start := time.Now()
	shiftOK(t, ref, backup.ShiftOptions{FromUID: from, ToUID: to, ForeignCaps: backup.ForeignCapsHost})
	full := time.Since(start)
	want := testutil.TakeSnapshot(t, ref)

	exe, err := os.Executable()
	testutil.NoErr(t, err)
	state := t.TempDir()
	spec := strings.Join([]string{tree, from.String(), to.String(), state, "host"}, " ")
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 1))
	// child runs a shift, killed after delay or, with crashAt, right
	// after its crashAt-th chown that cleared caps or setuid bits; it
	// reports whether the kill came before the end.
	child := func(delay time.Duration, crashAt int) bool {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), shiftChildEnv+"="+spec)
		if crashAt > 0 {
			cmd.Env = append(cmd.Env, "NSCAP_SHIFT_CRASH_AT="+strconv.Itoa(crashAt))
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		testutil.NoErr(t, cmd.Start())
		if crashAt == 0 {
			time.Sleep(delay)
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
			return true
		}
		if err != nil {
			t.Fatalf("shift child: %v\n%s", err, stderr.String())
		}
		return false
	}
	// Killed in the window the journal covers, twice in a row (the
	// second run completes the first's inode from the journal first).
	if !child(0, 3) || !child(0, 5) {
		t.Fatalf("the shift was not killed after a chown that cleared caps: the tree has too few")
	}
	kills := 2
	for i := 0; i < 10; i++ {
		// Each run gets up to a third of a full run (the test binary's
		// start included) before its SIGKILL.
		if child(time.Duration(r.Int64N(int64(full)/3+int64(30*time.Millisecond))), 0) {
			kills++
		}
	}
	t.Logf("seed %d: %d of 12 runs killed midway (a full run takes %v)", seed, kills, full)
	sum := shiftOK(t, tree, backup.ShiftOptions{FromUID: from, ToUID: to, StateDir: state, ForeignCaps: backup.ForeignCapsHost})
	t.Logf("final run: %+v", sum)
	testutil.CheckSnapshots(t, "killed and resumed vs shifted in one run", want, testutil.TakeSnapshot(t, tree), testutil.CompareOptions{Fields: everyField})
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Errorf("the journal is left after a complete run: %v", ents)
	}
}

// shiftRootlessEnv makes TestShiftRootlessChild run: "ROOT FROM TO".
const shiftRootlessEnv = "NSCAP_SHIFT_ROOTLESS"

// TestShiftRootless: an unprivileged user that owns 400000-531071 in
// /etc/subuid and /etc/subgid shifts a rootfs from 0:400000:65536 to
// 0:465536:65536 through the helper user namespace; the result is judged
// as root against the source, and by GNU tar in the container.
func TestShiftRootless(t *testing.T) {
	testutil.RequireRoot(t)
	e := newOracleEnv(t)
	from, to := mustMap(t, "0:400000:65536"), mustMap(t, "0:465536:65536")
	e.srcU, e.srcG = from, from
	work := e.workDir(t)
	o := e.genOptions(31)
	o.Catalogue, o.Random, o.BigSizes, o.SparseSize = true, 100, []int64{2<<20 + 1}, 4<<20
	tree, snap0 := e.source(t, work, o)
	tarA, _ := tarInNS(t, e, from, tree.Root)
	u := testutil.User(t, testutil.UserOptions{Prefix: "shf", SubStart: 400000, SubCount: 131072})
	out := u.RunTest(t, "TestShiftRootlessChild", fmt.Sprintf("%s=%s %s %s", shiftRootlessEnv, tree.Root, from, to))
	t.Logf("unprivileged shift: %s", bytes.TrimSpace(out))
	testutil.CheckTree(t, "shifted rootless to 0:465536:65536", snap0, tree.Root, testutil.CompareOptions{Fields: everyField, IDs: e.ids(to, to)})
	if tarB, _ := tarInNS(t, e, to, tree.Root); tarA != tarB {
		t.Errorf("GNU tar in the container sees another tree after the rootless shift")
	}

	// The reverse shift killed in the helper right after its second
	// chown that cleared caps or setuid bits, then the shift forward
	// again: the journal (in the helper's ids, the same for both
	// directions) completes the two files first, and the tree is as
	// before.
	cmd := u.Command("/proc/self/exe", "-test.run=^TestShiftRootlessChild$", "-test.v")
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %s", shiftRootlessEnv, tree.Root, to, from), "NSCAP_SHIFT_CRASH_AT=2")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("the rootless reverse shift was not killed: %s", out)
	}
	out = u.RunTest(t, "TestShiftRootlessChild", fmt.Sprintf("%s=%s %s %s", shiftRootlessEnv, tree.Root, from, to))
	if !bytes.Contains(out, []byte("Replayed:")) || bytes.Contains(out, []byte("Replayed:0 ")) {
		t.Errorf("the forward shift after the killed reverse completed nothing from the journal: %s", out)
	}
	testutil.CheckTree(t, "rootless: killed reverse, then forward again", snap0, tree.Root, testutil.CompareOptions{Fields: everyField, IDs: e.ids(to, to)})
}

// TestShiftRootlessChild is TestShiftRootless's unprivileged part.
func TestShiftRootlessChild(t *testing.T) {
	spec := os.Getenv(shiftRootlessEnv)
	if spec == "" {
		t.Skip("run by TestShiftRootless")
	}
	f := strings.Fields(spec)
	col := newShiftCollect()
	sum, err := backup.ShiftRootless(context.Background(), f[0], backup.ShiftOptions{
		FromUID: mustMap(t, f[1]), ToUID: mustMap(t, f[2]), Reporter: col,
	}, backup.RootlessOptions{})
	if err != nil || len(col.errs) > 0 {
		t.Fatalf("ShiftRootless: %v\n%s", err, strings.Join(col.errs, "\n"))
	}
	fmt.Printf("%+v\n", sum)
}
