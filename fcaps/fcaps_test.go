package fcaps_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/sys"
	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/xattrfmt"
)

const capNetRaw = 13

// getcapLine is what `getcap -n` prints for path holding c.
func getcapLine(path string, c xattrfmt.FileCaps) string {
	s := path + " " + c.String()
	if c.Revision == xattrfmt.Revision3 && c.RootID != 0 {
		s += fmt.Sprintf(" [rootid=%d]", c.RootID)
	}
	return s
}

func writeFile(tb testing.TB, path string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		tb.Fatal(err)
	}
}

func rawCaps(tb testing.TB, path string) []byte {
	tb.Helper()
	buf := make([]byte, 64)
	n, err := syscall.Getxattr(path, fcaps.AttrName, buf)
	if err != nil {
		tb.Fatalf("getxattr %s: %v", path, err)
	}
	return buf[:n]
}

func TestRoundTrip(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "getcap", "setcap")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	tests := []struct {
		name     string
		caps     xattrfmt.FileCaps
		setcap   []string // the same value written by setcap
		wantText string
	}{
		{
			name:     "v2",
			caps:     xattrfmt.FileCaps{Revision: xattrfmt.Revision2, Effective: true, Permitted: 1<<capNetRaw | 1<<12},
			setcap:   []string{"cap_net_admin,cap_net_raw+ep"},
			wantText: "cap_net_admin,cap_net_raw=ep",
		},
		{
			name:     "v2-inheritable-high",
			caps:     xattrfmt.FileCaps{Revision: xattrfmt.Revision2, Permitted: 1 << 40, Inheritable: 1 << 21},
			setcap:   []string{"cap_checkpoint_restore+p cap_sys_admin+i"},
			wantText: "cap_sys_admin=i cap_checkpoint_restore+p",
		},
		{
			name:     "v3",
			caps:     xattrfmt.FileCaps{Revision: xattrfmt.Revision3, Effective: true, Permitted: 1 << capNetRaw, RootID: 100000},
			setcap:   []string{"-n", "100000", "cap_net_raw+ep"},
			wantText: "cap_net_raw=ep",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			oracle := p + ".setcap"
			writeFile(t, p)
			writeFile(t, oracle)
			if err := fcaps.Set(p, tc.caps); err != nil {
				t.Fatalf("Set: %v", err)
			}
			got, err := fcaps.Get(p)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if diff := cmp.Diff(tc.caps, got); diff != "" {
				t.Errorf("Get after Set (-want +got):\n%s", diff)
			}
			if got.String() != tc.wantText {
				t.Errorf("text = %q, want %q", got.String(), tc.wantText)
			}
			out, err := exec.Command("getcap", "-n", p).Output()
			if err != nil {
				t.Fatalf("getcap: %v", err)
			}
			if want := getcapLine(p, tc.caps); strings.TrimSpace(string(out)) != want {
				t.Errorf("getcap -n = %q, want %q", out, want)
			}
			if out, err := exec.Command("setcap", append(tc.setcap, oracle)...).CombinedOutput(); err != nil {
				t.Fatalf("setcap: %v: %s", err, out)
			}
			if a, b := rawCaps(t, p), rawCaps(t, oracle); !bytes.Equal(a, b) {
				t.Errorf("raw value = %x, setcap wrote %x", a, b)
			}
			raw, err := fcaps.GetRaw(oracle)
			if err != nil || !bytes.Equal(raw, rawCaps(t, oracle)) {
				t.Errorf("GetRaw = %x, %v; want %x", raw, err, rawCaps(t, oracle))
			}

			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fgot, err := fcaps.FGet(f)
			if err != nil || fgot != tc.caps {
				t.Errorf("FGet = %+v, %v; want %+v", fgot, err, tc.caps)
			}

			if err := fcaps.Remove(p); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			_, err = fcaps.Get(p)
			checkErr(t, "Get after Remove", err, fcaps.ErrNoCaps, syscall.ENODATA)
			err = fcaps.Remove(p)
			checkErr(t, "second Remove", err, fcaps.ErrNoCaps, syscall.ENODATA)
			if err := fcaps.FSet(f, tc.caps); err != nil {
				t.Fatalf("FSet: %v", err)
			}
			if got, err := fcaps.Get(p); err != nil || got != tc.caps {
				t.Errorf("Get after FSet = %+v, %v", got, err)
			}
			if err := fcaps.FRemove(f); err != nil {
				t.Fatalf("FRemove: %v", err)
			}
			err = fcaps.FRemove(f)
			checkErr(t, "second FRemove", err, fcaps.ErrNoCaps, syscall.ENODATA)
		})
	}
}

// checkErr fails unless err is an *fs.PathError matching every target.
func checkErr(tb testing.TB, what string, err error, targets ...error) {
	tb.Helper()
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		tb.Errorf("%s: error %v (%T) is not an *fs.PathError", what, err, err)
		return
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			tb.Errorf("%s: error %q does not match %v", what, err, target)
		}
	}
}

func TestRefuseNonRegular(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	target := filepath.Join(dir, "target")
	writeFile(t, target)
	v2 := xattrfmt.FileCaps{Revision: xattrfmt.Revision2, Effective: true, Permitted: 1 << capNetRaw}
	if err := fcaps.Set(target, v2); err != nil {
		t.Fatal(err)
	}
	before := rawCaps(t, target)

	mk := map[string]func(p string) error{
		"a symbolic link":    func(p string) error { return os.Symlink(target, p) },
		"a directory":        func(p string) error { return os.Mkdir(p, 0o755) },
		"a fifo":             func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"a character device": func(p string) error { return syscall.Mknod(p, syscall.S_IFCHR|0o644, 1<<8|3) },
		"a socket": func(p string) error {
			l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
			if err != nil {
				return err
			}
			l.SetUnlinkOnClose(false)
			return l.Close()
		},
	}
	for kind, create := range mk {
		t.Run(strings.TrimPrefix(kind, "a "), func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(kind, " ", "-"))
			if err := create(p); err != nil {
				t.Fatal(err)
			}
			ops := map[string]error{
				"Set":    fcaps.Set(p, v2),
				"Remove": fcaps.Remove(p),
			}
			_, ops["Get"] = fcaps.Get(p)
			for op, err := range ops {
				checkErr(t, op, err, fcaps.ErrNotRegular)
				if err != nil && !strings.Contains(err.Error(), "it is "+kind) {
					t.Errorf("%s: error %q does not say %q", op, err, kind)
				}
			}
			// Nothing was written through the path, whatever it is.
			buf := make([]byte, 64)
			if _, err := sys.Getxattr(p, fcaps.AttrName, buf, false); !errors.Is(err, syscall.ENODATA) {
				t.Errorf("lgetxattr %s after refused ops: %v, want ENODATA", p, err)
			}
		})
	}
	if after := rawCaps(t, target); !bytes.Equal(before, after) {
		t.Errorf("symlink target changed: %x, was %x", after, before)
	}

	// FSet refuses a non-regular descriptor too; FGet reads anything.
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	checkErr(t, "FSet on a directory", fcaps.FSet(d, v2), fcaps.ErrNotRegular)
	_, err = fcaps.FGet(d)
	checkErr(t, "FGet on a directory", err, fcaps.ErrNoCaps, syscall.ENODATA)
}

func TestUnreadable(t *testing.T) {
	testutil.RequireRoot(t)
	rfs := testutil.NewRawFS(t)
	dir := rfs.Dir

	// The kernel refuses to store a revision-1 value (or stray flags)
	// through setxattr, and since 6.18 the empty value too, so such
	// values can only come from elsewhere (an old kernel, debugfs):
	// they are planted raw.
	rev1 := []byte{0, 0, 0, 1, 0, 0x20, 0, 0, 0, 0, 0, 0}
	v1 := filepath.Join(dir, "v1")
	writeFile(t, v1)
	if err := syscall.Setxattr(v1, fcaps.AttrName, rev1, 0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("setxattr of a revision-1 value: %v, want EINVAL", err)
	}

	raw := map[string][]byte{
		"empty":       {},
		"v1":          rev1,
		"stray-flags": {1, 1, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"truncated":   {1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	}
	plant := map[string][]byte{}
	for name, v := range raw {
		p := filepath.Join(dir, name)
		if name != "v1" {
			writeFile(t, p)
		}
		plant[p] = v
	}
	testutil.NoErr(t, rfs.Plant(fcaps.AttrName, plant))
	for _, name := range []string{"empty", "v1", "stray-flags", "truncated"} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			_, err := fcaps.Get(p)
			checkErr(t, "Get", err, fcaps.ErrUnreadable, syscall.EINVAL)
			if err != nil && !strings.Contains(err.Error(), "present but the kernel refuses") {
				t.Errorf("Get error %q does not explain", err)
			}
			_, err = fcaps.GetRaw(p)
			checkErr(t, "GetRaw", err, fcaps.ErrUnreadable, syscall.EINVAL)
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			_, err = fcaps.FGet(f)
			checkErr(t, "FGet", err, fcaps.ErrUnreadable)
			if errors.Is(err, fcaps.ErrNoCaps) {
				t.Errorf("FGet error %q matches ErrNoCaps", err)
			}
		})
	}
}

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	err := &fs.PathError{Op: "getxattr", Path: "/x", Err: &fcaps.Error{Kind: fcaps.ErrNotVisible, Errno: syscall.EOVERFLOW, Reason: "r"}}
	if got, want := err.Error(), "getxattr /x: r (value too large for defined data type)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, fcaps.ErrNotVisible) || !errors.Is(err, syscall.EOVERFLOW) {
		t.Errorf("%v does not match both its sentinel and errno", err)
	}
	perm := &fs.PathError{Op: "setxattr", Path: "/x", Err: &fcaps.Error{Errno: syscall.EPERM, Reason: "r"}}
	if !errors.Is(perm, fs.ErrPermission) {
		t.Errorf("%v does not match fs.ErrPermission", perm)
	}
}

// runHelper re-executes the test binary in a new user namespace whose
// root is host uid root (map 0 root 65536) and returns its one line.
func runHelper(t *testing.T, root int, cmd string) string {
	t.Helper()
	c := exec.Command("/proc/self/exe")
	c.Env = append(os.Environ(), helperEnv+"="+cmd)
	c.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER,
		// Become uid 0 of the namespace (host uid root): without it the
		// child keeps host uid 0, unmapped there, and loses its caps at exec.
		Credential:  &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: root, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: root, Size: 65536}},
	}
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("helper %q: %v: %s", cmd, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestNamespaces reads and writes from inside user namespaces: a sibling
// that cannot see the rootid gets EOVERFLOW (ErrNotVisible), the owning
// namespace sees a plain revision 2, and a write of an unmapped rootid
// gets EINVAL (ErrRootIDNotMapped).
func TestNamespaces(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTool(t, "setcap")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	// The helpers run as host uid 100000 or 200000: let them reach dir.
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if os.Getenv("NSCAP_TEST_DIR") != "" && d == filepath.Clean(os.Getenv("NSCAP_TEST_DIR")) {
			break
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "v3")
	writeFile(t, p)
	if out, err := exec.Command("setcap", "-n", "100000", "cap_net_raw+ep", p).CombinedOutput(); err != nil {
		t.Fatalf("setcap: %v: %s", err, out)
	}
	owned := filepath.Join(dir, "owned")
	writeFile(t, owned)
	if err := os.Chown(owned, 200000, 200000); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		root int
		cmd  string
		want string // prefix of the helper's line
	}{
		{"sibling-get", 200000, "get " + p, "err ErrNotVisible,EOVERFLOW getxattr " + p + ": the capability belongs to another user namespace"},
		{"owner-get", 100000, "get " + p, "ok cap_net_raw=ep 2 0"},
		{"sibling-scan", 200000, "scan " + dir, "err ErrNotVisible,EOVERFLOW getxattr " + p + ": the capability belongs to another user namespace"},
		{"owner-scan", 100000, "scan " + dir, "ok cap_net_raw=ep 2 0"},
		{"set-unmapped-rootid", 200000, "set " + owned + " 4000000", "err ErrRootIDNotMapped,EINVAL setxattr " + owned + ": rootid 4000000 is not mapped"},
		{"set-mapped-rootid", 200000, "set " + owned + " 5", "ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := runHelper(t, tc.root, tc.cmd)
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("helper %q in namespace of %d:\n got %s\nwant %s…", tc.cmd, tc.root, got, tc.want)
			}
		})
	}
	// The mapped write landed as rootid 200005 on the host.
	got, err := fcaps.Get(owned)
	if err != nil || got.Revision != xattrfmt.Revision3 || got.RootID != 200005 {
		t.Errorf("host view of the namespaced write: %+v, %v; want revision 3 rootid 200005", got, err)
	}
}
