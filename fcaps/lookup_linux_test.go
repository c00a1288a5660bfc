package fcaps

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
)

// lookupTree makes, in a new directory, the tree of issue 12: host/f, a
// file outside the container, and rootfs, a container's root where the
// container's root user planted rootfs/usr/bin -> <dir>/host (an absolute
// link to a host directory), plus links that stay inside (rootfs/sbin ->
// usr/sbin, rootfs/abs -> /usr/sbin, rootfs/up -> ../../.. climbing past
// the root) and rootfs<dir>/host/f, what the planted link names inside
// the container. hostlink -> host is a link outside the root. When owner
// is not the caller, host/f and everything in rootfs belong to owner.
func lookupTree(tb testing.TB, owner int) (dir string) {
	tb.Helper()
	dir = testutil.TempDir(tb)
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"host", "rootfs/usr/sbin", "rootfs" + dir + "/host", "rootfs/host"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	for _, f := range []string{"host/f", "rootfs/usr/sbin/f", "rootfs" + dir + "/host/f", "rootfs/host/f"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("#!/bin/true\n"), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	if owner != os.Geteuid() {
		if err := os.Chown(filepath.Join(dir, "host/f"), owner, owner); err != nil {
			tb.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"rootfs/usr/bin":    filepath.Join(dir, "host"),
		"rootfs/sbin":       "usr/sbin",
		"rootfs/abs":        "/usr/sbin",
		"rootfs/up":         "../../..",
		"rootfs/usr/sbin/l": "f",
		"hostlink":          "host",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			tb.Fatal(err)
		}
	}
	if owner != os.Geteuid() {
		if err := filepath.WalkDir(rootfs, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, owner, owner)
		}); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// sameFile reports whether f is the file at path (lstat).
func sameFile(tb testing.TB, f *File, path string) bool {
	tb.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		tb.Fatal(err)
	}
	return f.st.Dev == st.Dev && f.st.Ino == st.Ino
}

func TestLookupOpen(t *testing.T) {
	dir := lookupTree(t, os.Geteuid())
	rootfs := filepath.Join(dir, "rootfs")
	root, err := OpenRoot(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Close() })
	// The root of a process that shares the caller's: only paths written
	// below /proc/self/root are resolved in it.
	self, err := OpenRoot("/proc/self/root")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = self.Close() })
	if !self.top || root.top {
		t.Fatalf("OpenRoot: /proc/self/root top %v, %s top %v", self.top, rootfs, root.top)
	}
	none := Lookup{}
	in := Lookup{Root: root}
	confined := Lookup{Root: root, Confine: true}
	p := func(rel string) string { return dir + "/" + rel } // not cleaned
	symlinkErr := func(link string) string {
		return link + " is a symbolic link: refusing to follow it"
	}
	tests := []struct {
		name    string
		lookup  Lookup
		path    string
		want    string // the file found (lstat), or ""
		wantErr error
		wantMsg string // in the error
	}{
		{name: "plain", lookup: none, path: p("rootfs/usr/sbin/f"), want: p("rootfs/usr/sbin/f")},
		{name: "planted link refused", lookup: none, path: p("rootfs/usr/bin/f"), wantErr: ErrSymlink, wantMsg: symlinkErr(p("rootfs/usr/bin"))},
		{name: "relative link refused", lookup: none, path: p("rootfs/sbin/f"), wantErr: ErrSymlink, wantMsg: symlinkErr(p("rootfs/sbin"))},
		{name: "final link opened as itself", lookup: none, path: p("rootfs/usr/sbin/l"), want: p("rootfs/usr/sbin/l")},
		{name: "dot-dot without links", lookup: none, path: p("rootfs/usr/../usr/sbin/./f"), want: p("rootfs/usr/sbin/f")},
		{name: "trailing slash on a file", lookup: none, path: p("rootfs/usr/sbin/f/"), wantErr: syscall.ENOTDIR},
		{name: "missing", lookup: none, path: p("rootfs/nothing/f"), wantErr: syscall.ENOENT},
		{name: "file as a directory", lookup: none, path: p("host/f/g"), wantErr: syscall.ENOTDIR},
		{name: "empty", lookup: none, path: "", wantErr: syscall.ENOENT},
		{name: "root: planted link resolved inside", lookup: in, path: p("rootfs/usr/bin/f"), want: p("rootfs" + dir + "/host/f")},
		{name: "root: relative link", lookup: in, path: p("rootfs/sbin/f"), want: p("rootfs/usr/sbin/f")},
		{name: "root: absolute link", lookup: in, path: p("rootfs/abs/f"), want: p("rootfs/usr/sbin/f")},
		{name: "root: link climbing out stops at the root", lookup: in, path: p("rootfs/up/host/f"), want: p("rootfs/host/f")},
		{name: "root: dot-dot stops at the root", lookup: in, path: p("rootfs/usr/../../../host/f"), want: p("rootfs/host/f")},
		{name: "root: final link opened as itself", lookup: in, path: p("rootfs/sbin/l"), want: p("rootfs/usr/sbin/l")},
		{name: "root: outside walked without links", lookup: in, path: p("host/f"), want: p("host/f")},
		{name: "root: outside link refused", lookup: in, path: p("hostlink/f"), wantErr: ErrSymlink, wantMsg: symlinkErr(p("hostlink"))},
		{name: "root: reached by the walk", lookup: in, path: p("host/../rootfs/sbin/f"), want: p("rootfs/usr/sbin/f")},
		{name: "root: the root itself", lookup: in, path: rootfs, want: rootfs},
		{name: "confined: outside refused", lookup: confined, path: p("host/f"), wantErr: ErrOutsideRoot, wantMsg: "outside the root " + rootfs},
		{name: "confined: reached by the walk", lookup: confined, path: p("host/../rootfs/usr/bin/f"), want: p("rootfs" + dir + "/host/f")},
		{name: "caller's root: not reached by the walk", lookup: Lookup{Root: self}, path: p("rootfs/usr/bin/f"), wantErr: ErrSymlink},
		{name: "caller's root: written below it", lookup: Lookup{Root: self}, path: "/proc/self/root" + p("rootfs/sbin/f"), want: p("rootfs/usr/sbin/f")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := tc.lookup.Open(tc.path)
			if tc.wantErr != nil {
				if f != nil {
					_ = f.Close()
				}
				if !errors.Is(err, tc.wantErr) || !strings.Contains(fmt.Sprint(err), tc.wantMsg) {
					t.Fatalf("Open(%s) = %v, want %v with %q", tc.path, err, tc.wantErr, tc.wantMsg)
				}
				var pe *fs.PathError
				if !errors.As(err, &pe) || pe.Path != tc.path {
					t.Errorf("Open(%s) = %#v, want an *fs.PathError naming the path", tc.path, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%s): %v", tc.path, err)
			}
			defer func() { _ = f.Close() }()
			if !sameFile(t, f, tc.want) {
				t.Errorf("Open(%s) found another file than %s", tc.path, tc.want)
			}
		})
	}

	// Relative paths start at the working directory, whose own path is
	// not checked; a relative root is matched against them as written.
	t.Chdir(dir)
	if _, err := none.Open("rootfs/usr/bin/f"); !errors.Is(err, ErrSymlink) || !strings.Contains(err.Error(), symlinkErr("rootfs/usr/bin")) {
		t.Errorf("Open(rootfs/usr/bin/f) = %v, want ErrSymlink naming rootfs/usr/bin", err)
	}
	rel, err := OpenRoot("./rootfs/")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rel.Close() }()
	for _, path := range []string{"rootfs/usr/bin/f", "./rootfs//usr/bin/f", p("rootfs/usr/bin/f")} {
		f, err := Lookup{Root: rel, Confine: true}.Open(path)
		if err != nil {
			t.Errorf("Open(%s) in ./rootfs/: %v", path, err)
			continue
		}
		if !sameFile(t, f, p("rootfs"+dir+"/host/f")) {
			t.Errorf("Open(%s) in ./rootfs/ found another file than the container's", path)
		}
		_ = f.Close()
	}
	t.Chdir(rootfs)
	f, err := Lookup{Root: root}.Open("usr/bin/f") // the walk starts at the root
	if err != nil || !sameFile(t, f, p("rootfs"+dir+"/host/f")) {
		t.Errorf("Open(usr/bin/f) from the root = %v, want the container's file", err)
	}
	if f != nil {
		_ = f.Close()
	}
}

func TestLookupGet(t *testing.T) {
	dir := lookupTree(t, os.Geteuid())
	f, err := Lookup{}.Open(filepath.Join(dir, "rootfs/usr/sbin/l"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Get(); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Get of a symlink = %v, want ErrNotRegular", err)
	}
	if f.Type() != fs.ModeSymlink {
		t.Errorf("Type = %v, want a symlink", f.Type())
	}
	g, err := Lookup{}.Open(filepath.Join(dir, "host/f"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = g.Close() }()
	if uid, gid := g.Owner(); uid != uint32(os.Geteuid()) || gid != uint32(os.Getegid()) {
		t.Errorf("Owner = %d, %d; want %d, %d", uid, gid, os.Geteuid(), os.Getegid())
	}
	testutil.RequireXattrFS(t, dir)
	if _, err := g.Get(); !errors.Is(err, ErrNoCaps) {
		t.Errorf("Get of a file without caps = %v, want ErrNoCaps", err)
	}
}

// TestSetRemoveNoSymlinks checks the planted link of issue 12 against
// Set, Remove and a Setter, directly and through the helper: refused, the
// host file left without caps (getcap is the oracle); resolved in the
// root, the container's file gets them.
func TestSetRemoveNoSymlinks(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTool(t, "getcap")
	// Files owned by the container's root: the owner check of a helper
	// would not catch the planted link; the lookup must.
	dir := lookupTree(t, 100000)
	testutil.RequireXattrFS(t, dir)
	testutil.Traversable(t, dir)
	hostF, inside, sbin := filepath.Join(dir, "host/f"), filepath.Join(dir, "rootfs"+dir+"/host/f"), filepath.Join(dir, "rootfs/usr/sbin/f")
	planted := filepath.Join(dir, "rootfs/usr/bin/f")

	m, err := userns.ParseMap("0:100000:65536")
	if err != nil {
		t.Fatal(err)
	}
	direct := NewSetter(SetterOptions{Helper: HelperNever})
	helper := NewSetter(SetterOptions{Helper: HelperAlways, UIDMap: m, GIDMap: m})
	t.Cleanup(func() {
		_ = direct.Close()
		if err := helper.Close(); err != nil {
			t.Error(err)
		}
	})
	check := func(step string, want map[string]string) {
		t.Helper()
		for p, w := range want {
			if got := getcapN(t, p); got != w {
				t.Errorf("%s: getcap -n %s = %q, want %q", step, p, got, w)
			}
		}
		if got := getcapN(t, hostF); got != "" {
			t.Fatalf("%s: the host file %s has caps %q", step, hostF, got)
		}
	}
	for _, err := range []error{Set(planted, v3(100000)), Remove(planted), direct.Set(planted, v3(100000)), helper.Set(planted, v3(100000)), helper.Remove(planted)} {
		if !errors.Is(err, ErrSymlink) || !strings.Contains(err.Error(), filepath.Join(dir, "rootfs/usr/bin")+" is a symbolic link") {
			t.Errorf("write through the planted link = %v, want ErrSymlink naming it", err)
		}
	}
	check("refused", map[string]string{inside: ""})

	root, err := OpenRoot(filepath.Join(dir, "rootfs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Close() })
	open := func(l Lookup, path string) *File {
		t.Helper()
		f, err := l.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		return f
	}
	in := Lookup{Root: root, Confine: true}
	if err := direct.SetFile(open(in, planted), v3(100000)); err != nil {
		t.Fatal(err)
	}
	check("direct in the root", map[string]string{inside: "cap_net_raw=ep rootid=100000"})
	if err := helper.RemoveFile(open(in, planted)); err != nil {
		t.Fatal(err)
	}
	check("helper remove in the root", map[string]string{inside: ""})
	// The helper finds the file again from the root's name, from the
	// directory the walk reached, or by its physical path.
	if err := helper.SetFile(open(in, planted), v3(101000)); err != nil {
		t.Fatal(err)
	}
	if err := helper.SetFile(open(in, filepath.Join(dir, "host/../rootfs/sbin/f")), v3(100000)); err != nil {
		t.Fatal(err)
	}
	check("helper in the root", map[string]string{inside: "cap_net_raw=ep rootid=101000", sbin: "cap_net_raw=ep rootid=100000"})
	if err := helper.Remove(sbin); err != nil {
		t.Fatal(err)
	}
	check("helper remove by path", map[string]string{sbin: ""})

	// A file swapped after the lookup: the helper refuses another inode.
	f := open(in, filepath.Join(dir, "rootfs/sbin/f"))
	if err := os.Rename(sbin, sbin+".old"); err != nil {
		t.Fatal(err)
	}
	capFile(t, dir, "rootfs/usr/sbin/f", 100000, 100000, nil)
	if err := helper.SetFile(f, v3(100000)); err == nil || !strings.Contains(err.Error(), "file replaced") {
		t.Errorf("helper SetFile after a swap = %v, want a refusal", err)
	}
	check("swapped", map[string]string{sbin: "", sbin + ".old": ""})
}
