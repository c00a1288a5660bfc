package sys_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/internal/sys"
	"github.com/nscap/nscap/internal/testutil"
)

func TestGetxattrat(t *testing.T) {
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	if !sys.HasXattrat() {
		if testutil.Strict() {
			t.Fatal("getxattrat(2) missing (needs Linux 6.13+)")
		}
		t.Skip("getxattrat(2) missing (needs Linux 6.13+)")
	}
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	val := []byte("hello")
	if err := syscall.Setxattr(p, "user.nscap", val, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	dfd, err := sys.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close(dfd)

	buf := make([]byte, 16)
	n, err := sys.Getxattrat(dfd, "f", "user.nscap", sys.AtSymlinkNofollow, buf)
	if err != nil || !bytes.Equal(buf[:n], val) {
		t.Errorf("Getxattrat = %q, %v; want %q", buf[:n], err, val)
	}
	if n, err := sys.Getxattrat(dfd, "f", "user.nscap", 0, nil); err != nil || n != len(val) {
		t.Errorf("Getxattrat length query = %d, %v; want %d", n, err, len(val))
	}
	if _, err := sys.Getxattrat(dfd, "f", "user.nscap", 0, buf[:2]); !errors.Is(err, syscall.ERANGE) {
		t.Errorf("Getxattrat into 2 bytes: %v, want ERANGE", err)
	}
	// AT_SYMLINK_NOFOLLOW reads the link itself (which has no user.* xattr).
	if _, err := sys.Getxattrat(dfd, "l", "user.nscap", sys.AtSymlinkNofollow, buf); !errors.Is(err, syscall.ENODATA) {
		t.Errorf("Getxattrat of a symlink with AT_SYMLINK_NOFOLLOW: %v, want ENODATA", err)
	}
	if n, err := sys.Getxattrat(dfd, "l", "user.nscap", 0, buf); err != nil || !bytes.Equal(buf[:n], val) {
		t.Errorf("Getxattrat following the symlink = %q, %v", buf[:n], err)
	}
	if _, err := sys.Getxattrat(dfd, "missing", "user.nscap", 0, buf); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("Getxattrat of a missing name: %v, want ENOENT", err)
	}
	n, err = sys.GetxattratZ(dfd, []byte("f\x00"), []byte("user.nscap\x00"), sys.AtSymlinkNofollow, buf)
	if err != nil || !bytes.Equal(buf[:n], val) {
		t.Errorf("GetxattratZ = %q, %v", buf[:n], err)
	}
	if _, err := sys.GetxattratZ(dfd, []byte("f"), []byte("user.nscap\x00"), 0, buf); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("GetxattratZ without NUL: %v, want EINVAL", err)
	}
	names, err := sys.Listxattrat(dfd, "f", sys.AtSymlinkNofollow)
	if err != nil || !slices.Contains(names, "user.nscap") {
		t.Errorf("Listxattrat = %q, %v", names, err)
	}
	names2, err := sys.Listxattr(p, false)
	if err != nil || !cmp.Equal(names, names2) {
		t.Errorf("Listxattr = %q, %v; Listxattrat gave %q", names2, err, names)
	}
	// O_PATH descriptors are refused by the f*xattr calls but not through
	// their /proc/self/fd link.
	pfd, err := sys.OpenPath(p)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close(pfd)
	if _, err := sys.Fgetxattr(pfd, "user.nscap", buf); !errors.Is(err, syscall.EBADF) {
		t.Errorf("Fgetxattr on O_PATH: %v, want EBADF", err)
	}
	got, err := sys.GetxattrAll(sys.ProcFdPath(pfd), "user.nscap", true)
	if err != nil || !bytes.Equal(got, val) {
		t.Errorf("GetxattrAll via /proc/self/fd = %q, %v", got, err)
	}
}

func TestXattrAll(t *testing.T) {
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 1000) // larger than the first guess
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	if err := sys.Fsetxattr(fd, "user.big", big, sys.XattrCreate); err != nil {
		t.Fatal(err)
	}
	if err := sys.Fsetxattr(fd, "user.big", big, sys.XattrCreate); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("XATTR_CREATE twice: %v, want EEXIST", err)
	}
	got, err := sys.FgetxattrAll(fd, "user.big")
	if err != nil || !bytes.Equal(got, big) {
		t.Errorf("FgetxattrAll = %d bytes, %v", len(got), err)
	}
	var names []string
	for i := range 40 {
		n := "user.name-long-enough-to-overflow-the-first-buffer-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		names = append(names, n)
		if err := sys.Setxattr(p, n, nil, 0, false); err != nil {
			t.Fatal(err)
		}
	}
	list, err := sys.Flistxattr(fd)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range append(names, "user.big") {
		if !slices.Contains(list, n) {
			t.Errorf("Flistxattr misses %q", n)
		}
	}
	if err := sys.Fremovexattr(fd, "user.big"); err != nil {
		t.Error(err)
	}
	if _, err := sys.FgetxattrAll(fd, "user.big"); !errors.Is(err, syscall.ENODATA) {
		t.Errorf("after Fremovexattr: %v, want ENODATA", err)
	}
	if n, err := sys.Fgetxattr(fd, "user.big", make([]byte, 8)); n != 0 || err == nil {
		t.Errorf("Fgetxattr error = %d, %v; want 0, ENODATA", n, err)
	}
}

func TestReadDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want := map[string]fs.FileMode{}
	for i := range 700 { // several getdents calls with a small buffer
		n := filepath.Join(dir, "file-with-a-long-name-"+string(rune('a'+i%26))+string(rune('A'+i/26)))
		if err := os.WriteFile(n, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		want[filepath.Base(n)] = 0
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	want["sub"] = fs.ModeDir
	if err := os.Symlink("sub", filepath.Join(dir, "lnk")); err != nil {
		t.Fatal(err)
	}
	want["lnk"] = fs.ModeSymlink
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	want["fifo"] = fs.ModeNamedPipe

	fd, err := sys.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close(fd)
	got := map[string]fs.FileMode{}
	buf := make([]byte, 1024)
	for {
		n, err := sys.Getdents(fd, buf)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		sys.ParseDirents(buf[:n], func(nameZ []byte, typ uint8, ino uint64) bool {
			if nameZ[len(nameZ)-1] != 0 || ino == 0 {
				t.Errorf("entry %q ino %d: bad terminator or inode", nameZ, ino)
			}
			m, ok := sys.DirentType(typ)
			if !ok {
				st, err := sys.FstatatNoFollow(fd, string(nameZ[:len(nameZ)-1]))
				if err != nil {
					t.Fatal(err)
				}
				m = sys.ModeType(st.Mode)
			}
			got[string(nameZ[:len(nameZ)-1])] = m
			return true
		})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadDir (-want +got):\n%s", diff)
	}
	// OpenDir and OpenDirBeneath refuse symlinks.
	if _, err := sys.OpenDir(filepath.Join(dir, "lnk")); err == nil {
		t.Error("OpenDir followed a symlink")
	}
	if _, err := sys.OpenDirBeneath(fd, "lnk"); !errors.Is(err, syscall.ELOOP) && !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("OpenDirBeneath(lnk): %v, want ELOOP or ENOTDIR", err)
	}
	if _, err := sys.OpenDirBeneath(fd, "lnk/."); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("OpenDirBeneath(lnk/.): %v, want ELOOP", err)
	}
	if _, err := sys.OpenDirBeneath(fd, "../"+filepath.Base(dir)); !errors.Is(err, syscall.EXDEV) {
		t.Errorf("OpenDirBeneath(..): %v, want EXDEV", err)
	}
	sfd, err := sys.OpenDirBeneath(fd, "sub")
	if err != nil {
		t.Fatal(err)
	}
	sys.Close(sfd)
}

// TestRawScanCalls checks the calls of the scanner's hot loop, raw and
// announced alike, against their plain counterparts.
func TestRawScanCalls(t *testing.T) {
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	if !sys.HasXattrat() {
		if testutil.Strict() {
			t.Fatal("getxattrat(2) missing (needs Linux 6.13+)")
		}
		t.Skip("getxattrat(2) missing (needs Linux 6.13+)")
	}
	val := []byte("value")
	for i := range 300 {
		p := filepath.Join(dir, "f"+strconv.Itoa(i))
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			if err := syscall.Setxattr(p, "user.nscap", val, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub", filepath.Join(dir, "lnk")); err != nil {
		t.Fatal(err)
	}
	attrZ := []byte("user.nscap\x00")
	for _, raw := range []bool{false, true} {
		t.Run("raw="+strconv.FormatBool(raw), func(t *testing.T) {
			fd, err := sys.OpenDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer sys.Close(fd)
			// GetdentsRaw lists what Getdents lists.
			list := func(getdents func(int, []byte) (int, error)) []string {
				dfd, err := sys.OpenDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				defer sys.CloseRaw(dfd)
				var names []string
				buf := make([]byte, 512)
				for {
					n, err := getdents(dfd, buf)
					if err != nil {
						t.Fatal(err)
					}
					if n == 0 {
						break
					}
					sys.ParseDirents(buf[:n], func(nameZ []byte, _ uint8, _ uint64) bool {
						names = append(names, string(nameZ[:len(nameZ)-1]))
						return true
					})
				}
				slices.Sort(names)
				return names
			}
			plain := list(sys.Getdents)
			if len(plain) != 302 {
				t.Fatalf("Getdents listed %d names, want 302", len(plain))
			}
			if diff := cmp.Diff(plain, list(sys.GetdentsRaw)); diff != "" {
				t.Errorf("GetdentsRaw (-Getdents +GetdentsRaw):\n%s", diff)
			}
			buf := make([]byte, 16)
			for i := range 300 {
				name := "f" + strconv.Itoa(i)
				n, errno := sys.ProbeXattratZ(fd, []byte(name+"\x00"), attrZ, sys.AtSymlinkNofollow, buf, raw)
				wantN, wantErr := sys.Getxattrat(fd, name, "user.nscap", sys.AtSymlinkNofollow, buf[:0])
				if errno != 0 {
					if !errors.Is(wantErr, errno) {
						t.Fatalf("ProbeXattratZ(%s) = %v, Getxattrat = %v", name, errno, wantErr)
					}
					continue
				}
				if wantErr != nil || n != wantN || !bytes.Equal(buf[:n], val) {
					t.Fatalf("ProbeXattratZ(%s) = %q; Getxattrat length %d, %v", name, buf[:n], wantN, wantErr)
				}
				n2, errno := sys.ProbeLgetxattrZ([]byte(filepath.Join(dir, name)+"\x00"), attrZ, buf, raw)
				if errno != 0 || !bytes.Equal(buf[:n2], val) {
					t.Fatalf("ProbeLgetxattrZ(%s) = %q, %v", name, buf[:n2], errno)
				}
			}
			if _, errno := sys.ProbeLgetxattrZ([]byte(filepath.Join(dir, "f1")+"\x00"), attrZ, buf, raw); errno != syscall.ENODATA {
				t.Errorf("ProbeLgetxattrZ(f1) = %v, want ENODATA", errno)
			}
			if _, errno := sys.ProbeLgetxattrZ([]byte(filepath.Join(dir, "lnk")+"\x00"), attrZ, buf, raw); errno != syscall.ENODATA {
				t.Errorf("ProbeLgetxattrZ(lnk) = %v, want ENODATA (the link itself)", errno)
			}
			if _, errno := sys.ProbeXattratZ(fd, []byte("missing\x00"), attrZ, 0, buf, raw); errno != syscall.ENOENT {
				t.Errorf("ProbeXattratZ(missing) = %v, want ENOENT", errno)
			}
			if _, errno := sys.ProbeXattratZ(fd, []byte("f0\x00"), attrZ, 0, buf[:2], raw); errno != syscall.ERANGE {
				t.Errorf("ProbeXattratZ into 2 bytes = %v, want ERANGE", errno)
			}
			// OpenDirAtZ opens one component, never a symlink nor a path.
			sfd, err := sys.OpenDirAtZ(fd, []byte("sub\x00"), raw)
			if err != nil {
				t.Fatalf("OpenDirAtZ(sub): %v", err)
			}
			if err := sys.CloseRaw(sfd); err != nil {
				t.Errorf("CloseRaw: %v", err)
			}
			if err := sys.CloseRaw(sfd); !errors.Is(err, syscall.EBADF) {
				t.Errorf("CloseRaw of a closed fd: %v, want EBADF", err)
			}
			if _, err := sys.OpenDirAtZ(fd, []byte("lnk\x00"), raw); !errors.Is(err, syscall.ELOOP) && !errors.Is(err, syscall.ENOTDIR) {
				t.Errorf("OpenDirAtZ(lnk): %v, want ELOOP or ENOTDIR", err)
			}
			if _, err := sys.OpenDirAtZ(fd, []byte("f0\x00"), raw); !errors.Is(err, syscall.ENOTDIR) {
				t.Errorf("OpenDirAtZ(file): %v, want ENOTDIR", err)
			}
			for _, bad := range []string{"sub/.\x00", "sub", "\x00", "", "../x\x00", ".\x00", "..\x00"} {
				if _, err := sys.OpenDirAtZ(fd, []byte(bad), raw); !errors.Is(err, syscall.EINVAL) {
					t.Errorf("OpenDirAtZ(%q): %v, want EINVAL", bad, err)
				}
			}
		})
	}
}

func TestProcFdPath(t *testing.T) {
	t.Parallel()
	for _, fd := range []int{0, 7, 10, 1234567} {
		if got, want := sys.ProcFdPath(fd), "/proc/self/fd/"+strconv.Itoa(fd); got != want {
			t.Errorf("ProcFdPath(%d) = %q, want %q", fd, got, want)
		}
	}
}

// FuzzParseDirents feeds arbitrary bytes as a getdents64 buffer: no panic,
// every name handed out is NUL-terminated and has no other NUL.
func FuzzParseDirents(f *testing.F) {
	rec := func(name string, typ byte) []byte {
		n := 19 + len(name) + 1
		n = (n + 7) &^ 7
		b := make([]byte, n)
		b[0] = 1
		b[16] = byte(n)
		b[17] = byte(n >> 8)
		b[18] = typ
		copy(b[19:], name)
		return b
	}
	f.Add(append(append(rec(".", 4), rec("..", 4)...), rec("file", 8)...))
	f.Add(rec("a-longer-name-that-spans", 10))
	f.Add([]byte{})
	f.Add(make([]byte, 19))
	f.Fuzz(func(t *testing.T, b []byte) {
		sys.ParseDirents(b, func(nameZ []byte, _ uint8, _ uint64) bool {
			if len(nameZ) == 0 || nameZ[len(nameZ)-1] != 0 || bytes.IndexByte(nameZ, 0) != len(nameZ)-1 {
				t.Fatalf("bad name %q", nameZ)
			}
			return true
		})
	})
}

func TestOpenInRoot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for _, d := range []string{"root/etc", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"root/etc/f", "etc/f"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"root/abs": "/etc", "root/up": "../../..", "root/l": "etc/f"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	rfd, err := sys.Openat(sys.AtFdcwd, root, sys.ODirPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close(rfd)
	want, err := sys.Lstat(filepath.Join(root, "etc/f"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"abs/f", "up/etc/f", "/etc/f", "../../etc/f", "l"} {
		flags := sys.OPathNoFollow
		if p == "l" {
			flags &^= syscall.O_NOFOLLOW
		}
		fd, err := sys.OpenInRoot(rfd, p, flags)
		if err != nil {
			t.Errorf("OpenInRoot(%q): %v", p, err)
			continue
		}
		st, err := sys.Fstat(fd)
		sys.Close(fd)
		if err != nil || st.Dev != want.Dev || st.Ino != want.Ino {
			t.Errorf("OpenInRoot(%q) opened another file than root/etc/f (%v)", p, err)
		}
	}
	// O_NOFOLLOW|O_PATH opens a final symlink itself.
	fd, err := sys.OpenInRoot(rfd, "l", sys.OPathNoFollow)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sys.Fstat(fd)
	sys.Close(fd)
	if err != nil || sys.ModeType(st.Mode) != fs.ModeSymlink {
		t.Errorf("OpenInRoot(l, O_NOFOLLOW): %v, mode %v; want the link itself", err, sys.ModeType(st.Mode))
	}
	// Magic links are refused.
	if fd, err := sys.OpenInRoot(rfd, "/proc/self/root", sys.OPathNoFollow&^syscall.O_NOFOLLOW); err == nil {
		sys.Close(fd)
		t.Error("OpenInRoot(/proc/self/root) in a root without /proc succeeded")
	}
	self, err := sys.Openat(sys.AtFdcwd, "/proc/self", sys.ODirPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close(self)
	if fd, err := sys.OpenInRoot(self, "root/etc", sys.ODirPath); !errors.Is(err, syscall.ELOOP) {
		if err == nil {
			sys.Close(fd)
		}
		t.Errorf("OpenInRoot through the magic link /proc/self/root: %v, want ELOOP", err)
	}
	if st, err := sys.StatFollow(filepath.Join(root, "l")); err != nil || st.Ino != want.Ino {
		t.Errorf("StatFollow(root/l) = %v, want root/etc/f (the link is relative)", err)
	}
}
