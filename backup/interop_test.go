package backup

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/internal/testutil"
)

// TestEquivalenceGNUTar checks, entry by entry, that nscap's archive of a
// rootfs mapped at 0:100000:65536 equals what GNU tar --xattrs
// --xattrs-include='*' stores when run inside that container's user
// namespace, where the kernel itself presents owners and caps relative to
// the container. Deliberate differences, normalised before comparing:
//   - member order: GNU tar follows readdir order, nscap sorts names, so
//     members are compared by name, and of a set of hard links the first
//     in each archive holds the content (compared through the link);
//   - nscap stores no user/group names (uname/gname: the rootfs's ids are
//     not host users) and no atime/ctime (they make archives
//     irreproducible and tar restores neither);
//   - the pax global header (nscap's comment record) is not a member.
func TestEquivalenceGNUTar(t *testing.T) {
	testutil.RequireTool(t, "tar")
	root := fixture(t, 100000)
	outDir := filepath.Join(filepath.Dir(root), "out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(outDir, 100000, 100000); err != nil {
		t.Fatal(err)
	}
	gnuPath := filepath.Join(outDir, "gnu.tar")
	out, err := inNS(t, 100000, "tar", "--xattrs", "--xattrs-include=*", "--format=posix", "-cf", gnuPath, "-C", root, ".")
	if err != nil {
		t.Fatalf("GNU tar in the namespace: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "socket ignored") {
		t.Logf("GNU tar said: %s", out)
	}
	gnuData, err := os.ReadFile(gnuPath)
	if err != nil {
		t.Fatal(err)
	}
	var ours bytes.Buffer
	if _, err := Write(context.Background(), &ours, root, Options{UIDMap: mustMap(t, "0:100000:65536")}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	want, _ := readEntries(t, bytes.NewReader(gnuData))
	got, _ := readEntries(t, &ours)
	if diff := cmp.Diff(normalize(want), normalize(got)); diff != "" {
		t.Errorf("nscap archive differs from GNU tar run in the namespace (-gnu +nscap):\n%s", diff)
	}
}

// normalize resolves hard links (each link member gets the content of the
// member holding it) and drops what the archives deliberately differ in.
func normalize(m map[string]entry) map[string]entry {
	out := make(map[string]entry, len(m))
	for name, e := range m {
		if e.Type == '1' {
			t := m[e.Linkname]
			e.Type, e.Size, e.Content, e.Linkname, e.Xattrs = '0', t.Size, t.Content, "", t.Xattrs
		}
		e.Comment = ""
		out[name] = e
	}
	return out
}

// TestInteropRestoreInOtherRange extracts an nscap archive of a rootfs
// mapped at 0:100000:65536 with GNU tar inside a fresh user namespace
// mapped at 0:200000:65536: the kernel scopes the namespace-relative caps
// to that namespace (getcap -n on the host: rootid 200000 for the
// container root's caps, 201000 for those of container uid 1000) and the
// owners land in the new range. tar -tvv and bsdtar -tv list the archive
// without complaint.
func TestInteropRestoreInOtherRange(t *testing.T) {
	testutil.RequireTool(t, "tar", "bsdtar", "getcap")
	root := fixture(t, 100000)
	work := filepath.Dir(root)
	arch := filepath.Join(work, "nscap.tar")
	if _, err := WriteFile(context.Background(), arch, root, Options{UIDMap: mustMap(t, "0:100000:65536")}); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	if err := os.Chmod(arch, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, argv := range [][]string{{"tar", "-tvvf", arch}, {"bsdtar", "-tvf", arch}} {
		cmd := exec.Command(argv[0], argv[1:]...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("%s: %v, stderr %q", strings.Join(argv, " "), err, stderr.String())
		}
	}

	dest := filepath.Join(work, "dest")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dest, 200000, 200000); err != nil {
		t.Fatal(err)
	}
	// A user namespace cannot mknod devices: leave them out.
	out, err := inNS(t, 200000, "tar", "--xattrs", "--xattrs-include=*", "--exclude=./dev/*", "-xpf", arch, "-C", dest)
	if err != nil {
		t.Fatalf("GNU tar extract in 0:200000:65536: %v\n%s", err, out)
	}
	getcap := func(rel string) string {
		out, err := exec.Command("getcap", "-n", filepath.Join(dest, rel)).CombinedOutput()
		if err != nil {
			t.Errorf("getcap %s: %v %s", rel, err, out)
		}
		return strings.TrimPrefix(strings.TrimSpace(string(out)), filepath.Join(dest, rel)+" ")
	}
	for rel, want := range map[string]string{
		"bin/ping":   "cap_net_raw=ep [rootid=200000]",
		"bin/ping6":  "cap_net_raw=ep [rootid=200000]",
		"bin/nested": "cap_net_raw=ep [rootid=201000]",
	} {
		if got := getcap(rel); got != want {
			t.Errorf("getcap -n %s = %q, want %q", rel, got, want)
		}
	}
	for rel, want := range map[string][2]int{
		"bin/ping": {200000, 200000}, "bin/nested": {201000, 201001}, "home/user": {201000, 201000}, "lib": {200000, 200000},
	} {
		fi, err := os.Lstat(filepath.Join(dest, rel))
		if err != nil {
			t.Error(err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := [2]int{int(st.Uid), int(st.Gid)}; got != want {
			t.Errorf("owner of %s = %v, want %v", rel, got, want)
		}
	}
	// The ACL names container uid 1000 / gid 1001: host 201000 / 201001.
	acl, err := exec.Command("getfacl", "-n", "-p", filepath.Join(dest, "etc/acl")).CombinedOutput()
	if err != nil || !strings.Contains(string(acl), "user:201000:rw-") || !strings.Contains(string(acl), "group:201001:r--") {
		t.Errorf("getfacl etc/acl: %v\n%s", err, acl)
	}
}

// TestXattrNamesInterop archives xattrs whose names need escaping in a pax
// keyword ("=", "%", a space, a non-ASCII letter): nscap's archive
// extracted by GNU tar, and GNU tar's and bsdtar's archives restored by
// nscap, give back exactly the names and values of the source file (bsdtar
// 3.6 itself restores its own archive with extra, still escaped, names).
func TestXattrNamesInterop(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "tar", "bsdtar")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(src, "f")
	if err := os.WriteFile(f, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"user.a=b": "1", "user.p%41": "2", "user.sp ace": "3", "user.é": "4", "user.plain": "5"}
	for n, v := range want {
		if err := syscall.Setxattr(f, n, []byte(v), 0); err != nil {
			t.Fatal(err)
		}
	}
	userXattrs := func(p string) map[string]string {
		t.Helper()
		buf := make([]byte, 4096)
		n, err := syscall.Listxattr(p, buf)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for name := range strings.SplitSeq(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
			if !strings.HasPrefix(name, "user.") {
				continue
			}
			v := make([]byte, 256)
			m, err := syscall.Getxattr(p, name, v)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = string(v[:m])
		}
		return out
	}
	run := func(argv ...string) {
		t.Helper()
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	mkdir := func(name string) string {
		t.Helper()
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}

	// nscap -> GNU tar.
	ours := filepath.Join(dir, "nscap.tar")
	if _, err := WriteFile(context.Background(), ours, src, Options{}); err != nil {
		t.Fatal(err)
	}
	gx := mkdir("gnu-x")
	run("tar", "--xattrs", "--xattrs-include=*", "-xf", ours, "-C", gx)
	if d := cmp.Diff(want, userXattrs(filepath.Join(gx, "f"))); d != "" {
		t.Errorf("GNU tar extraction of nscap's archive (-want +got):\n%s", d)
	}

	// GNU tar and bsdtar -> nscap.
	for _, tc := range []struct{ name, archive string }{
		{"gnu", filepath.Join(dir, "gnu.tar")},
		{"bsdtar", filepath.Join(dir, "bsd.tar")},
	} {
		if tc.name == "gnu" {
			run("tar", "--xattrs", "--xattrs-include=*", "-cf", tc.archive, "-C", src, "f")
		} else {
			run("bsdtar", "--xattrs", "-cf", tc.archive, "-C", src, "f")
		}
		dest := mkdir("from-" + tc.name)
		a, err := os.ReadFile(tc.archive)
		if err != nil {
			t.Fatal(err)
		}
		var errs []string
		if _, err := Restore(context.Background(), bytes.NewReader(a), dest, RestoreOptions{Reporter: funcs{err: collect(&errs)}}); err != nil || len(errs) > 0 {
			t.Fatalf("restore of the %s archive: %v %v", tc.name, err, errs)
		}
		if d := cmp.Diff(want, userXattrs(filepath.Join(dest, "f"))); d != "" {
			t.Errorf("nscap restore of the %s archive (-want +got):\n%s", tc.name, d)
		}
	}
}
