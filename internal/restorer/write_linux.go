//go:build linux

package restorer

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/nscap/nscap/internal/sys"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/internal/tarfmt"
)

// parent returns the directory (from pc) and the base name under which
// member e (not ".") goes.
func (rs *restorer) parent(pc *parentCache, e *tarfmt.Entry) (dirfd int, base string, err error) {
	if e.Name == "." {
		return -1, "", fmt.Errorf("a %s cannot replace the destination directory", tarfmt.TypeName(e.Header.Typeflag))
	}
	dir, base := path.Split(e.Name)
	dirfd, err = pc.get(cleanDir(dir))
	return dirfd, base, err
}

// existing looks at what base in dirfd holds now: kept is true when the
// overwrite policy keeps it in place of e (then counted and reported).
func (rs *restorer) existing(dirfd int, base string, e *tarfmt.Entry) (st sys.Stat_t, exists, kept bool) {
	st, err := sys.FstatatNoFollow(dirfd, base)
	if err != nil {
		return st, false, false
	}
	if rs.keep(e, &st) {
		rs.skipped.Add(1)
		rs.done(e, &entryMeta{}, ActionKept, e.Header.Size)
		return st, true, true
	}
	return st, true, false
}

// keep reports whether the overwrite policy keeps the existing st in
// place of e.
func (rs *restorer) keep(e *tarfmt.Entry, st *sys.Stat_t) bool {
	switch rs.opts.Overwrite {
	case OverwriteNever:
		return true
	case OverwriteIfChanged:
		return st.Mode&sys.S_IFMT == sys.S_IFREG && e.Header.Typeflag != tar.TypeDir &&
			st.Size == e.Header.Size && st.Mtim.Sec == e.Header.ModTime.Unix()
	case OverwriteAlways:
		return false
	}
	return false
}

// writeSmall restores a regular file whose data is in memory. In direct
// mode (an empty destination) it is created under its final name, with
// raw system calls: open, write, owner, mode, xattrs, caps, times, close.
func (rs *restorer) writeSmall(pc *parentCache, e *tarfmt.Entry, mt entryMeta, data []byte) error {
	if !rs.direct || mt.sparse {
		return rs.writeFile(pc, e, mt, bytes.NewReader(data))
	}
	dirfd, base, err := rs.parent(pc, e)
	if err != nil {
		return err
	}
	fd, err := sys.Openat(dirfd, base, sys.O_CREAT|sys.O_EXCL|sys.O_WRONLY|sys.O_NOFOLLOW|sys.O_CLOEXEC, 0o600)
	if errors.Is(err, sys.EEXIST) {
		// A second member of that name: replace it the careful way.
		return rs.writeFile(pc, e, mt, bytes.NewReader(data))
	}
	if err != nil {
		return rs.d.pathErr("create", e.Name, err)
	}
	err = writeAll(fd, data)
	if err != nil {
		err = rs.d.pathErr("write", e.Name, err)
	} else {
		err = rs.applyFd(fd, e.Name, mt)
	}
	if cerr := sys.CloseRaw(fd); err == nil && cerr != nil {
		err = rs.d.pathErr("close", e.Name, cerr)
	}
	if err != nil {
		// Never leave it half made under its name.
		_ = sys.Unlinkat(dirfd, base, 0)
		return err
	}
	rs.files.Add(1)
	rs.bytes.Add(int64(len(data)))
	rs.done(e, &mt, ActionRestored, int64(len(data)))
	return nil
}

// writeAll writes data (at most restoreSmallFile bytes, into the page
// cache) to fd, with raw system calls (see rawErr).
func writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, e := sys.WriteRaw(fd, data)
		if e == sys.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		data = data[n:]
	}
	return nil
}

// writeFile restores a regular file whose data is read from data.
func (rs *restorer) writeFile(pc *parentCache, e *tarfmt.Entry, mt entryMeta, data io.Reader) (err error) {
	dirfd, base, err := rs.parent(pc, e)
	if err != nil {
		return err
	}
	_, exists, kept := rs.existing(dirfd, base, e)
	if kept {
		return nil
	}
	f, tmp, err := rs.d.createTmpfile(dirfd)
	if err != nil {
		return rs.d.pathErr("create", e.Name, err)
	}
	// The file was written through f: its close can report a failed
	// write-back (NFS, a full quota), which fails the entry.
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			var pe *os.PathError
			if errors.As(cerr, &pe) {
				cerr = pe.Err
			}
			err = rs.d.pathErr("close", e.Name, cerr)
		}
	}()
	placed := false
	if tmp != "" {
		defer func() {
			if !placed {
				_ = sys.Unlinkat(dirfd, tmp, 0)
			}
		}()
	}
	var n int64
	if mt.sparse {
		n, err = copySparse(f, data, e.Header.Size)
	} else {
		n, err = io.Copy(f, data)
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return rs.d.pathErr("write", e.Name, pe.Err)
		}
		return &archiveReadError{fmt.Errorf("%s: %w", e.Header.Name, noEOF(err))}
	}
	if n != e.Header.Size {
		return &archiveReadError{fmt.Errorf("%s: %w", e.Header.Name, io.ErrUnexpectedEOF)}
	}
	fd := int(f.Fd())
	if err := rs.applyFd(fd, e.Name, mt); err != nil {
		return err
	}
	switch {
	case tmp != "":
		err = place(dirfd, tmp, base)
	case !exists:
		err = rs.d.linkTmpfile(f, dirfd, base)
		if errors.Is(err, sys.EEXIST) {
			exists = true
		}
	}
	if exists && tmp == "" {
		t := rs.d.tmpName()
		if err = rs.d.linkTmpfile(f, dirfd, t); err == nil {
			err = place(dirfd, t, base)
		}
	}
	if err != nil {
		return rs.d.pathErr("link", e.Name, err)
	}
	placed = true
	rs.files.Add(1)
	rs.bytes.Add(n)
	rs.done(e, &mt, ActionRestored, n)
	return nil
}

// cleanDir turns path.Split's directory into a name for openDir.
func cleanDir(dir string) string {
	if dir == "" {
		return "."
	}
	return path.Clean(dir)
}

// dir restores a directory: created now (mode 0700 until its contents are
// in), owner and xattrs now, mode and times at the end.
func (rs *restorer) dir(pc *parentCache, e *tarfmt.Entry, mt entryMeta) error {
	if e.Name == "." && rs.staging != "" {
		rs.root = &rootEntry{e: e, mt: mt} // for the destination, by commit
		return nil
	}
	var fd int
	existed := true
	if e.Name == "." {
		var err error
		if fd, err = sys.Openat(rs.d.fd, ".", sys.O_RDONLY|sys.O_DIRECTORY|sys.O_CLOEXEC, 0); err != nil {
			return rs.d.pathErr("open", ".", err)
		}
	} else {
		dir, base := path.Split(e.Name)
		dirfd, err := pc.get(cleanDir(dir))
		if err != nil {
			return err
		}
		st, serr := sys.FstatatNoFollow(dirfd, base)
		exists := serr == nil
		if exists && st.Mode&sys.S_IFMT == sys.S_IFDIR && rs.opts.Overwrite == OverwriteNever {
			rs.skipped.Add(1)
			return nil
		}
		if exists && st.Mode&sys.S_IFMT != sys.S_IFDIR {
			if rs.keep(e, &st) {
				rs.skipped.Add(1)
				return nil
			}
			if err := sys.Unlinkat(dirfd, base, 0); err != nil {
				return rs.d.pathErr("unlink", e.Name, err)
			}
			exists = false
		}
		existed = exists
		if !exists {
			if err := sys.Mkdirat(dirfd, base, 0o700); err != nil && !errors.Is(err, sys.EEXIST) {
				return rs.d.pathErr("mkdir", e.Name, err)
			}
		}
		if fd, err = openat2(dirfd, base, sys.O_RDONLY|sys.O_DIRECTORY|sys.O_NOFOLLOW); err != nil {
			return rs.d.pathErr("open", e.Name, err)
		}
	}
	defer sys.Close(fd)
	if err := sys.Fchown(fd, mt.uid, mt.gid); err != nil {
		return rs.d.pathErr("chown", e.Name, err)
	}
	// A default ACL is inherited by what is created in the directory:
	// it is set last, with the mode, so that the members get exactly the
	// ACLs the archive gives them (one left by an earlier restore goes
	// until then).
	var defACL []byte
	if existed {
		if err := sys.Fremovexattr(fd, archive.XattrACLDefault); err != nil && !errors.Is(err, sys.ENODATA) && !errors.Is(err, sys.EOPNOTSUPP) {
			return rs.d.pathErr("removexattr "+archive.XattrACLDefault, e.Name, err)
		}
	}
	for _, x := range mt.xattrs {
		if x.name == archive.XattrACLDefault {
			defACL = x.value
			continue
		}
		if err := sys.Fsetxattr(fd, x.name, x.value, 0); err != nil {
			return rs.d.pathErr("setxattr "+x.name, e.Name, err)
		}
	}
	if len(mt.caps) > 0 {
		if err := fcaps.SetRawFd(fd, rs.d.display(e.Name), mt.caps); err != nil {
			return err
		}
		rs.caps.Add(1)
	}
	rs.dirs = append(rs.dirs, deferredDir{name: e.Name, mode: mt.mode, times: mt.times, defACL: defACL})
	rs.dirsN.Add(1)
	rs.done(e, &mt, ActionRestored, 0)
	return nil
}

// special restores a symlink, hardlink, fifo or device under a temporary
// name, then renames it into place.
func (rs *restorer) special(pc *parentCache, e *tarfmt.Entry, mt entryMeta) error {
	h := e.Header
	dirfd, base, err := rs.parent(pc, e)
	if err != nil {
		return err
	}
	st, exists, kept := rs.existing(dirfd, base, e)
	if kept {
		return nil
	}
	tmp := rs.d.tmpName()
	switch h.Typeflag {
	case tar.TypeLink:
		return rs.hardlink(e, mt, dirfd, base, tmp, st, exists)
	case tar.TypeSymlink:
		if err := sys.Symlinkat(h.Linkname, dirfd, tmp); err != nil {
			return rs.d.pathErr("symlink", e.Name, err)
		}
	default:
		mode := mt.mode
		switch h.Typeflag {
		case tar.TypeFifo:
			mode |= sys.S_IFIFO
		case tar.TypeChar:
			mode |= sys.S_IFCHR
		case tar.TypeBlock:
			mode |= sys.S_IFBLK
		}
		dev := sys.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
		if err := sys.Mknodat(dirfd, tmp, mode, int(dev)); err != nil {
			return rs.d.pathErr("mknod", e.Name, err)
		}
	}
	if TestHookSpecial != nil {
		TestHookSpecial(dirfd, tmp)
	}
	err = rs.applyAt(dirfd, tmp, e, mt)
	if err == nil {
		err = place(dirfd, tmp, base)
		if err != nil {
			err = rs.d.pathErr("rename", e.Name, err)
		}
	} else {
		_ = sys.Unlinkat(dirfd, tmp, 0)
	}
	if err != nil {
		return err
	}
	if h.Typeflag == tar.TypeSymlink {
		rs.links.Add(1)
	} else {
		rs.others.Add(1)
	}
	rs.done(e, &mt, ActionRestored, 0)
	return nil
}

// hardlink makes member e a hard link to its target, under the temporary
// name tmp of dirfd, then renames it to base (st and exists describe what
// base is now).
func (rs *restorer) hardlink(e *tarfmt.Entry, mt entryMeta, dirfd int, base, tmp string, st sys.Stat_t, exists bool) error {
	tdir, tbase := path.Split(e.Link)
	tfd, err := rs.d.openDir(cleanDir(tdir), false)
	if err != nil {
		return fmt.Errorf("hardlink target %s: %w", e.Link, err)
	}
	defer sys.Close(tfd)
	tst, err := sys.FstatatNoFollow(tfd, tbase)
	if err != nil {
		return fmt.Errorf("hardlink target %s: %w", e.Link, rs.d.pathErr("lstat", e.Link, err))
	}
	if tst.Mode&sys.S_IFMT == sys.S_IFDIR {
		return fmt.Errorf("hardlink target %s is a directory", e.Link)
	}
	if len(mt.xattrs) > 0 || len(mt.caps) > 0 {
		// bsdtar repeats the inode's xattrs on its hardlink members;
		// GNU tar and bsdtar both ignore them on extraction (the inode
		// got them with its first member). Same here, but a value
		// that differs from the inode's is reported, never dropped
		// silently.
		if w := linkXattrsDiffer(tfd, tbase, mt); w != "" {
			rs.warn(e.Name, fmt.Errorf("hardlink member carries xattrs that differ from those of its target %s (%s); the target's are kept, as GNU tar and bsdtar do", e.Link, w))
		}
	}
	if exists && st.Dev == tst.Dev && st.Ino == tst.Ino {
		rs.links.Add(1)
		return nil
	}
	if err := sys.Linkat(tfd, tbase, dirfd, tmp, 0); err != nil {
		return rs.d.pathErr("link", e.Name, err)
	}
	if err := place(dirfd, tmp, base); err != nil {
		return rs.d.pathErr("rename", e.Name, err)
	}
	rs.links.Add(1)
	rs.done(e, &mt, ActionRestored, 0)
	return nil
}

// TestHookSpecial is called, when set (by tests only), between the
// creation of a symlink, fifo or device under its temporary name and the
// first change of its metadata: a test swaps another object in there.
var TestHookSpecial func(dirfd int, tmp string)

// ErrReplaced is an entry that something else replaced under the
// temporary name the restore had just made it under: nothing of it was
// changed, and it is not restored.
var ErrReplaced = errors.New("backup: entry replaced under its temporary name while restored (a concurrent writer in DEST)")

// specialType is the file type that special() makes for a member type.
func specialType(t byte) uint32 {
	switch t {
	case tar.TypeSymlink:
		return sys.S_IFLNK
	case tar.TypeFifo:
		return sys.S_IFIFO
	case tar.TypeChar:
		return sys.S_IFCHR
	case tar.TypeBlock:
		return sys.S_IFBLK
	}
	return 0
}
