package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/backup"
	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
)

// mktreeScript finds the benchmark kit's rootfs generator: $NSCAP_BENCH_KIT,
// else shared/bench beside the checkout (as CI lays it) or beside one of its
// parents. Without the kit the test is skipped, strict or not: it is a
// fixture generator, not a privilege, and the other restore tests cover
// the same ground on trees they build themselves.
func mktreeScript(t *testing.T) string {
	t.Helper()
	if kit := os.Getenv("NSCAP_BENCH_KIT"); kit != "" {
		return filepath.Join(kit, "mktree.py")
	}
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(filepath.Dir(dir), "shared", "bench", "mktree.py")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		if filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
	}
	t.Skip("no shared/bench/mktree.py beside the checkout (set NSCAP_BENCH_KIT)")
	return ""
}

// TestRoundTripMktree is the restore issue's acceptance round trip: a
// mktree rootfs mapped at 0:100000:65536, with caps of the container root
// (rootid 100000), of a nested namespace's root (101000) and ACLs, backed
// up namespace-relative and restored at 0:200000:65536. getcap -r -n shows
// every rootid translated, owners and ACL ids move by 100000, contents,
// hardlinks and symlinks are intact, and Verify is clean; then a changed
// cap, owner and byte are each reported by path.
func TestRoundTripMktree(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "python3", "getcap", "setcap", "setfacl", "getfacl")
	script := mktreeScript(t)
	base := testutil.TempDir(t)
	testutil.RequireXattrFS(t, base)
	src := filepath.Join(base, "src")
	run(t, "python3", script, "--files", "2000", "--data-scale", "0.05", "--out", src, "--uid-base", "100000")

	// ACLs with container ids, on a file and as a directory default.
	aclFile := firstRegular(t, src)
	run(t, "setfacl", "-m", "u:100033:r,g:100044:rx", aclFile)
	run(t, "setfacl", "-d", "-m", "u:100055:rwx", filepath.Join(src, "etc"))

	ctx := context.Background()
	m100 := mustMap(t, "0:100000:65536")
	m200 := mustMap(t, "0:200000:65536")
	archive := filepath.Join(base, "rootfs.tar.zst")
	// mktree also plants host-scoped (revision 2) caps, which do not
	// belong to the container: skip them (they are outside the map).
	if _, err := backup.WriteFile(ctx, archive, src, backup.Options{UIDMap: m100, ForeignCaps: backup.ForeignCapsSkip, Compression: backup.CompressZstd}); err != nil {
		t.Fatalf("backup: %v", err)
	}

	dest := filepath.Join(base, "dest")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := backup.Restore(ctx, f, dest, backup.RestoreOptions{UIDMap: m200}); err != nil {
		t.Fatalf("restore: %v", err)
	}

	// Capabilities: the container's and the nested namespace's rootids
	// move by 100000; the host-scoped ones were skipped.
	var want []string
	for _, l := range getcapLines(t, src) {
		switch {
		case strings.HasSuffix(l, "[rootid=100000]"):
			want = append(want, strings.Replace(l, "[rootid=100000]", "[rootid=200000]", 1))
		case strings.HasSuffix(l, "[rootid=101000]"):
			want = append(want, strings.Replace(l, "[rootid=101000]", "[rootid=201000]", 1))
		case strings.Contains(l, "[rootid="):
			t.Fatalf("mktree planted an unexpected rootid: %s", l)
		}
	}
	if len(want) == 0 {
		t.Fatal("mktree planted no namespaced caps")
	}
	if diff := cmp.Diff(want, getcapLines(t, dest)); diff != "" {
		t.Errorf("getcap -r -n of the restored tree (-want +got):\n%s", diff)
	}

	// Owners, contents, symlinks and hardlinks.
	srcTree, dstTree := describe(t, src), describe(t, dest)
	for rel, s := range srcTree {
		s.uid += 100000
		s.gid += 100000
		srcTree[rel] = s
	}
	if diff := cmp.Diff(srcTree, dstTree, cmp.AllowUnexported(entryInfo{})); diff != "" {
		t.Errorf("restored tree (-want +got):\n%s", diff)
	}

	// ACL ids.
	rel, _ := filepath.Rel(src, aclFile)
	acl := run(t, "getfacl", "-n", "-c", filepath.Join(dest, rel))
	for _, w := range []string{"user:200033:r--", "group:200044:r-x"} {
		if !strings.Contains(acl, w) {
			t.Errorf("ACL of %s lacks %q:\n%s", rel, w, acl)
		}
	}
	if acl := run(t, "getfacl", "-n", "-c", "-d", filepath.Join(dest, "etc")); !strings.Contains(acl, "user:200055:rwx") {
		t.Errorf("default ACL of etc lacks user:200055:rwx:\n%s", acl)
	}

	verify := func() []backup.Difference {
		t.Helper()
		if _, err := f.Seek(0, 0); err != nil {
			t.Fatal(err)
		}
		d, err := backup.Verify(ctx, f, dest, backup.VerifyOptions{UIDMap: m200})
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		return d
	}
	if d := verify(); len(d) != 0 {
		t.Fatalf("verify after restore: %d differences, first %v", len(d), d[0])
	}

	// A changed cap, owner and byte are each reported, by path.
	files := capFiles(t, dest)
	capPath, ownPath, bytePath := files[0], files[1], firstRegular(t, filepath.Join(dest, "usr"))
	run(t, "setcap", "-n", "200000", "cap_sys_admin=ep", capPath)
	if err := os.Lchown(ownPath, 200007, -1); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bytePath)
	if err != nil || len(data) == 0 {
		t.Fatalf("read %s: %v (%d bytes)", bytePath, err, len(data))
	}
	data[0] ^= 0xff
	if err := os.WriteFile(bytePath, data, 0); err != nil {
		t.Fatal(err)
	}
	got := map[string][]backup.DiffKind{}
	for _, d := range verify() {
		got[d.Path] = append(got[d.Path], d.Kind)
	}
	for path, kind := range map[string]backup.DiffKind{capPath: backup.DiffCaps, ownPath: backup.DiffOwner, bytePath: backup.DiffContent} {
		if !containsKind(got[path], kind) {
			t.Errorf("verify did not report %s for %s; got %v", kind, path, got)
		}
	}
}

type entryInfo struct {
	mode     fs.FileMode
	uid, gid uint32
	sum      [32]byte // regular files
	target   string   // symlinks
	links    string   // the first name of a hardlinked inode
	size     int64
}

// describe maps every entry below root (relative name) to what a restore
// must preserve.
func describe(t *testing.T, root string) map[string]entryInfo {
	t.Helper()
	out := map[string]entryInfo{}
	first := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := entryInfo{mode: fi.Mode(), uid: st.Uid, gid: st.Gid}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.sum, e.size = sha256.Sum256(b), fi.Size()
			if st.Nlink > 1 {
				if n, ok := first[st.Ino]; ok {
					e.links = n
				} else {
					first[st.Ino], e.links = rel, rel
				}
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			if e.target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func getcapLines(t *testing.T, root string) []string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(run(t, "getcap", "-r", "-n", root)), "\n") {
		if l != "" {
			lines = append(lines, strings.TrimPrefix(l, root))
		}
	}
	sort.Strings(lines)
	return lines
}

// capFiles lists the regular files under root carrying namespaced caps.
func capFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	for _, l := range getcapLines(t, root) {
		if strings.Contains(l, "[rootid=") {
			files = append(files, root+strings.Fields(l)[0])
		}
	}
	if len(files) < 2 {
		t.Fatalf("want at least 2 files with caps under %s, got %d", root, len(files))
	}
	return files
}

func firstRegular(t *testing.T, root string) string {
	t.Helper()
	var found string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || found != "" {
			return fs.SkipAll
		}
		if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
			if st := fi.Sys().(*syscall.Stat_t); st.Nlink == 1 {
				found = p
				return fs.SkipAll
			}
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no regular file under %s", root)
	}
	return found
}

func containsKind(ks []backup.DiffKind, k backup.DiffKind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

func mustMap(t *testing.T, s string) userns.Map {
	t.Helper()
	m, err := userns.ParseMap(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var out, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out.String()
}
