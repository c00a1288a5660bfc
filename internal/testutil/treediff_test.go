package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// genOptions returns the options of a catalogue tree the caller can make:
// as root every kind of entry, owners and ACL ids in the range host, and
// caps; otherwise what an unprivileged owner can make (ACLs naming any
// id, no caps, no devices, its own owner).
func genOptions(seed int64, host int64) GenOptions {
	o := GenOptions{
		Seed: seed, Catalogue: true, SparseSize: 1 << 20, ACLs: true,
		HostUID: Shift(host), HostGID: Shift(host),
	}
	if IsRoot() {
		o.Owners, o.Devices, o.Trusted, o.Caps = true, true, true, true
	} else {
		o.OwnerReadable = true
	}
	return o
}

func requireTreeTools(t *testing.T, dir string) {
	t.Helper()
	RequireOracle(t, "getfacl", "setfacl", "getcap", "setcap")
	RequireXattrFS(t, dir)
}

// TestGenerateDeterministic: the same seed gives the same tree (every
// field, times included), another seed a different one.
func TestGenerateDeterministic(t *testing.T) {
	t.Parallel()
	base := TempDir(t)
	requireTreeTools(t, base)
	a := Generate(t, filepath.Join(base, "a"), genOptions(7, 100000))
	b := Generate(t, filepath.Join(base, "b"), genOptions(7, 100000))
	c := Generate(t, filepath.Join(base, "c"), genOptions(8, 100000))
	sa, sb, sc := TakeSnapshot(t, a.Root), TakeSnapshot(t, b.Root), TakeSnapshot(t, c.Root)
	all := CompareOptions{Fields: FieldsAll | FieldMTime}
	if d := Compare(sa, sb, all); len(d) != 0 {
		t.Errorf("two trees of seed 7 differ: %v", d)
	}
	if d := Compare(sa, sc, all); len(d) == 0 {
		t.Errorf("trees of seeds 7 and 8 are the same")
	}
	if a.Entries < 60 || len(a.Sparse) != 4 {
		t.Errorf("catalogue: %d entries, %d sparse files", a.Entries, len(a.Sparse))
	}
	// What the catalogue promises is there.
	for rel, want := range map[string]string{
		"bin/suid": "file 4755", "bin/both": "file 6755", "modes/d1777": "dir 1777",
		"modes/d2775": "dir 2775", "special/fifo": "fifo 0640", "links/dangling": "symlink 0777",
	} {
		e := sa[rel]
		if got := fmt.Sprintf("%s %04o", e.Type, e.Mode); got != want {
			t.Errorf("%s = %s, want %s", rel, got, want)
		}
	}
	if got := sa["links/three-a"].HardLink; !cmp.Equal(got, []string{"links/sub/three-b", "links/three-a", "links/three-c"}) {
		t.Errorf("hardlink group of links/three-a = %q", got)
	}
	if got := sa["acl/dir"].ACL; !strings.Contains(strings.Join(got, ","), "default:user:100033:r-x") {
		t.Errorf("getfacl of acl/dir: %q", got)
	}
	if IsRoot() {
		if got := sa["bin/nested"].Caps.String(); got != "cap_net_admin,cap_net_raw=ep [rootid=101000]" {
			t.Errorf("getcap of bin/nested = %q", got)
		}
		if got := sa["special/loop0"]; got.Type != "block" || got.Major != 7 || got.UID < 100000 {
			t.Errorf("special/loop0 = %+v", got)
		}
	}
	for s := range BoundarySizes {
		rel := fmt.Sprintf("sizes/s%d", BoundarySizes[s])
		if sa[rel].Size != BoundarySizes[s] {
			t.Errorf("%s has size %d", rel, sa[rel].Size)
		}
	}
}

// TestCompareReportsEveryField changes one property of each of several
// entries of a copy and checks that exactly those are reported, by path.
func TestCompareReportsEveryField(t *testing.T) {
	t.Parallel()
	base := TempDir(t)
	requireTreeTools(t, base)
	src := Generate(t, filepath.Join(base, "src"), genOptions(3, 100000))
	dst := Generate(t, filepath.Join(base, "dst"), genOptions(3, 100000))
	p := func(rel string) string { return filepath.Join(dst.Root, rel) }
	run := func(argv ...string) {
		t.Helper()
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%q: %v: %s", argv, err, out)
		}
	}
	// keepTimes runs change on rel and gives rel (and its directory)
	// back their times, so that only the property changed differs.
	keepTimes := func(rel string, change func()) {
		t.Helper()
		var st, dst unix.Stat_t
		existed := unix.Lstat(p(rel), &st) == nil
		NoErr(t, unix.Lstat(filepath.Dir(p(rel)), &dst))
		change()
		if existed && unix.Lstat(p(rel), new(unix.Stat_t)) == nil {
			NoErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, p(rel), []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW))
		}
		NoErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Dir(p(rel)), []unix.Timespec{dst.Atim, dst.Mtim}, 0))
	}
	flip := func(rel string, off int64) {
		f, err := os.OpenFile(p(rel), os.O_RDWR, 0)
		NoErr(t, err)
		b := make([]byte, 1)
		_, err = f.ReadAt(b, off)
		NoErr(t, err)
		b[0] ^= 0xff
		_, err = f.WriteAt(b, off)
		NoErr(t, err)
		NoErr(t, f.Close())
	}
	want := []string{}
	expect := func(s ...string) { want = append(want, s...) }

	// A byte in the second 256 KiB chunk: the bug that started it all.
	keepTimes("sizes/s262145", func() { flip("sizes/s262145", 256<<10) })
	expect("sizes/s262145 content")
	keepTimes("sizes/s513", func() { NoErr(t, os.Truncate(p("sizes/s513"), 512)) })
	expect("sizes/s513 content", "sizes/s513 size")
	keepTimes("modes/f0600", func() { NoErr(t, unix.Chmod(p("modes/f0600"), 0o640)) })
	expect("modes/f0600 mode")
	keepTimes("bin/suid", func() { NoErr(t, unix.Chmod(p("bin/suid"), 0o755)) })
	expect("bin/suid mode")
	keepTimes("links/rel", func() {
		NoErr(t, os.Remove(p("links/rel")))
		NoErr(t, os.Symlink("../sizes/s512", p("links/rel")))
		if IsRoot() {
			var st unix.Stat_t
			NoErr(t, unix.Lstat(filepath.Join(src.Root, "links/rel"), &st))
			NoErr(t, os.Lchown(p("links/rel"), int(st.Uid), int(st.Gid)))
		}
	})
	expect("links/rel symlink")
	keepTimes("links/three-c", func() {
		b, err := os.ReadFile(p("links/three-c"))
		NoErr(t, err)
		var st unix.Stat_t
		NoErr(t, unix.Lstat(p("links/three-c"), &st))
		NoErr(t, os.Remove(p("links/three-c")))
		NoErr(t, os.WriteFile(p("links/three-c"), b, 0o600))
		NoErr(t, os.Lchown(p("links/three-c"), int(st.Uid), int(st.Gid)))
		NoErr(t, unix.Chmod(p("links/three-c"), st.Mode&0o7777))
	})
	expect("links/sub/three-b hardlinks", "links/three-a hardlinks", "links/three-c hardlinks")
	keepTimes("xattr/small", func() { NoErr(t, unix.Lsetxattr(p("xattr/small"), "user.a", []byte("2"), 0)) })
	keepTimes("xattr/large", func() { NoErr(t, unix.Lremovexattr(p("xattr/large"), "user.big")) })
	expect("xattr/large user xattr", "xattr/small user xattr")
	keepTimes("modes/d0700/f", func() { NoErr(t, os.Remove(p("modes/d0700/f"))) })
	expect("modes/d0700/f missing")
	keepTimes("sizes/extra", func() { NoErr(t, os.WriteFile(p("sizes/extra"), nil, 0o644)) })
	expect("sizes/extra extra")
	keepTimes("special/fifo", func() {
		NoErr(t, os.Remove(p("special/fifo")))
		NoErr(t, os.WriteFile(p("special/fifo"), nil, 0o640))
	})
	expect("special/fifo type")
	NoErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, p("sizes/s0"), []unix.Timespec{{Sec: 5}, {Sec: 5}}, 0))
	expect("sizes/s0 mtime")
	keepTimes("acl/file", func() { run("setfacl", "-m", "u:100077:r", p("acl/file")) })
	expect("acl/file acl")
	if IsRoot() {
		keepTimes("sizes/s1", func() { NoErr(t, os.Lchown(p("sizes/s1"), 100001, 100002)) })
		expect("sizes/s1 owner")
		keepTimes("special/null", func() {
			var st unix.Stat_t
			NoErr(t, unix.Lstat(p("special/null"), &st))
			NoErr(t, os.Remove(p("special/null")))
			NoErr(t, unix.Mknod(p("special/null"), st.Mode, int(unix.Mkdev(1, 5))))
			NoErr(t, os.Lchown(p("special/null"), int(st.Uid), int(st.Gid)))
			NoErr(t, unix.Chmod(p("special/null"), st.Mode&0o7777))
		})
		expect("special/null device")
		keepTimes("xattr/trusted", func() { NoErr(t, unix.Lsetxattr(p("xattr/trusted"), "trusted.nscap", []byte("x"), 0)) })
		expect("xattr/trusted trusted xattr")
		// A hardlinked file: both names report it.
		keepTimes("bin/ping", func() { run("setcap", "-n", "100005", "cap_net_raw=ep", p("bin/ping")) })
		expect("bin/ping caps", "bin/ping6 caps")
	}
	sort.Strings(want)

	diffs := Compare(TakeSnapshot(t, src.Root), TakeSnapshot(t, dst.Root), CompareOptions{Fields: FieldsAll | FieldMTime})
	var got []string
	for _, d := range diffs {
		got = append(got, d.Path+" "+d.What)
	}
	sort.Strings(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("differences (-want +got):\n%s\nall: %v", diff, diffs)
	}

	// An Ignore of "." covers the root only, unless it is a Tree one.
	for _, tree := range []bool{false, true} {
		var mtimes []string
		for _, d := range Compare(TakeSnapshot(t, src.Root), TakeSnapshot(t, dst.Root), CompareOptions{
			Fields: FieldMTime,
			Ignore: []Ignore{{Pattern: ".", Tree: tree, Fields: FieldMTime, Why: "test"}},
		}) {
			if d.What == "mtime" {
				mtimes = append(mtimes, d.Path)
			}
		}
		if want := map[bool]int{false: 1, true: 0}[tree]; len(mtimes) != want {
			t.Errorf("mtimes reported with the root's ignored (Tree %v): %q, want %d", tree, mtimes, want)
		}
	}

	// Ignored subtrees and unchecked fields are not reported.
	diffs = Compare(TakeSnapshot(t, src.Root), TakeSnapshot(t, dst.Root), CompareOptions{
		Fields: FieldContent | FieldSize,
		Ignore: []Ignore{
			{Pattern: "sizes", Tree: true, Why: "changed above"},
			{Pattern: "special", Tree: true, Why: "changed above"},
			{Pattern: "links", Tree: true, Why: "changed above"},
			{Pattern: "modes/d0*", Tree: true, Fields: FieldContent, Why: "only the content: the removed file is still missing"},
			{Pattern: "sizes", Fields: FieldMTime, Why: "the directory only, not below (mtime is not compared anyway)"},
		},
	})
	var got2 []string
	for _, d := range diffs {
		got2 = append(got2, d.String())
	}
	if want := []string{"modes/d0700/f: missing (file)"}; !cmp.Equal(want, got2) {
		t.Errorf("with sizes, special and links ignored, and the content of modes/d0*: %q, want %q", got2, want)
	}
}

// TestCompareTranslatesIDs: a tree made in the range 200000 equals one
// made in 100000 once the ids are shifted: owners, ACL qualifiers and cap
// rootids (the container root's and the nested root's); a translation to
// the host root shows caps as revision 2, as getcap does. Unprivileged,
// the trees differ in their ACL qualifiers only (the owner is the
// creator, there are no caps).
func TestCompareTranslatesIDs(t *testing.T) {
	t.Parallel()
	base := TempDir(t)
	requireTreeTools(t, base)
	a := TakeSnapshot(t, Generate(t, filepath.Join(base, "a"), genOptions(11, 100000)).Root)
	b := TakeSnapshot(t, Generate(t, filepath.Join(base, "b"), genOptions(11, 200000)).Root)
	shift := Shift(100000)
	if !IsRoot() {
		// Only the ids of the range move, not the creator's.
		shift = func(id uint32) uint32 {
			if id >= 100000 {
				return id + 100000
			}
			return id
		}
	}
	opts := CompareOptions{Fields: FieldsAll | FieldMTime, IDs: IDs{UID: shift, GID: shift}}
	if d := Compare(a, b, opts); len(d) != 0 {
		t.Errorf("shifted by 100000: %v", d)
	}
	kinds := map[string]bool{}
	for _, d := range Compare(a, b, CompareOptions{Fields: FieldsAll}) {
		kinds[d.What] = true
	}
	want := map[string]bool{"acl": true}
	if IsRoot() {
		want["owner"], want["caps"] = true, true
	}
	if !cmp.Equal(want, kinds) {
		t.Errorf("without the translation: differences of kinds %v, want %v", kinds, want)
	}
	if !IsRoot() {
		return
	}
	// Only the rootids shifted: the owners and ACLs differ, the caps not.
	kinds = map[string]bool{}
	for _, d := range Compare(a, b, CompareOptions{Fields: FieldsAll, IDs: IDs{RootID: Shift(100000)}}) {
		kinds[d.What] = true
	}
	if kinds["caps"] || !kinds["owner"] {
		t.Errorf("rootids alone translated: got %v", kinds)
	}

	down := a.Translate(IDs{UID: Shift(-100000), GID: Shift(-100000)})
	for rel, want := range map[string]string{"bin/ping": "cap_net_raw=ep", "bin/nested": "cap_net_admin,cap_net_raw=ep [rootid=1000]"} {
		if got := down[rel].Caps.String(); got != want {
			t.Errorf("%s translated to host ids: caps %q, want %q", rel, got, want)
		}
	}
}

func TestTranslateACLLine(t *testing.T) {
	t.Parallel()
	ids := IDs{UID: Shift(10), GID: Shift(20)}
	for in, want := range map[string]string{
		"user::rw-":               "user::rw-",
		"user:5:r--":              "user:15:r--",
		"group:5:r--":             "group:25:r--",
		"mask::r-x":               "mask::r-x",
		"other::---":              "other::---",
		"default:user:7:rwx":      "default:user:17:rwx",
		"default:group:7:rwx":     "default:group:27:rwx",
		"default:group::r-x":      "default:group::r-x",
		"user:4294967290:r--":     "user:4:r--",
		"garbage:that:is:strange": "garbage:that:is:strange",
	} {
		if got := translateACLLine(in, ids); got != want {
			t.Errorf("translateACLLine(%q) = %q, want %q", in, got, want)
		}
	}
}

// recTB records the errors of a checker under test.
type recTB struct {
	testing.TB
	errs []string
}

func (r *recTB) Helper() {}
func (r *recTB) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestCheckSparse: the generated sparse files pass; copies written with
// their zeros fail, each named; CheckTree says the contents are equal.
func TestCheckSparse(t *testing.T) {
	t.Parallel()
	base := TempDir(t)
	RequireXattrFS(t, base)
	o := GenOptions{Seed: 5, Catalogue: true, SparseSize: 8 << 20, Random: 40, OwnerReadable: true}
	src := Generate(t, filepath.Join(base, "src"), o)
	if len(src.Sparse) < 4 {
		t.Fatalf("%d sparse files", len(src.Sparse))
	}
	rec := &recTB{TB: t}
	CheckSparse(rec, "source", TakeSnapshot(t, src.Root), src.Sparse)
	if len(rec.errs) != 0 {
		t.Errorf("the generated sparse files: %q", rec.errs)
	}
	full := filepath.Join(base, "full")
	NoErr(t, os.Mkdir(full, 0o755))
	NoErr(t, os.Mkdir(filepath.Join(full, "sparse"), 0o755))
	for _, f := range src.Sparse[:4] {
		b, err := os.ReadFile(filepath.Join(src.Root, f.Rel))
		NoErr(t, err)
		NoErr(t, os.WriteFile(filepath.Join(full, f.Rel), b, 0o644))
	}
	rec = &recTB{TB: t}
	CheckSparse(rec, "copy", TakeSnapshot(t, full), src.Sparse[:4])
	if len(rec.errs) != 4 || !strings.Contains(strings.Join(rec.errs, "\n"), "sparse/holes: ") {
		t.Errorf("copies with their zeros: want all 4 reported, got %q", rec.errs)
	}
	rec = &recTB{TB: t}
	CheckSparse(rec, "gone", Snapshot{}, src.Sparse[:1])
	if len(rec.errs) != 1 {
		t.Errorf("a missing sparse file: %q", rec.errs)
	}
	s := TakeSnapshot(t, src.Root)
	c := TakeSnapshot(t, full)
	for _, f := range src.Sparse[:4] {
		if s[f.Rel].SHA256 != c[f.Rel].SHA256 || s[f.Rel].Size != c[f.Rel].Size {
			t.Errorf("%s: the copy's content differs", f.Rel)
		}
	}
}

func TestSelfToHostOutsideNamespaces(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("/proc/self/uid_map")
	NoErr(t, err)
	if strings.Fields(string(b))[2] != "4294967295" {
		t.Skip("in a user namespace")
	}
	ids := SelfToHost(t)
	if ids.UID(1234) != 1234 || ids.GID(99999) != 99999 {
		t.Errorf("SelfToHost is not the identity in the initial namespace")
	}
}
