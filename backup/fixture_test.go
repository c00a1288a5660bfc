package backup

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nscap/nscap/internal/tarfmt"
	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

// rawACL encodes an access ACL with the given named user and group.
func rawACL(user, group uint32) []byte {
	ents := [][3]uint32{
		{xattrfmt.ACLUserObj, 6, xattrfmt.ACLUndefinedID},
		{xattrfmt.ACLUser, 6, user},
		{xattrfmt.ACLGroupObj, 4, xattrfmt.ACLUndefinedID},
		{xattrfmt.ACLGroup, 4, group},
		{xattrfmt.ACLMask, 6, xattrfmt.ACLUndefinedID},
		{xattrfmt.ACLOther, 4, xattrfmt.ACLUndefinedID},
	}
	b := binary.LittleEndian.AppendUint32(nil, xattrfmt.ACLVersion)
	for _, e := range ents {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

func mustMap(tb testing.TB, s string) userns.Map {
	tb.Helper()
	m, err := userns.ParseMap(s)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// fixture builds, under a fresh directory, a rootfs of a container mapped
// at 0:base:65536: every file type, owners base+N, caps of the container
// root and of a nested namespace (container uid 1000), ACLs, user xattrs,
// hard links, a big file, nanosecond mtimes. It returns the root.
func fixture(tb testing.TB, base uint32) string { //nolint:unparam // the base is part of what the tree is; tests may pick another
	tb.Helper()
	testutil.RequireRoot(tb)
	root := filepath.Join(testutil.TempDir(tb), "rootfs")
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	testutil.RequireXattrFS(tb, filepath.Dir(root))
	// Let the namespaces of the interop tests (other uids) traverse it.
	must(os.Chmod(filepath.Dir(root), 0o755))
	for _, d := range []string{"", "bin", "etc", "dev", "run", "usr/lib", "home/user", "empty"} {
		must(os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	write := func(rel string, data []byte, mode os.FileMode) {
		must(os.WriteFile(filepath.Join(root, rel), data, mode))
		must(unix.Chmod(filepath.Join(root, rel), uint32(mode)))
	}
	write("bin/ping", bytes.Repeat([]byte("ping"), 1000), 0o755)
	write("bin/nested", []byte("nested\n"), 0o755)
	write("bin/suid", []byte("suid\n"), 0o4755)
	write("etc/acl", []byte("acl\n"), 0o664)
	write("etc/empty", nil, 0o644)
	write("etc/xattr", []byte("x\n"), 0o600)
	big := make([]byte, 3<<20+123)
	for i := range big {
		big[i] = byte(i * 7)
	}
	write("usr/lib/big", big, 0o644)
	must(os.Link(filepath.Join(root, "bin/ping"), filepath.Join(root, "bin/ping6")))
	must(os.Symlink("usr/lib", filepath.Join(root, "lib")))
	must(os.Symlink("/nonexistent/target", filepath.Join(root, "etc/dangling")))
	must(unix.Mkfifo(filepath.Join(root, "run/fifo"), 0o600))
	must(unix.Mknod(filepath.Join(root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(filepath.Join(root, "dev/loop0"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 0))))
	l, err := net.Listen("unix", filepath.Join(root, "run/sock"))
	must(err)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	must(l.Close())

	// Owners: container root everywhere, a user (1000) for home/user.
	must(filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(base), int(base))
	}))
	must(os.Chown(filepath.Join(root, "home/user"), int(base+1000), int(base+1000)))
	must(os.Chown(filepath.Join(root, "bin/nested"), int(base+1000), int(base+1001)))
	// chown cleared the setuid bit; mknod obeyed the umask.
	must(unix.Chmod(filepath.Join(root, "bin/suid"), 0o4755))
	must(os.Chmod(filepath.Join(root, "dev/null"), 0o666))

	// xattrs after chown (chown clears security.capability).
	must(unix.Setxattr(filepath.Join(root, "bin/ping"), XattrCaps, testutil.RawCaps(3, base), 0))
	must(unix.Setxattr(filepath.Join(root, "bin/nested"), XattrCaps, testutil.RawCaps(3, base+1000), 0))
	must(unix.Setxattr(filepath.Join(root, "etc/acl"), XattrACLAccess, rawACL(base+1000, base+1001), 0))
	must(unix.Setxattr(filepath.Join(root, "home/user"), XattrACLDefault, rawACL(base+1000, base+1001), 0))
	must(unix.Setxattr(filepath.Join(root, "etc/xattr"), "user.comment", []byte("hello\x00binary\xff"), 0))
	must(unix.Setxattr(filepath.Join(root, "home/user"), "user.dir", []byte("d"), 0))

	// Nanosecond mtimes, set last (children before parents).
	ts := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	var paths []string
	must(filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		paths = append(paths, p)
		return err
	}))
	for i := len(paths) - 1; i >= 0; i-- {
		tv := []unix.Timespec{unix.NsecToTimespec(ts.UnixNano()), unix.NsecToTimespec(ts.Add(time.Duration(i) * time.Second).UnixNano())}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], tv, unix.AT_SYMLINK_NOFOLLOW))
	}
	return root
}

// entry is the comparable content of one tar member.
type entry struct {
	Name     string
	Type     byte
	UID, GID int
	Mode     int64
	ModTime  time.Time
	Linkname string
	Devmajor int64
	Devminor int64
	Size     int64
	Xattrs   map[string]string
	Content  string // sha-free: the content itself for small files, its length marker for large ones
	Comment  string
}

// readEntries reads an archive into entries (global headers skipped) and
// returns the global comment.
func readEntries(tb testing.TB, r io.Reader) (map[string]entry, string) {
	tb.Helper()
	tr := tar.NewReader(r)
	out := map[string]entry{}
	var global string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			global = h.PAXRecords[tarfmt.CommentRecord]
			continue
		}
		e := entry{
			Name: h.Name, Type: h.Typeflag, UID: h.Uid, GID: h.Gid, Mode: h.Mode, ModTime: h.ModTime.UTC(),
			Linkname: h.Linkname, Devmajor: h.Devmajor, Devminor: h.Devminor, Size: h.Size, Comment: h.PAXRecords[tarfmt.CommentRecord],
		}
		for k, v := range h.PAXRecords {
			if len(k) > len(tarfmt.SchilyXattrPrefix) && k[:len(tarfmt.SchilyXattrPrefix)] == tarfmt.SchilyXattrPrefix {
				if e.Xattrs == nil {
					e.Xattrs = map[string]string{}
				}
				e.Xattrs[k[len(tarfmt.SchilyXattrPrefix):]] = v
			}
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			tb.Fatal(err)
		}
		e.Content = string(data)
		out[h.Name] = e
	}
	return out, global
}

// inNS runs argv as root of a fresh user namespace whose uid and gid maps
// are 0:base:65536 (as a container runtime would set it up), returning
// its combined output.
func inNS(tb testing.TB, base uint32, argv ...string) ([]byte, error) {
	tb.Helper()
	testutil.RequireUserNS(tb)
	cmd := exec.Command(argv[0], argv[1:]...)
	ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(base), Size: 65536}}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: ids,
		GidMappings: ids,
		Credential:  &syscall.Credential{Uid: 0, Gid: 0},
	}
	return cmd.CombinedOutput()
}
