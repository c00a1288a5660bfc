package fcaps_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/sys"
	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/xattrfmt"
)

// TestSetRawFd writes encoded values through descriptors as a restore
// does: write-only (a file it created), read-only, O_PATH and a
// directory's, and checks that a refused
// write is explained exactly as Set explains it. As root the refusal is a
// revision-3 rootid the init namespace does not map ((uid_t)-1, probed:
// a kernel that took it skips); unprivileged it is the EPERM of a write
// without CAP_SETFCAP.
func TestSetRawFd(t *testing.T) {
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	root := os.Geteuid() == 0
	const unmapped = 1<<32 - 1
	v3 := func(rootid uint32) (xattrfmt.FileCaps, []byte) {
		c := xattrfmt.FileCaps{Revision: xattrfmt.Revision3, Effective: true, Permitted: 1 << capNetRaw, RootID: rootid}
		b, err := xattrfmt.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		return c, b
	}
	openPath := func(t *testing.T, p string) int {
		t.Helper()
		fd, err := sys.Openat(sys.AtFdcwd, p, sys.OPathNoFollow, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sys.Close(fd) })
		return fd
	}
	openRead := func(t *testing.T, p string) int {
		t.Helper()
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		return int(f.Fd())
	}

	openWrite := func(t *testing.T, p string) int {
		t.Helper()
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		return int(f.Fd())
	}

	t.Run("refused", func(t *testing.T) {
		p := filepath.Join(dir, "refused")
		writeFile(t, p)
		c, raw := v3(unmapped)
		if !root {
			c, raw = v3(0)
		}
		want := fcaps.Set(p, c)
		if want == nil {
			t.Skipf("the kernel took revision 3 with rootid %d on %s as uid %d: no refusal to explain", c.RootID, p, os.Geteuid())
		}
		for _, open := range []struct {
			name string
			fd   func(*testing.T, string) int
		}{{"O_RDONLY", openRead}, {"O_WRONLY", openWrite}, {"O_PATH", openPath}} {
			t.Run(open.name, func(t *testing.T) {
				err := fcaps.SetRawFd(open.fd(t, p), p, raw)
				if err == nil || err.Error() != want.Error() {
					t.Fatalf("SetRawFd(%s, %x) = %v,\nwant Set's %v", open.name, raw, err, want)
				}
				if root {
					checkErr(t, "SetRawFd(unmapped rootid)", err, fcaps.ErrRootIDNotMapped, syscall.EINVAL)
					if !strings.Contains(err.Error(), "rootid 4294967295 is not mapped") {
						t.Errorf("SetRawFd error %q does not name the rootid", err)
					}
				} else {
					checkErr(t, "SetRawFd(unprivileged)", err, fs.ErrPermission, syscall.EPERM)
					if !strings.Contains(err.Error(), "CAP_SETFCAP") {
						t.Errorf("SetRawFd error %q does not name CAP_SETFCAP", err)
					}
				}
			})
		}
		if _, err := fcaps.Get(p); !errors.Is(err, fcaps.ErrNoCaps) {
			t.Errorf("Get after the refused writes: %v, want ErrNoCaps", err)
		}
	})

	t.Run("undecodable", func(t *testing.T) {
		testutil.RequireRoot(t)
		p := filepath.Join(dir, "undecodable")
		writeFile(t, p)
		raw := []byte{0x00, 0x00, 0x00, 0x02, 0x01} // revision 2, truncated
		err := fcaps.SetRawFd(openRead(t, p), p, raw)
		if err == nil {
			t.Skipf("the kernel took the truncated value %x", raw)
		}
		checkErr(t, "SetRawFd(truncated)", err, syscall.EINVAL)
		if errors.Is(err, fcaps.ErrRootIDNotMapped) || !strings.Contains(err.Error(), "setxattr "+p+": the kernel refused the value as invalid") {
			t.Errorf("SetRawFd(%x) = %v, want the kernel's refusal of an invalid value", raw, err)
		}
	})

	t.Run("written", func(t *testing.T) {
		testutil.RequireRoot(t)
		p := filepath.Join(dir, "written")
		writeFile(t, p)
		d := filepath.Join(dir, "dir")
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		_, raw := v3(100000)
		for _, tc := range []struct {
			name string
			path string
			fd   func(*testing.T, string) int
		}{{"O_WRONLY", p, openWrite}, {"O_PATH", p, openPath}, {"directory", d, openRead}} {
			if err := fcaps.SetRawFd(tc.fd(t, tc.path), tc.path, raw); err != nil {
				t.Fatalf("SetRawFd(%s): %v", tc.name, err)
			}
			if got := rawCaps(t, tc.path); !bytes.Equal(got, raw) {
				t.Errorf("SetRawFd(%s) wrote %x, want %x", tc.name, got, raw)
			}
		}
	})
}
