package testutil

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// CapAttr is the xattr that file capabilities live in.
const CapAttr = "security.capability"

// rawFSSize is the size of the (sparse) image of a [RawFS]: room for the
// few thousand small files of the largest tree a test builds on one.
const rawFSSize = 64 << 20

// RawFS is a small ext4 filesystem of its own for one test, in an image
// file, loop-mounted at Dir, whose xattrs [RawFS.Plant] writes byte for
// byte with debugfs(8), below the kernel.
//
// Tests need values that no setxattr(2) stores: revision 1, flag bits
// other than the effective bit, a wrong size, and the empty value, which
// kernels before 6.18 stored unchecked and newer ones refuse with EINVAL
// (kernel-semantics.md §1). Such values only come from elsewhere (an old
// kernel, a raw disk edit): debugfs edits the unmounted image, so every
// kernel gets the same bytes on disk, and Plant reads them back to prove
// it. A test builds its tree under Dir with ordinary calls (files, owners,
// modes, valid caps), then plants the raw values last.
type RawFS struct {
	// Dir is where the filesystem is mounted: an empty directory (mkfs's
	// lost+found is removed) owned by root, mode 0755.
	Dir   string
	image string
	work  string // the image's directory, for debugfs's value files
	seq   int
}

// RequireRawFS skips (or, when strict, fails) unless [NewRawFS] can work
// here: it needs root (mount(2) of a loop device) and mkfs.ext4, debugfs
// (e2fsprogs), mount and umount.
func RequireRawFS(tb testing.TB) {
	tb.Helper()
	if !IsRoot() {
		missing(tb, "planting raw xattr values loop-mounts an ext4 image: needs root (euid %d)", os.Geteuid())
	}
	RequireTool(tb, "mkfs.ext4", "debugfs", "mount", "umount")
}

// NewRawFS creates a [RawFS] for the test under [TempDir] and unmounts it
// at cleanup. It skips (or, when strict, fails) as [RequireRawFS] does,
// and also when the kernel or the container refuses to loop-mount the
// image, with mount's message.
func NewRawFS(tb testing.TB) *RawFS {
	tb.Helper()
	RequireRawFS(tb)
	work := TempDir(tb)
	r, err := MountRawFS(work, filepath.Join(work, "mnt"))
	var me *mountError
	if errors.As(err, &me) {
		missing(tb, "cannot loop-mount an ext4 image: %v", err)
	}
	NoErr(tb, err)
	tb.Cleanup(func() {
		if err := r.Close(); err != nil {
			tb.Error(err)
		}
	})
	return r
}

// mountError is a failed mount of the image: the system cannot, rather
// than the test went wrong.
type mountError struct{ err error }

func (e *mountError) Error() string { return e.err.Error() }
func (e *mountError) Unwrap() error { return e.err }

// MountRawFS is [NewRawFS] without a test: it makes the image in the
// directory work and mounts it at dir, which it creates. The caller
// calls [RawFS.Close]. It is for callers that cannot fail a test
// themselves, such as testscript commands.
func MountRawFS(work, dir string) (*RawFS, error) {
	r := &RawFS{Dir: dir, image: filepath.Join(work, "rawfs.img"), work: work}
	f, err := os.OpenFile(r.image, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	err = f.Truncate(rawFSSize)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	// 256-byte inodes keep small xattrs in the inode, as on a default
	// ext4; -N leaves room for trees of a few thousand entries.
	if err := run("mkfs.ext4", "-q", "-F", "-I", "256", "-N", "16384", "-L", "nscap-rawfs", r.image); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	if err := r.mount(); err != nil {
		return nil, err
	}
	if err := os.Remove(filepath.Join(dir, "lost+found")); err != nil {
		return nil, errors.Join(err, r.Close())
	}
	return r, nil
}

// Plant sets the xattr name of each file of values (a path under Dir:
// the file itself: a final symlink is not followed) to exactly the given bytes,
// an empty slice included: it unmounts the filesystem, writes the values
// with debugfs ea_set, reads them back with debugfs ea_get and compares,
// and mounts it again at Dir. Nothing may hold the filesystem busy
// (open files, a working directory under Dir) while Plant runs.
func (r *RawFS) Plant(name string, values map[string][]byte) error {
	mnt, err := os.Stat(r.Dir)
	if err != nil {
		return err
	}
	dev := mnt.Sys().(*syscall.Stat_t).Dev
	type plant struct {
		path, file string
		ino        uint64
		value      []byte
	}
	var plants []plant
	for _, p := range slices.Sorted(maps.Keys(values)) {
		st, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("plant %s: %w", name, err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if sys.Dev != dev {
			return fmt.Errorf("plant %s on %s: not on the raw filesystem at %s", name, p, r.Dir)
		}
		r.seq++
		file := fmt.Sprintf("value-%d", r.seq)
		if err := os.WriteFile(filepath.Join(r.work, file), values[p], 0o600); err != nil {
			return err
		}
		plants = append(plants, plant{path: p, file: file, ino: sys.Ino, value: values[p]})
	}
	// Inode numbers (<INO>) and value files relative to the work
	// directory spare debugfs's command parser any quoting.
	var set, get strings.Builder
	for _, pl := range plants {
		fmt.Fprintf(&set, "ea_set -f %s <%d> %s\n", pl.file, pl.ino, name)
		fmt.Fprintf(&get, "ea_get -f %s.back <%d> %s\n", pl.file, pl.ino, name)
	}
	if err := r.unmount(); err != nil {
		return err
	}
	// debugfs exits 0 even when a command fails; the read-back, in a
	// debugfs of its own, is the check.
	setOut, setErr := r.debugfs(true, set.String())
	getOut, getErr := r.debugfs(false, get.String())
	err = errors.Join(setErr, getErr)
	// A failed command prints "ea_set: reason" (com_err); a failed ea_get
	// may still leave an empty file, which would pass for an empty value.
	for l := range strings.Lines(setOut + getOut) {
		if err == nil && (strings.HasPrefix(l, "ea_set: ") || strings.HasPrefix(l, "ea_get: ")) {
			err = fmt.Errorf("plant %s: debugfs failed:\n%s%s", name, setOut, getOut)
		}
	}
	for _, pl := range plants {
		if err != nil {
			break
		}
		back, rerr := os.ReadFile(filepath.Join(r.work, pl.file+".back"))
		if rerr != nil || !bytes.Equal(back, pl.value) {
			err = fmt.Errorf("plant %s on %s: debugfs stored %s (%v), want %s\ndebugfs:\n%s%s",
				name, pl.path, shortHex(back), rerr, shortHex(pl.value), setOut, getOut)
		}
	}
	for _, pl := range plants {
		_ = os.Remove(filepath.Join(r.work, pl.file))
		_ = os.Remove(filepath.Join(r.work, pl.file+".back")) // missing after a failed ea_get
	}
	return errors.Join(err, r.mount())
}

// Close unmounts the filesystem (lazily when it is busy, reporting that)
// and removes the image.
func (r *RawFS) Close() error {
	err := r.unmount()
	if err != nil && r.mounted() {
		// Detach it anyway: the test's directory is removed next.
		err = errors.Join(err, run("umount", "-l", r.Dir))
	}
	if rerr := os.Remove(r.image); err == nil {
		err = rerr
	}
	return err
}

func (r *RawFS) mount() error {
	if err := run("mount", "-t", "ext4", "-o", "loop", r.image, r.Dir); err != nil {
		return &mountError{err}
	}
	return nil
}

func (r *RawFS) unmount() error {
	if !r.mounted() {
		return nil
	}
	return run("umount", r.Dir)
}

// mounted reports whether Dir is a mount point (its device differs from
// its parent's).
func (r *RawFS) mounted() bool {
	var st, parent syscall.Stat_t
	if syscall.Stat(r.Dir, &st) != nil || syscall.Stat(filepath.Dir(r.Dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// debugfs runs the commands on the image (read-write when write) in the
// work directory and returns its output.
func (r *RawFS) debugfs(write bool, commands string) (string, error) {
	args := []string{"-f", "-"}
	if write {
		args = append([]string{"-w"}, args...)
	}
	cmd := exec.Command("debugfs", append(args, r.image)...)
	cmd.Dir = r.work
	cmd.Stdin = strings.NewReader(commands)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("debugfs %s: %w\n%s", strings.Join(cmd.Args[1:], " "), err, out)
	}
	return string(out), nil
}

// run runs a command and returns an error with its output when it fails.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// shortHex formats b in hex, cut after 32 bytes.
func shortHex(b []byte) string {
	if len(b) > 32 {
		return fmt.Sprintf("%x... (%d bytes)", b[:32], len(b))
	}
	return fmt.Sprintf("%x", b)
}

// RawCaps encodes cap_net_raw+ep (a security.capability value) as revision 2 (rev 2) or 3 with rootid.
func RawCaps(rev int, rootid uint32) []byte {
	size := 20
	if rev == 3 {
		size = 24
	}
	b := make([]byte, size)
	binary.LittleEndian.PutUint32(b, uint32(rev)<<24|1)
	binary.LittleEndian.PutUint32(b[4:], 0x2000 /* cap_net_raw */)
	if rev == 3 {
		binary.LittleEndian.PutUint32(b[20:], rootid)
	}
	return b
}
