//go:build linux

package restorer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"

	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/xattrfmt"

	"github.com/nscap/nscap/internal/sys"

	"github.com/nscap/nscap/internal/tarfmt"
)

// Verify compares the tree under dest with the archive read from r, as
// [Restore] with the same maps would have made it, and returns every
// difference: missing and extra entries, type, owner, mode, size, content
// (sha256), symlink targets and hardlink identity, xattrs, and caps
// (compared as capabilities, shown with their rootids). Nothing is
// followed: paths are resolved beneath dest as by Restore. The error is
// about the verification itself (an unreadable archive or dest, or one
// returned by opts.Difference); differences are not errors.
func Verify(ctx context.Context, r io.Reader, dest string, opts VerifyOptions) ([]Difference, error) {
	ro := opts.restoreOptions()
	ar, m, _, err := openArchive(r, ro, nil)
	if err != nil {
		return nil, err
	}
	defer ar.Close()
	d, err := openDest(dest, false)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	v := &verifier{d: d, rs: &restorer{d: d, opts: ro, m: m}, opts: &opts, seen: map[string]bool{".": true}}
	if err := v.run(ctx, ar); err != nil {
		return v.diffs, err
	}
	return v.diffs, nil
}

type verifier struct {
	d     *destDir
	rs    *restorer
	opts  *VerifyOptions
	diffs []Difference
	seen  map[string]bool
	buf   []byte
}

func (v *verifier) report(d Difference) error {
	v.diffs = append(v.diffs, d)
	if v.opts.Difference != nil {
		return v.opts.Difference(d)
	}
	return nil
}

func (v *verifier) run(ctx context.Context, ar *tarfmt.Reader) error {
	v.buf = make([]byte, 64<<10)
	for e, err := range ar.Entries(ctx) {
		if ee, bad := errors.AsType[*tarfmt.EntryError](err); bad {
			if rerr := v.report(Difference{Path: e.Header.Name, Kind: DiffError, Got: ee.Err.Error()}); rerr != nil {
				return rerr
			}
			continue
		}
		if err != nil {
			return err
		}
		for p := e.Name; p != "."; p = path.Dir(p) {
			if v.seen[p] && p != e.Name {
				break
			}
			v.seen[p] = true
		}
		if err := v.entry(e, ar); err != nil {
			return err
		}
		v.opts.Reporter.CompleteItem(v.d.display(e.Name), archive.ActionVerified, archive.ItemStats{Size: e.Header.Size})
	}
	return v.extras()
}

func fileType(mode uint32) string {
	switch mode & sys.S_IFMT {
	case sys.S_IFREG:
		return "regular file"
	case sys.S_IFDIR:
		return "directory"
	case sys.S_IFLNK:
		return "symlink"
	case sys.S_IFIFO:
		return "fifo"
	case sys.S_IFCHR:
		return "character device"
	case sys.S_IFBLK:
		return "block device"
	case sys.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("type %#o", mode&sys.S_IFMT)
}

// entry checks one member against the tree.
func (v *verifier) entry(e *tarfmt.Entry, ar *tarfmt.Reader) error {
	disp := v.d.display(e.Name)
	h := e.Header
	mt, err := v.rs.meta(e)
	if errors.Is(err, ErrRawArchive) {
		return err
	}
	if err != nil {
		return v.report(Difference{Path: disp, Kind: DiffError, Want: "restorable entry", Got: err.Error()})
	}
	dir, base := path.Split(e.Name)
	if e.Name == "." {
		dir, base = ".", "."
	}
	dirfd, err := v.d.openDir(cleanDir(dir), false)
	if err != nil {
		if errors.Is(err, sys.ENOENT) {
			return v.report(Difference{Path: disp, Kind: DiffMissing})
		}
		return v.report(Difference{Path: disp, Kind: DiffError, Got: err.Error()})
	}
	defer sys.Close(dirfd)
	st, err := sys.FstatatNoFollow(dirfd, base)
	if err != nil {
		if errors.Is(err, sys.ENOENT) {
			return v.report(Difference{Path: disp, Kind: DiffMissing})
		}
		return v.report(Difference{Path: disp, Kind: DiffError, Got: v.d.pathErr("lstat", e.Name, err).Error()})
	}
	if h.Typeflag == tar.TypeLink {
		tst, err := v.stat(e.Link)
		if err != nil || tst.Dev != st.Dev || tst.Ino != st.Ino {
			return v.report(Difference{Path: disp, Kind: DiffLink, Want: "hardlink to " + v.d.display(e.Link), Got: "another inode"})
		}
		return nil
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont, tar.TypeDir, tar.TypeFifo, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock:
	default:
		return v.report(Difference{Path: disp, Kind: DiffError, Got: fmt.Sprintf("member type %q not supported", h.Typeflag)})
	}
	want, got := tarfmt.TypeName(h.Typeflag), fileType(st.Mode)
	if want != got {
		return v.report(Difference{Path: disp, Kind: DiffType, Want: want, Got: got})
	}
	diffs, err := v.compare(e, ar, mt, dirfd, base, &st)
	if err != nil {
		return err
	}
	diffs = append(diffs, v.xattrs(dirfd, base, e, mt)...)
	for _, d := range diffs {
		d.Path = disp
		if err := v.report(d); err != nil {
			return err
		}
	}
	return nil
}

// compare lists how the entry base of dirfd (whose lstat is st) differs
// from member e (translated metadata mt) in owner, mode, target or
// device, and content (read from ar); its type is already the member's.
func (v *verifier) compare(e *tarfmt.Entry, ar *tarfmt.Reader, mt entryMeta, dirfd int, base string, st *sys.Stat_t) ([]Difference, error) {
	h := e.Header
	var diffs []Difference
	add := func(d Difference) { diffs = append(diffs, d) }
	if int(st.Uid) != mt.uid || int(st.Gid) != mt.gid {
		add(Difference{Kind: DiffOwner, Want: fmt.Sprintf("%d:%d", mt.uid, mt.gid), Got: fmt.Sprintf("%d:%d", st.Uid, st.Gid)})
	}
	if h.Typeflag != tar.TypeSymlink && st.Mode&0o7777 != mt.mode {
		add(Difference{Kind: DiffMode, Want: fmt.Sprintf("%04o", mt.mode), Got: fmt.Sprintf("%04o", st.Mode&0o7777)})
	}
	switch h.Typeflag {
	case tar.TypeSymlink:
		t, err := vReadlink(dirfd, base)
		if err != nil || t != h.Linkname {
			add(Difference{Kind: DiffLink, Want: h.Linkname, Got: t})
		}
	case tar.TypeChar, tar.TypeBlock:
		if sys.Major(st.Rdev) != uint32(h.Devmajor) || sys.Minor(st.Rdev) != uint32(h.Devminor) {
			add(Difference{
				Kind: DiffLink, Want: fmt.Sprintf("%d,%d", h.Devmajor, h.Devminor),
				Got: fmt.Sprintf("%d,%d", sys.Major(st.Rdev), sys.Minor(st.Rdev)),
			})
		}
	case tar.TypeDir, tar.TypeFifo:
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
		// Only a regular member's data is read, and only from a regular
		// file (hashFile): reading a fifo would wait for a writer forever.
		if st.Size != h.Size {
			add(Difference{Kind: DiffSize, Want: fmt.Sprint(h.Size), Got: fmt.Sprint(st.Size)})
		} else {
			wantSum, err := v.hash(ar)
			if err != nil {
				return nil, fmt.Errorf("read archive: %s: %w", h.Name, noEOF(err))
			}
			gotSum, err := v.hashFile(dirfd, base, st)
			if err != nil {
				add(Difference{Kind: DiffError, Got: v.d.pathErr("read", e.Name, err).Error()})
			} else if gotSum != wantSum {
				add(Difference{Kind: DiffContent, Want: "sha256 " + wantSum, Got: "sha256 " + gotSum})
			}
		}
	}
	return diffs, nil
}

func (v *verifier) stat(rel string) (sys.Stat_t, error) {
	dir, base := path.Split(rel)
	fd, err := v.d.openDir(cleanDir(dir), false)
	if err != nil {
		return sys.Stat_t{}, err
	}
	defer sys.Close(fd)
	return sys.FstatatNoFollow(fd, base)
}

func vReadlink(dirfd int, name string) (string, error) {
	buf := make([]byte, 4096)
	for {
		n, err := sys.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

func (v *verifier) hash(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.CopyBuffer(h, r, v.buf); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashFile hashes the regular file name in dirfd, which lstat found as
// want. It never blocks on what is not a regular file: opening a fifo for
// reading waits for a writer (forever, in a tree nobody writes to) and
// opening a device can have side effects, so the open is O_NONBLOCK and
// O_NOFOLLOW, and the descriptor must be the same regular inode lstat saw
// (the name may have been replaced in between). It is read with read(2)
// directly: an os.File of a non-blocking descriptor would go through the
// runtime poller, which parks a reader of a pipe-like file indefinitely.
func (v *verifier) hashFile(dirfd int, name string, want *sys.Stat_t) (string, error) {
	fd, err := openat2(dirfd, name, sys.O_RDONLY|sys.O_NOFOLLOW|sys.O_NONBLOCK|sys.O_NOCTTY)
	if err != nil {
		return "", err
	}
	defer sys.Close(fd)
	st, err := sys.Fstat(fd)
	if err != nil {
		return "", err
	}
	if st.Mode&sys.S_IFMT != sys.S_IFREG || st.Dev != want.Dev || st.Ino != want.Ino {
		return "", fmt.Errorf("replaced while verifying (now a %s): %w", fileType(st.Mode), sys.ESTALE)
	}
	h := sha256.New()
	for {
		n, err := sys.Read(fd, v.buf)
		if errors.Is(err, sys.EINTR) {
			continue
		}
		if err != nil {
			return "", err
		}
		if n == 0 {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
		h.Write(v.buf[:n])
	}
}

// ignoredXattr are xattrs that the system adds by itself.
func ignoredXattr(name string) bool {
	return name == "security.selinux" || name == "security.ima" || name == "security.evm"
}

// xattrs compares the xattrs of the entry with the tree's.
func (v *verifier) xattrs(dirfd int, base string, e *tarfmt.Entry, mt entryMeta) []Difference {
	pfd, err := sys.Openat(dirfd, base, sys.O_PATH|sys.O_NOFOLLOW|sys.O_CLOEXEC, 0)
	if err != nil {
		return []Difference{{Kind: DiffError, Got: v.d.pathErr("open", e.Name, err).Error()}}
	}
	defer sys.Close(pfd)
	p := sys.ProcFdPath(pfd)
	got, err := listXattrs(p)
	if err != nil {
		return []Difference{{Kind: DiffError, Got: v.d.pathErr("listxattr", e.Name, err).Error()}}
	}
	want := map[string][]byte{}
	for _, x := range mt.xattrs {
		want[x.name] = x.value
	}
	var out []Difference
	// Caps.
	var gotCaps []byte
	if got[archive.XattrCaps] {
		if gotCaps, err = sys.GetxattrAll(p, archive.XattrCaps, true); err != nil {
			out = append(out, Difference{Kind: DiffCaps, Want: capsText(mt.caps), Got: "unreadable: " + err.Error()})
		}
	}
	switch {
	case err != nil:
	case mt.lacking != nil && gotCaps == nil:
		// The archive holds a cap that the restore could not write
		// (host-scoped, not allowed): the tree lacks it.
		out = append(out, Difference{Kind: DiffCaps, Want: capsText(mt.lacking) + " (host-scoped in the archive, not restored: --foreign-caps host writes it, skip accepts its absence)", Got: "none"})
	case !sameCaps(mt.caps, gotCaps):
		out = append(out, Difference{Kind: DiffCaps, Want: capsText(mt.caps), Got: capsText(gotCaps)})
	}
	delete(got, archive.XattrCaps)
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	for n := range got {
		if _, ok := want[n]; !ok && !ignoredXattr(n) && v.rs.m.keepXattr(n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		w, inArchive := want[n]
		if !got[n] {
			out = append(out, Difference{Kind: DiffXattr, Name: n, Want: xattrText(n, w), Got: "none"})
			continue
		}
		g, err := sys.GetxattrAll(p, n, true)
		switch {
		case err != nil:
			out = append(out, Difference{Kind: DiffXattr, Name: n, Got: "unreadable: " + err.Error()})
		case !inArchive:
			out = append(out, Difference{Kind: DiffXattr, Name: n, Want: "none", Got: xattrText(n, g)})
		case !bytes.Equal(w, g):
			out = append(out, Difference{Kind: DiffXattr, Name: n, Want: xattrText(n, w), Got: xattrText(n, g)})
		}
	}
	return out
}

// xattrText shows an xattr value in a difference: a POSIX ACL as its text
// (as getfacl shows it, numeric ids), anything else in hex.
func xattrText(name string, v []byte) string {
	if archive.IsACL(name) && len(v) >= xattrfmt.ACLHeaderSize && (len(v)-xattrfmt.ACLHeaderSize)%xattrfmt.ACLEntrySize == 0 {
		return xattrfmt.ACLText(v)
	}
	return fmt.Sprintf("%x", v)
}

// listXattrs returns the names of the xattrs of p (a /proc/self/fd path);
// a filesystem without xattrs (ENOTSUP) has none.
func listXattrs(p string) (map[string]bool, error) {
	names, err := sys.Listxattr(p, true)
	if errors.Is(err, sys.ENOTSUP) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(names))
	for _, s := range names {
		out[s] = true
	}
	return out, nil
}

// extras walks the tree for entries the archive does not have.
func (v *verifier) extras() error {
	var found []string
	var walk func(fd int, rel string) error
	walk = func(fd int, rel string) error {
		dfd, err := sys.Openat(fd, ".", sys.O_RDONLY|sys.O_DIRECTORY|sys.O_CLOEXEC, 0)
		if err != nil {
			return v.d.pathErr("open", rel, err)
		}
		dir := os.NewFile(uintptr(dfd), rel)
		ents, err := dir.ReadDir(-1)
		dir.Close()
		if err != nil {
			return v.d.pathErr("readdir", rel, err)
		}
		for _, e := range ents {
			name := path.Join(rel, e.Name())
			if !v.seen[name] {
				found = append(found, name)
				continue
			}
			if !e.IsDir() {
				continue
			}
			sub, err := openat2(fd, e.Name(), sys.O_PATH|sys.O_DIRECTORY)
			if err != nil {
				continue
			}
			err = walk(sub, name)
			sys.Close(sub)
			if err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(v.d.fd, "."); err != nil {
		return err
	}
	state, err := lookupRestoreState(v.opts.StateDir, v.d)
	if err != nil {
		return err
	}
	if state != nil {
		d := Difference{Path: v.d.display("."), Kind: DiffError, Got: "a restore into this destination was interrupted: it is incomplete until a restore completes"}
		if err := v.report(d); err != nil {
			return err
		}
	}
	sort.Strings(found)
	for _, f := range found {
		d := Difference{Path: v.d.display(f), Kind: DiffExtra}
		switch {
		case state.hasStaging(f):
			d.Kind, d.Got = DiffError, "staging directory of an interrupted restore: a restore into this destination removes it"
		case state.hasTmp(path.Base(f)):
			d.Got = "temporary name of an interrupted restore: a restore into this destination removes it"
		}
		if err := v.report(d); err != nil {
			return err
		}
	}
	return nil
}
