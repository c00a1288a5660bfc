package archiver

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/xattrfmt"

	"github.com/nscap/nscap/internal/sys"

	"github.com/nscap/nscap/internal/tarfmt"
)

// ErrSocket is the warning for a socket left out of an archive.
var ErrSocket = errors.New("socket ignored: tar cannot archive sockets")

var (
	errChangedType = errors.New("file type changed while it was archived")
	errNoXattrs    = errors.New("filesystem does not support xattrs; none archived from it")
)

// ShrankError reports a regular file that got shorter while it was read:
// its member was padded with zeros to the size stat gave, as GNU tar does.
type ShrankError struct {
	Size, Read int64
}

// Error implements error.
func (e *ShrankError) Error() string {
	return fmt.Sprintf("file shrank by %d bytes while read; padded with zeros", e.Size-e.Read)
}

// prepare stats an item, reads its xattrs (and its content when small and
// the read-ahead budget allows), and builds its tar header. It runs on a
// worker; the fds it opens are relative to the item's parent directory fd,
// never by path.
func (r *run) prepare(it *item) {
	if it.err != nil {
		return
	}
	xfd, ok := r.statItem(it)
	if !ok {
		return
	}
	typ := sys.ModeType(it.st.Mode)
	if typ == fs.ModeSocket {
		it.skip = true
		it.warns = append(it.warns, ErrSocket)
		return
	}
	if (typ == fs.ModeDir) != (it.typ == fs.ModeDir) {
		it.err = &fs.PathError{Op: "lstat", Path: it.name, Err: errChangedType}
		return
	}

	hdr, errs := r.header(it, typ)
	if err := r.readXattrs(it, xfd, hdr); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		it.err = errors.Join(errs...)
		return
	}
	it.hdr = hdr
	if typ == 0 {
		r.readAhead(it, hdr)
	}
}

// statItem opens (regular files) and stats the item; it returns the fd
// for f*xattr calls (-1: by name) and false when the item failed.
func (r *run) statItem(it *item) (xfd int, ok bool) {
	xfd = -1
	switch {
	case it.self != nil:
		xfd = it.self.fd
		var err error
		if it.st, err = sys.Fstat(xfd); err != nil {
			it.err = &fs.PathError{Op: "fstat", Path: it.name, Err: err}
			return -1, false
		}
	case it.typ == 0:
		fd, err := sys.Openat(it.parent.fd, it.base, sys.O_RDONLY|sys.O_NOFOLLOW|sys.O_CLOEXEC|sys.O_NONBLOCK|sys.O_NOCTTY, 0)
		if err != nil {
			it.err = &fs.PathError{Op: "open", Path: it.name, Err: err}
			return -1, false
		}
		it.fd, xfd = fd, fd
		if it.st, err = sys.Fstat(fd); err != nil {
			it.err = &fs.PathError{Op: "fstat", Path: it.name, Err: err}
			return -1, false
		}
		if it.st.Mode&sys.S_IFMT != sys.S_IFREG {
			it.err = &fs.PathError{Op: "open", Path: it.name, Err: errChangedType}
			return -1, false
		}
	default:
		if err := sys.Fstatat(it.parent.fd, it.base, &it.st, sys.AT_SYMLINK_NOFOLLOW); err != nil {
			it.err = &fs.PathError{Op: "lstat", Path: it.name, Err: err}
			return -1, false
		}
	}
	return xfd, true
}

// header makes the tar header of the item (typ is its file type), its
// ids translated.
func (r *run) header(it *item, typ fs.FileMode) (*tar.Header, []error) {
	st := &it.st
	hdr := &tar.Header{
		Name:    it.name,
		Mode:    int64(st.Mode & 0o7777),
		ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		Format:  tar.FormatPAX,
	}
	if it.name == "." {
		hdr.Name = "./"
	}
	var errs []error
	uid, err := archive.IDToArchive(r.opts.UIDMap, archive.KindUID, st.Uid)
	if err != nil {
		errs = append(errs, err)
	}
	gid, err := archive.IDToArchive(r.opts.GIDMap, archive.KindGID, st.Gid)
	if err != nil {
		errs = append(errs, err)
	}
	hdr.Uid, hdr.Gid = int(uid), int(gid)

	switch typ {
	case 0:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size
	case fs.ModeDir:
		hdr.Typeflag = tar.TypeDir
		if hdr.Name != "./" {
			hdr.Name += "/"
		}
	case fs.ModeSymlink:
		hdr.Typeflag = tar.TypeSymlink
		target, err := readlinkat(it.parent.fd, it.base, st.Size)
		if err != nil {
			errs = append(errs, &fs.PathError{Op: "readlink", Path: it.name, Err: err})
		}
		hdr.Linkname = target
	case fs.ModeNamedPipe:
		hdr.Typeflag = tar.TypeFifo
	case fs.ModeDevice | fs.ModeCharDevice, fs.ModeDevice:
		hdr.Typeflag = tar.TypeBlock
		if typ&fs.ModeCharDevice != 0 {
			hdr.Typeflag = tar.TypeChar
		}
		hdr.Devmajor = int64(sys.Major(st.Rdev))
		hdr.Devminor = int64(sys.Minor(st.Rdev))
	default:
		errs = append(errs, fmt.Errorf("unknown file type %#o", st.Mode&sys.S_IFMT))
	}

	return hdr, errs
}

// readAhead reads a regular file now when it is small, a single link (a
// later link to it is written without content, which only the writer
// knows) and the budget allows; else it leaves the fd to the writer.
func (r *run) readAhead(it *item, hdr *tar.Header) {
	st := &it.st
	if hdr.Size == 0 {
		sys.Close(it.fd)
		it.fd = -1
		return
	}
	if isSparse(st) {
		// Holes are archived as such; without SEEK_DATA the file is
		// archived whole.
		ext, err := dataExtents(it.fd, hdr.Size)
		if err == nil && (len(ext) != 1 || ext[0].n != hdr.Size) {
			it.holes, it.sparse = true, ext
			return
		}
	}
	if st.Nlink > 1 || hdr.Size > smallFile || !r.budget.tryAcquire(hdr.Size) {
		return
	}
	it.budget = hdr.Size
	it.data = make([]byte, hdr.Size)
	n, err := preadFull(it.fd, it.data, 0)
	if err == nil && int64(n) == hdr.Size {
		it.lateErr = checkUnchanged(it.fd, it.name, st)
	}
	sys.Close(it.fd)
	it.fd = -1
	if err != nil {
		it.err = &fs.PathError{Op: "read", Path: it.name, Err: err}
		return
	}
	if int64(n) < hdr.Size {
		// it.data is zero beyond n: the padding GNU tar writes too.
		it.lateErr = &fs.PathError{Op: "read", Path: it.name, Err: &ShrankError{Size: hdr.Size, Read: int64(n)}}
	}
}

// ErrChanged is a regular file whose size, mtime or ctime changed while
// it was read: its member may mix old and new data (GNU tar: "file
// changed as we read it"). Like a file that shrank, it makes the backup
// incomplete.
var ErrChanged = errors.New("file changed as we read it")

// checkUnchanged fstats the open file fd after its data was read and
// compares with st, the stat its header was made from.
func checkUnchanged(fd int, name string, st *sys.Stat_t) error {
	now, err := sys.Fstat(fd)
	if err != nil {
		return &fs.PathError{Op: "fstat", Path: name, Err: err}
	}
	if now.Size != st.Size || now.Mtim != st.Mtim || now.Ctim != st.Ctim {
		return &fs.PathError{Op: "read", Path: name, Err: ErrChanged}
	}
	return nil
}

// preadFull reads len(b) bytes of fd at offset off, or up to EOF.
func preadFull(fd int, b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		m, err := sys.Pread(fd, b[n:], off+int64(n))
		if errors.Is(err, sys.EINTR) {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

// readlinkat returns the target of the symlink name in dirfd; size is the
// st_size lstat gave (the target length), used as the first guess.
func readlinkat(dirfd int, name string, size int64) (string, error) {
	n := max(int(size)+1, 128)
	for {
		buf := make([]byte, n)
		m, err := sys.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if m < n {
			return string(buf[:m]), nil
		}
		n *= 2
	}
}

// readXattrs lists and reads the xattrs of an item, translates them, and
// stores them as SCHILY.xattr records of hdr. fd is the item's open fd, or
// -1 for the types that are not opened (symlinks, fifos, devices), which
// are read relative to the parent directory fd.
func (r *run) readXattrs(it *item, fd int, hdr *tar.Header) error {
	var names []string
	var err error
	var procPath string
	switch {
	case fd >= 0:
		names, err = sys.Flistxattr(fd)
	case r.xattrat:
		names, err = sys.Listxattrat(it.parent.fd, it.base, sys.AtSymlinkNofollow)
	default:
		procPath = sys.ProcFdPath(it.parent.fd) + "/" + it.base
		names, err = sys.Listxattr(procPath, false)
	}
	if errors.Is(err, sys.ENOTSUP) || errors.Is(err, sys.EOPNOTSUPP) {
		if !r.enotsup.Swap(true) {
			it.warns = append(it.warns, errNoXattrs)
		}
		return nil
	}
	if err != nil {
		return &fs.PathError{Op: "listxattr", Path: it.name, Err: err}
	}
	if len(names) == 0 {
		return nil
	}
	var errs []error
	for _, name := range names {
		var val []byte
		switch {
		case fd >= 0:
			val, err = sys.FgetxattrAll(fd, name)
		default:
			if procPath == "" {
				procPath = sys.ProcFdPath(it.parent.fd) + "/" + it.base
			}
			val, err = sys.GetxattrAll(procPath, name, false)
		}
		if errors.Is(err, sys.ENODATA) {
			continue // removed since the listing
		}
		if name == archive.XattrCaps {
			val, err = r.capsValue(it, hdr, val, err)
			if err != nil {
				errs = append(errs, err)
			}
			if val == nil {
				continue
			}
			it.caps = true
		} else if err != nil {
			errs = append(errs, &fs.PathError{Op: "getxattr " + name, Path: it.name, Err: err})
			continue
		} else if archive.IsACL(name) {
			if val, err = archive.ACLToArchive(val, r.opts.UIDMap, r.opts.GIDMap); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				continue
			}
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = make(map[string]string, len(names))
		}
		// ACLs also as text, as GNU tar --acls and bsdtar store them:
		// what both restore from (GNU tar ignores the binary xattr).
		switch name {
		case archive.XattrACLAccess:
			hdr.PAXRecords[tarfmt.ACLAccessRecord] = xattrfmt.ACLText(val)
		case archive.XattrACLDefault:
			hdr.PAXRecords[tarfmt.ACLDefaultRecord] = xattrfmt.ACLText(val)
		}
		hdr.PAXRecords[tarfmt.SchilyXattrPrefix+tarfmt.EscapeName(name)] = string(val)
	}
	return errors.Join(errs...)
}

// capsValue applies the translation and the foreign-caps policy to a
// security.capability read with error rerr. It returns the value to store
// (nil: store none) and the item's error, if any.
func (r *run) capsValue(it *item, hdr *tar.Header, raw []byte, rerr error) ([]byte, error) {
	var err error
	var out []byte
	switch {
	case errors.Is(rerr, sys.EOVERFLOW):
		// The rootid is not visible from our own namespace (we run inside
		// one): the caps belong to a namespace outside any map we can
		// express, and their bytes cannot even be read.
		err = &fs.PathError{Op: "getxattr " + archive.XattrCaps, Path: it.name, Err: rerr}
		if r.opts.ForeignCaps == archive.ForeignCapsHost {
			return nil, err
		}
		err = fmt.Errorf("%w: %w", archive.ErrForeignCaps, err)
	case rerr != nil:
		// EINVAL: a value the kernel refuses to show (revision 1, stray
		// flags, empty). It is still honoured at exec for some of these:
		// never drop it silently.
		return nil, &fs.PathError{Op: "getxattr " + archive.XattrCaps, Path: it.name, Err: rerr}
	default:
		out, err = archive.CapsToArchive(raw, r.opts.UIDMap)
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, archive.ErrForeignCaps) {
			return nil, err
		}
	}
	switch r.opts.ForeignCaps {
	case archive.ForeignCapsSkip:
		it.warns = append(it.warns, fmt.Errorf("security.capability dropped (--foreign-caps skip): %w", err))
		it.dropped = true
		return nil, nil
	case archive.ForeignCapsHost:
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[tarfmt.CommentRecord] = archive.HostScopedComment
		it.warns = append(it.warns, fmt.Errorf("security.capability kept host-scoped (--foreign-caps host): %w", err))
		return append([]byte(nil), raw...), nil
	case archive.ForeignCapsFail:
	}
	return nil, err
}
