package backup_test

import (
	"bytes"
	"context"
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

// The oracle round trips: a generated tree (internal/testutil/treegen.go)
// goes through nscap and through GNU tar and bsdtar, and what a user gets
// back is compared with the SOURCE tree, never with the archive, by
// testutil's tree comparison: sha256 of every regular file, sizes, modes
// (setuid, setgid and sticky included), owners, symlink targets, hardlink
// groups, devices, user.* and trusted.* xattrs, ACLs as getfacl -n prints
// them and caps as getcap -n prints them (rootids included), and mtimes;
// sparse files must come back with their holes. The id translations are
// computed from the maps, independently of nscap: source host id ->
// container id (source map) -> target host id (target map).
//
//   - TestOracleNscapToTar: nscap backup, extracted by GNU tar and bsdtar;
//   - TestOracleTarToNscap: GNU tar and bsdtar archives, restored by nscap;
//   - TestOracleNscapRoundTrip: nscap backup, restored by nscap into another
//     uid range;
//   - TestOracleRandomTrees: random trees through nscap -> nscap and nscap ->
//     GNU tar or bsdtar, with random engine tunings; the seed is logged.
//
// As root the source is a rootfs of a container at 0:100000:65536, restored
// at 0:200000:65536 by nscap and extracted by tar both as the host root and
// as the root of a user namespace at 0:300000:65536 (the kernel shifts the
// owners, ACL ids and cap rootids).
//
// As an unprivileged user (scripts/test-unpriv.sh) with a subordinate range
// S (/etc/subuid, /etc/subgid), the source is a tree the user owns, with
// ACLs naming ids of its range and caps set by setcap in a user namespace
// (its container root and nested root): the rootfs of a container at
// 0:UID:1,1:S:65535. nscap restores it rootless (helper namespace) at
// 0:S:65536, and tar extracts it as root of a user namespace at 0:S:65536
// made by unshare(1). The results, owned by subordinate ids, are recorded by
// the test binary re-executed in a user namespace that maps the user and its
// range (TestOracleSnapshotChild), which translates them back to host ids.
// What the kernel does not let a user namespace do is left out: device
// nodes (mknod needs CAP_MKNOD in the initial namespace), trusted.* xattrs
// (CAP_SYS_ADMIN in the initial namespace), owners outside the user's ids.

// oracleSnapEnv names the tree that TestOracleSnapshotChild records.
const oracleSnapEnv = "NSCAP_ORACLE_SNAPSHOT"

// Knobs of the suite, for reproducing or widening a run.
const (
	seedEnv   = "NSCAP_ORACLE_SEED"   // first seed of TestOracleRandomTrees (default: the time)
	roundsEnv = "NSCAP_ORACLE_ROUNDS" // random trees per run (default 3)
	bigEnv    = "NSCAP_ORACLE_BIG"    // sizes of the big files in MiB, comma separated
)

// oracleTools are the programs that judge or make the trees.
var oracleTools = []string{"tar", "bsdtar", "getcap", "setcap", "getfacl", "setfacl", "unshare"}

// oracleEnv is where the round trips run: as root, or as an unprivileged
// user with subordinate ids.
type oracleEnv struct {
	root bool
	// The source rootfs's container maps (namespace id -> host id).
	srcU, srcG userns.Map
	// The target of nscap restore.
	dstU, dstG userns.Map
	// The user namespace tar extracts in.
	nsU, nsG userns.Map
	// Unprivileged: the user's ids and the start of its ranges.
	uid, gid, subU, subG uint32
}

func newOracleEnv(t *testing.T) *oracleEnv {
	t.Helper()
	testutil.RequireOracle(t, oracleTools...)
	testutil.RequireUserNS(t)
	if testutil.IsRoot() {
		return &oracleEnv{
			root: true,
			srcU: mustMap(t, "0:100000:65536"), srcG: mustMap(t, "0:100000:65536"),
			dstU: mustMap(t, "0:200000:65536"), dstG: mustMap(t, "0:200000:65536"),
			nsU: mustMap(t, "0:300000:65536"), nsG: mustMap(t, "0:300000:65536"),
		}
	}
	testutil.RequireOracle(t, "newuidmap", "newgidmap")
	e := &oracleEnv{uid: uint32(os.Getuid()), gid: uint32(os.Getgid())}
	e.subU = subRange(t, testutil.SubUIDFile, e.uid)
	e.subG = subRange(t, testutil.SubGIDFile, e.uid)
	e.srcU = mustMap(t, fmt.Sprintf("0:%d:1,1:%d:65535", e.uid, e.subU))
	e.srcG = mustMap(t, fmt.Sprintf("0:%d:1,1:%d:65535", e.gid, e.subG))
	e.dstU = mustMap(t, fmt.Sprintf("0:%d:65536", e.subU))
	e.dstG = mustMap(t, fmt.Sprintf("0:%d:65536", e.subG))
	e.nsU, e.nsG = e.dstU, e.dstG
	return e
}

// subRange returns the start of the caller's first subordinate range of
// at least 65536 ids in file. Without one, the unprivileged round trips
// cannot run: a skip, or a failure when strict.
func subRange(t *testing.T, file string, uid uint32) uint32 {
	t.Helper()
	names := map[string]bool{strconv.FormatUint(uint64(uid), 10): true}
	if u, err := userLookupName(uid); err == nil {
		names[u] = true
	}
	b, err := os.ReadFile(file)
	if err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			f := strings.Split(strings.TrimSpace(l), ":")
			if len(f) != 3 || !names[f[0]] {
				continue
			}
			start, err1 := strconv.ParseUint(f[1], 10, 32)
			n, err2 := strconv.ParseUint(f[2], 10, 32)
			if err1 == nil && err2 == nil && n >= 65536 {
				return uint32(start)
			}
		}
	}
	if testutil.Strict() {
		t.Fatalf("no subordinate range of 65536 ids for uid %d in %s (%v)", uid, file, err)
	}
	t.Skipf("no subordinate range of 65536 ids for uid %d in %s: an unprivileged user needs one for a helper namespace (%v)", uid, file, err)
	return 0
}

// userLookupName returns the name of uid from /etc/passwd.
func userLookupName(uid uint32) (string, error) {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return "", err
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) > 2 && f[2] == strconv.FormatUint(uint64(uid), 10) {
			return f[0], nil
		}
	}
	return "", fmt.Errorf("uid %d not in /etc/passwd", uid)
}

// hostOf returns the IDMap container id -> host id of m.
func hostOf(m userns.Map) testutil.IDMap {
	return func(id uint32) uint32 {
		h, err := m.ToHost(id)
		if err != nil {
			return ^uint32(0) // never a valid id: the comparison shows it
		}
		return h
	}
}

// between returns the IDMap source host id -> container id (from) -> host
// id of the target (to; the zero map: the container id itself, as a tar
// extraction by the host root writes it).
func between(from, to userns.Map) testutil.IDMap {
	return func(id uint32) uint32 {
		c, err := from.ToNs(id)
		if err != nil {
			return ^uint32(0)
		}
		if to.IsZero() {
			return c
		}
		return hostOf(to)(c)
	}
}

// ids returns the translation of the source's ids into a tree made under
// the target maps.
func (e *oracleEnv) ids(toU, toG userns.Map) testutil.IDs {
	return testutil.IDs{UID: between(e.srcU, toU), GID: between(e.srcG, toG)}
}

// observer returns the unshare(1) arguments of a user namespace whose
// root is the unprivileged user and which maps its whole subordinate
// range after it (1..65536): it can read, change and remove every file the
// user and its helper namespaces made.
func (e *oracleEnv) observer() []string {
	return []string{
		"unshare", "--map-root-user",
		fmt.Sprintf("--map-users=%d,1,65536", e.subU), fmt.Sprintf("--map-groups=%d,1,65536", e.subG),
		"--",
	}
}

// genOptions returns the options of a source tree for the environment.
func (e *oracleEnv) genOptions(seed int64) testutil.GenOptions {
	o := testutil.GenOptions{
		Seed: seed, HostUID: hostOf(e.srcU), HostGID: hostOf(e.srcG), ACLs: true, Caps: true,
	}
	if e.root {
		o.Owners, o.Devices, o.Trusted = true, true, true
		return o
	}
	o.OwnerReadable = true
	// In the observer namespace, container ids are namespace ids: setcap
	// there writes caps for the container root (revision 2 there, as
	// setcap -n refuses rootid 0) and the nested root; the kernel stores
	// their host rootids.
	o.SetCap = func(path, caps string, rootid uint32) error {
		argv := append(e.observer(), "setcap")
		if rootid != 0 {
			argv = append(argv, "-n", strconv.FormatUint(uint64(rootid), 10))
		}
		argv = append(argv, caps, path)
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, out)
		}
		return nil
	}
	return o
}

// bigSizes returns the sizes of the catalogue's big files: 20 MiB+3 and
// 33 MiB-5 (past the read-ahead budget and every buffer), in -short mode
// 3 MiB+3, or the sizes in MiB of NSCAP_ORACLE_BIG.
func bigSizes(t *testing.T) []int64 {
	t.Helper()
	if v := os.Getenv(bigEnv); v != "" {
		var out []int64
		for f := range strings.SplitSeq(v, ",") {
			n, err := strconv.ParseFloat(f, 64)
			if err != nil {
				t.Fatalf("%s=%q: %v", bigEnv, v, err)
			}
			out = append(out, int64(n*(1<<20))+3)
		}
		return out
	}
	if testing.Short() {
		return []int64{3<<20 + 3}
	}
	return []int64{20<<20 + 3, 33<<20 - 5}
}

// workDir returns a fresh directory on a filesystem with xattrs, which
// user namespaces can traverse. Unprivileged, its cleanup first removes,
// from the observer namespace, what is owned by the user's subordinate ids.
func (e *oracleEnv) workDir(t *testing.T) string {
	t.Helper()
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	testutil.Traversable(t, dir)
	if !e.root {
		t.Cleanup(func() {
			argv := append(e.observer(), "rm", "-rf", "--", dir)
			if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
				t.Logf("cleanup of %s: %v: %s", dir, err, out)
			}
		})
	}
	return dir
}

// source generates the source tree under work and records it.
func (e *oracleEnv) source(t *testing.T, work string, o testutil.GenOptions) (*testutil.GenTree, testutil.Snapshot) {
	t.Helper()
	start := time.Now()
	tree := testutil.Generate(t, filepath.Join(work, "src"), o)
	snap := testutil.TakeSnapshot(t, tree.Root)
	t.Logf("source (seed %d): %d entries, %d MiB of data, %d sparse files, %d with caps, in %v",
		o.Seed, tree.Entries, tree.Bytes>>20, len(tree.Sparse), len(tree.CapFiles), time.Since(start).Round(time.Millisecond))
	return tree, snap
}

// snapshot records the result tree at dir: in-process as root; as an
// unprivileged user from the observer namespace (the tree is owned by
// subordinate ids), translated back to host ids.
func (e *oracleEnv) snapshot(t *testing.T, dir string) testutil.Snapshot {
	t.Helper()
	if e.root {
		return testutil.TakeSnapshot(t, dir)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := append(e.observer(), exe, "-test.run=^TestOracleSnapshotChild$", "-test.v", "-test.count=1")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), oracleSnapEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("snapshot of %s in the observer namespace: %v\n%s", dir, err, out)
	}
	var s testutil.Snapshot
	testutil.ReadResult(t, out, &s)
	return s
}

// TestOracleSnapshotChild records a tree from inside the observer user
// namespace of an unprivileged run, with host ids; started by
// oracleEnv.snapshot only.
func TestOracleSnapshotChild(t *testing.T) {
	dir := testutil.ChildEnv(t, oracleSnapEnv, "the oracle round trips")
	testutil.PrintResult(t, testutil.TakeSnapshot(t, dir).Translate(testutil.SelfToHost(t)))
}

// inNamespace runs argv as root of a new user namespace with the maps u
// and g, after creating the directory mkdir there (so that the
// namespace's root owns it): as root with the maps written by Go, as an
// unprivileged user through unshare(1) and newuidmap(1). It returns the
// combined output.
func (e *oracleEnv) inNamespace(t *testing.T, u, g userns.Map, mkdir string, argv ...string) ([]byte, error) {
	t.Helper()
	script := []string{"sh", "-c", `mkdir -- "$0" && exec "$@"`, mkdir}
	if !e.root {
		ue, ge := u.Extents()[0], g.Extents()[0]
		un := []string{
			"unshare", fmt.Sprintf("--map-users=%d,%d,%d", ue.HostID, ue.NsID, ue.Count),
			fmt.Sprintf("--map-groups=%d,%d,%d", ge.HostID, ge.NsID, ge.Count),
			"--setuid=0", "--setgid=0", "--",
		}
		argv = append(append(un, script...), argv...)
		return toolCommand(argv...).CombinedOutput()
	}
	argv = append(script, argv...)
	cmd := toolCommand(argv...)
	conv := func(m userns.Map) []syscall.SysProcIDMap {
		var out []syscall.SysProcIDMap
		for _, x := range m.Extents() {
			out = append(out, syscall.SysProcIDMap{ContainerID: int(x.NsID), HostID: int(x.HostID), Size: int(x.Count)})
		}
		return out
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: conv(u), GidMappings: conv(g),
		Credential: &syscall.Credential{Uid: 0, Gid: 0},
	}
	return cmd.CombinedOutput()
}

// toolCommand returns the command running argv in a UTF-8 locale: in the
// C locale bsdtar refuses names that are not ASCII ("Pathname can't be
// converted from UTF-8 to current locale"), and the trees have some.
func toolCommand(argv ...string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	return cmd
}

// oracleRun runs a tool on the host and fails the test on a failure or
// any diagnostic.
func oracleRun(t *testing.T, argv ...string) {
	t.Helper()
	out, err := toolCommand(argv...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

// backupTo archives src with nscap under the source maps.
func (e *oracleEnv) backupTo(t *testing.T, archive, src string, o backup.Options) {
	t.Helper()
	o.UIDMap, o.GIDMap = e.srcU, e.srcG
	sum, err := backup.WriteFile(context.Background(), archive, src, o)
	if err != nil {
		t.Fatalf("nscap backup: %v", err)
	}
	// Readable by the namespaces that extract it.
	if err := os.Chmod(archive, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("nscap backup: %d entries, %d MiB of data, %d caps, archive %d MiB, in %v",
		sum.Entries, sum.Bytes>>20, sum.Caps, sum.Written>>20, sum.Duration.Round(time.Millisecond))
}

// restoreTo restores archive with nscap into dest (created) under the
// target maps (and the source maps when src is set: a raw archive of
// host ids), rootless through the helper namespace when unprivileged. Any
// per-entry error fails the test.
func (e *oracleEnv) restoreTo(t *testing.T, archive, dest string, raw bool, o backup.RestoreOptions) {
	t.Helper()
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o.UIDMap, o.GIDMap = e.dstU, e.dstG
	if o.XattrsInclude == nil {
		// Every xattr, trusted.* included, to compare the whole tree; the
		// default policy (user.* only) has TestRestoreXattrPolicy.
		o.XattrsInclude = []string{"*"}
	}
	if raw {
		o.SourceUIDMap, o.SourceGIDMap = e.srcU, e.srcG
	}
	var mu sync.Mutex
	var errs []string
	o.Reporter = errorsTo(func(p string, err error) error {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, fmt.Sprintf("%s: %v", p, err))
		return nil
	})
	start := time.Now()
	var sum backup.RestoreSummary
	if e.root {
		sum, err = backup.Restore(context.Background(), f, dest, o)
	} else {
		var stderr bytes.Buffer
		sum, err = backup.RestoreRootless(context.Background(), f, dest, o, backup.RootlessOptions{Stderr: &stderr})
		if stderr.Len() > 0 {
			t.Logf("helper stderr: %s", stderr.String())
		}
	}
	if err != nil || len(errs) > 0 {
		t.Fatalf("nscap restore of %s: %v; entry errors:\n%s", filepath.Base(archive), err, strings.Join(errs, "\n"))
	}
	t.Logf("nscap restore: %d files, %d MiB, %d caps, in %v", sum.Files, sum.Bytes>>20, sum.Caps, time.Since(start).Round(time.Millisecond))
}

// extractor is a tar program extracting an archive.
type extractor struct {
	name string
	// argv returns the command extracting archive into dest, leaving out
	// the members excluded (relative paths) and, when noTrusted, the
	// trusted.* xattrs where the tool can.
	argv func(archive, dest string, exclude []string, noTrusted bool) []string
	// nsNoise tells whether a line of the tool's output in a user
	// namespace is its report of a trusted.* xattr of one of the paths
	// given that the namespace cannot write.
	nsNoise func(line string, trusted []string) bool
	// ignore lists what the tool itself does not give back.
	ignore []testutil.Ignore
}

var extractors = []extractor{
	{
		name: "gnu-tar",
		argv: func(archive, dest string, exclude []string, noTrusted bool) []string {
			argv := []string{"tar", "--xattrs", "--xattrs-include=*", "--acls", "--numeric-owner", "-xpf", archive, "-C", dest}
			if noTrusted {
				argv = append(argv, "--xattrs-exclude=trusted.*")
			}
			for _, x := range exclude {
				argv = append(argv, "--exclude=./"+x)
			}
			return argv
		},
		nsNoise: func(string, []string) bool { return false },
	},
	{
		name: "bsdtar",
		argv: func(archive, dest string, exclude []string, _ bool) []string {
			argv := []string{"bsdtar", "--xattrs", "--acls", "--numeric-owner", "-xpf", archive, "-C", dest}
			for _, x := range exclude {
				argv = append(argv, "--exclude", "./"+x)
			}
			return argv
		},
		// bsdtar has no option to leave an xattr out: it tries, reports
		// the failure and exits 1.
		nsNoise: func(l string, trusted []string) bool {
			if l == "bsdtar: Error exit delayed from previous errors." {
				return true
			}
			for _, p := range trusted {
				if strings.HasPrefix(l, "./"+p+": Cannot restore extended attributes: trusted.") {
					return true
				}
			}
			return false
		},
		ignore: []testutil.Ignore{{
			Pattern: ".", Fields: testutil.FieldMTime,
			Why: "bsdtar 3.6 sets the mode of the existing '.' but not its times (its own archives too)",
		}},
	},
}

// extract runs x on archive into dest (created there) as the host root
// (ns false: the namespace-relative ids land as they are) or as root of a
// user namespace with the maps nsU, nsG (the kernel shifts them). Any
// diagnostic fails the test, but, in the namespace, those about the
// trusted.* xattrs that only the initial namespace may write.
func (e *oracleEnv) extract(t *testing.T, x extractor, archive, dest string, ns bool, tree *testutil.GenTree) {
	t.Helper()
	start := time.Now()
	var out []byte
	var err error
	if ns {
		// The namespace cannot mknod: leave the devices out.
		argv := x.argv(archive, dest, tree.Devices, true)
		out, err = e.inNamespace(t, e.nsU, e.nsG, dest, argv...)
	} else {
		if err := os.Mkdir(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		argv := x.argv(archive, dest, nil, false)
		out, err = toolCommand(argv...).CombinedOutput()
	}
	var other []string
	for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if noise := ns && x.nsNoise(l, tree.Trusted); l != "" && !noise {
			other = append(other, l)
		}
	}
	var ee *exec.ExitError
	tolerated := ns && len(other) == 0 && errors.As(err, &ee) && ee.ExitCode() == 1 && len(tree.Trusted) > 0
	if (err != nil && !tolerated) || len(other) > 0 {
		t.Errorf("%s -x (user namespace %v): %v\n%s", x.name, ns, err, out)
	}
	t.Logf("%s extraction: %v", x.name, time.Since(start).Round(time.Millisecond))
}

// extractDir makes the directory in which the roots of the user
// namespaces of the extractions create their destinations: writable by
// all (the namespace's root is not its owner, nor mapped to it).
func extractDir(t *testing.T, work string) string {
	t.Helper()
	d := filepath.Join(work, "x")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	return d
}

// TestOracleNscapToTar: an nscap backup of the source rootfs, extracted by
// GNU tar and by bsdtar, gives back the source: as root of a user
// namespace at another range, with owners, ACL ids and cap rootids
// shifted by the kernel (devices and trusted.* xattrs left out: a user
// namespace cannot make them); as the host root, with the container ids
// as they are and everything else as in the source. Sparse files come
// back with their holes (the archive's sparse members).
func TestOracleNscapToTar(t *testing.T) {
	t.Parallel()
	e := newOracleEnv(t)
	work := e.workDir(t)
	o := e.genOptions(1)
	o.Catalogue, o.BigSizes, o.SparseSize = true, bigSizes(t), 100<<20
	tree, src := e.source(t, work, o)
	archive := filepath.Join(work, "nscap.tar")
	e.backupTo(t, archive, tree.Root, backup.Options{})

	xdir := extractDir(t, work)
	for _, x := range extractors {
		t.Run(x.name+"/userns", func(t *testing.T) {
			dest := filepath.Join(xdir, x.name+"-ns")
			e.extract(t, x, archive, dest, true, tree)
			ignore := append(testutil.IgnorePaths("mknod needs CAP_MKNOD in the initial user namespace", tree.Devices...), x.ignore...)
			ignore = append(ignore, testutil.Ignore{
				Pattern: ".", Tree: true, Fields: testutil.FieldTrusted,
				Why: "trusted.* xattrs need CAP_SYS_ADMIN in the initial user namespace",
			})
			got := e.snapshot(t, dest)
			testutil.CheckSnapshots(t, "nscap backup -> "+x.name+" in "+e.nsU.String(), src, got, testutil.CompareOptions{
				Fields: testutil.FieldsAll | testutil.FieldMTime,
				IDs:    e.ids(e.nsU, e.nsG),
				Ignore: ignore,
			})
			testutil.CheckSparse(t, x.name+" in a user namespace", got, tree.Sparse)
		})
		if !e.root {
			continue // the host root's extraction is root's
		}
		t.Run(x.name+"/host", func(t *testing.T) {
			dest := filepath.Join(xdir, x.name+"-host")
			e.extract(t, x, archive, dest, false, tree)
			got := testutil.TakeSnapshot(t, dest)
			testutil.CheckSnapshots(t, "nscap backup -> "+x.name+" as the host root", src, got, testutil.CompareOptions{
				Fields: testutil.FieldsAll | testutil.FieldMTime,
				IDs:    e.ids(userns.Map{}, userns.Map{}),
				Ignore: x.ignore,
			})
			testutil.CheckSparse(t, x.name+" as the host root", got, tree.Sparse)
		})
	}
}

// TestOracleTarToNscap: GNU tar (pax, --xattrs --xattrs-include='*'
// --acls --sparse) and bsdtar (pax, --xattrs --acls) archives of the
// source, made on the host with its raw ids, restored by nscap into
// another range through the source maps (--source-uidmap), give back the
// source with owners, ACL ids and cap rootids shifted.
func TestOracleTarToNscap(t *testing.T) {
	t.Parallel()
	e := newOracleEnv(t)
	work := e.workDir(t)
	o := e.genOptions(2)
	o.Catalogue, o.BigSizes, o.SparseSize = true, bigSizes(t), 100<<20
	tree, src := e.source(t, work, o)
	for _, tc := range []struct {
		name string
		argv []string
	}{
		{"gnu-tar", []string{"tar", "--xattrs", "--xattrs-include=*", "--acls", "--sparse", "--format=posix", "--numeric-owner", "-cpf"}},
		{"bsdtar", []string{"bsdtar", "--xattrs", "--acls", "--numeric-owner", "--format=pax", "-cpf"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			archive := filepath.Join(work, tc.name+".tar")
			oracleRun(t, append(tc.argv, archive, "-C", tree.Root, ".")...)
			dest := filepath.Join(work, "from-"+tc.name)
			e.restoreTo(t, archive, dest, true, backup.RestoreOptions{})
			got := e.snapshot(t, dest)
			testutil.CheckSnapshots(t, tc.name+" archive -> nscap restore at "+e.dstU.String(), src, got, testutil.CompareOptions{
				Fields: testutil.FieldsAll | testutil.FieldMTime,
				IDs:    e.ids(e.dstU, e.dstG),
			})
			testutil.CheckSparse(t, tc.name+" archive, nscap restore", got, tree.Sparse)
		})
	}
}

// TestOracleNscapRoundTrip: an nscap backup of the source rootfs restored
// by nscap into another range (root: 0:100000:65536 -> 0:200000:65536;
// unprivileged: rootless, through the helper namespace) gives back the
// source, every property, with owners, ACL ids and the rootids of the
// container root's and the nested root's caps translated.
func TestOracleNscapRoundTrip(t *testing.T) {
	t.Parallel()
	e := newOracleEnv(t)
	work := e.workDir(t)
	o := e.genOptions(3)
	o.Catalogue, o.BigSizes, o.SparseSize = true, bigSizes(t), 100<<20
	tree, src := e.source(t, work, o)
	for _, c := range []backup.Compression{backup.CompressNone, backup.CompressZstd} {
		t.Run(c.String(), func(t *testing.T) {
			archive := filepath.Join(work, "nscap-"+c.String()+".tar")
			e.backupTo(t, archive, tree.Root, backup.Options{Compression: c})
			dest := filepath.Join(work, "dest-"+c.String())
			e.restoreTo(t, archive, dest, false, backup.RestoreOptions{})
			got := e.snapshot(t, dest)
			testutil.CheckSnapshots(t, "nscap backup -> nscap restore at "+e.dstU.String(), src, got, testutil.CompareOptions{
				Fields: testutil.FieldsAll | testutil.FieldMTime,
				IDs:    e.ids(e.dstU, e.dstG),
			})
			testutil.CheckSparse(t, "nscap restore", got, tree.Sparse)
		})
	}
}

// TestOracleRandomTrees puts random trees (sizes drawn from the boundary
// set, random modes, owners, names, links, xattrs, ACLs, caps and sparse
// files) through nscap backup -> nscap restore and nscap backup -> GNU tar
// or bsdtar in a user namespace, with random read-ahead budgets, window
// sizes, worker counts and compression. Each round logs its seed:
// NSCAP_ORACLE_SEED=N replays it (NSCAP_ORACLE_ROUNDS=K runs K rounds from
// there).
func TestOracleRandomTrees(t *testing.T) {
	t.Parallel()
	e := newOracleEnv(t)
	seed := time.Now().UnixNano() % 1_000_000_000
	if v := os.Getenv(seedEnv); v != "" {
		var err error
		if seed, err = strconv.ParseInt(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", seedEnv, v, err)
		}
	}
	rounds := 3
	if v := os.Getenv(roundsEnv); v != "" {
		var err error
		if rounds, err = strconv.Atoi(v); err != nil {
			t.Fatalf("%s=%q: %v", roundsEnv, v, err)
		}
	}
	for i := range rounds {
		s := seed + int64(i)
		t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) {
			t.Logf("replay: %s=%d %s=1 go test -run 'TestOracleRandomTrees' ./backup", seedEnv, s, roundsEnv)
			r := rand.New(rand.NewPCG(uint64(s), 1))
			work := e.workDir(t)
			o := e.genOptions(s)
			o.Random = 80 + r.IntN(120)
			o.MaxRandomSize = []int64{64<<10 + 1, 1<<20 + 1, 8<<20 + 1}[r.IntN(3)]
			o.SparseSize = 8 << 20
			tree, src := e.source(t, work, o)
			fields := testutil.FieldsAll | testutil.FieldMTime

			bo := backup.Options{
				Compression: []backup.Compression{backup.CompressNone, backup.CompressGzip, backup.CompressZstd}[r.IntN(3)],
				ReadAhead:   []int64{0, 1, 4096, 256 << 10, 1 << 20}[r.IntN(5)],
				Workers:     r.IntN(5),
				Window:      []int{0, 1, 3, 64}[r.IntN(4)],
			}
			ro := backup.RestoreOptions{Workers: r.IntN(4)}
			t.Logf("backup %+v, restore workers %d", bo, ro.Workers)
			archive := filepath.Join(work, "nscap.tar")
			e.backupTo(t, archive, tree.Root, bo)
			dest := filepath.Join(work, "dest")
			e.restoreTo(t, archive, dest, false, ro)
			got := e.snapshot(t, dest)
			testutil.CheckSnapshots(t, fmt.Sprintf("seed %d: nscap backup -> nscap restore", s), src, got,
				testutil.CompareOptions{Fields: fields, IDs: e.ids(e.dstU, e.dstG)})
			testutil.CheckSparse(t, fmt.Sprintf("seed %d: nscap restore", s), got, tree.Sparse)

			plain := filepath.Join(work, "plain.tar")
			e.backupTo(t, plain, tree.Root, backup.Options{ReadAhead: bo.ReadAhead, Workers: bo.Workers})
			xdir := extractDir(t, work)
			x := extractors[r.IntN(len(extractors))]
			xdest := filepath.Join(xdir, x.name)
			e.extract(t, x, plain, xdest, true, tree)
			label := fmt.Sprintf("seed %d: nscap backup -> %s in %s", s, x.name, e.nsU)
			got = e.snapshot(t, xdest)
			testutil.CheckSnapshots(t, label, src, got,
				testutil.CompareOptions{Fields: fields, IDs: e.ids(e.nsU, e.nsG), Ignore: x.ignore})
			testutil.CheckSparse(t, label, got, tree.Sparse)
		})
	}
}

// errorsTo is a [backup.Reporter] that passes errors and warnings alike to
// fn: a round trip has neither.
type errorsTo func(string, error) error

func (f errorsTo) StartFile(string)                                     {}
func (f errorsTo) CompleteItem(string, backup.Action, backup.ItemStats) {}
func (f errorsTo) Warn(p string, err error)                             { _ = f(p, err) }
func (f errorsTo) Error(p string, err error) error                      { return f(p, err) }
