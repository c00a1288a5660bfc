//go:build linux

package restorer

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"

	"github.com/nscap/nscap/internal/sys"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/internal/tarfmt"
	"github.com/nscap/nscap/xattrfmt"
)

// deferredDir is a directory whose mode and times wait for its contents.
type deferredDir struct {
	name   string
	mode   uint32
	times  [2]sys.Timespec
	defACL []byte // system.posix_acl_default, set last
}

// entryMeta is the translated metadata of an entry.
type entryMeta struct {
	uid, gid int
	mode     uint32
	xattrs   []xattrKV
	caps     []byte
	times    [2]sys.Timespec
	sparse   bool // write runs of zeros as holes
	// refused is a part of the entry not restored (the rest is): a
	// host-scoped cap without HostScope. warn is a notice about a value
	// restored as asked but worth telling.
	refused, warn error
	// lacking is a cap of the archive that the restore does not write
	// under [archive.ForeignCapsFail] (Verify reports it missing from the tree).
	lacking []byte
}

// rootEntry is the archive's "." member, applied to the destination
// itself once a staging directory is emptied into it.
type rootEntry struct {
	e  *tarfmt.Entry
	mt entryMeta
}

// meta translates the metadata of e.
func (rs *restorer) meta(e *tarfmt.Entry) (entryMeta, error) {
	h := e.Header
	var mt entryMeta
	var err error
	if mt.uid, mt.gid, err = rs.m.owner(h.Uid, h.Gid); err != nil {
		if rerr := rs.m.rawOwner(h.Name, h.Uid, h.Gid, false); rerr != nil {
			return mt, rerr
		}
		return mt, err
	}
	mt.mode = uint32(h.Mode) & 0o7777
	var hostScoped bool
	var foreign error
	var skipped []string
	if mt.xattrs, mt.caps, hostScoped, foreign, skipped, err = rs.m.entryXattrs(e); err != nil {
		return mt, err
	}
	if len(skipped) > 0 {
		rs.xattrsMu.Lock()
		if rs.xattrsSkipped == nil {
			rs.xattrsSkipped = map[string]int64{}
		}
		for _, n := range skipped {
			rs.xattrsSkipped[n]++
		}
		rs.xattrsMu.Unlock()
	}
	for _, x := range mt.xattrs {
		if x.name == archive.XattrACLAccess && h.Typeflag != tar.TypeSymlink {
			// Setting the ACL sets these bits; so must the chmod
			// (directories get theirs last, after the ACL).
			mt.mode = xattrfmt.ACLMode(x.value, mt.mode)
		}
	}
	if err := rs.foreignCaps(&mt, hostScoped, foreign); err != nil {
		return mt, err
	}
	mt.times = timespecs(h.AccessTime, h.ModTime)
	mt.sparse = rs.opts.Sparse || tarfmt.IsSparseMember(h)
	return mt, nil
}

// foreignCaps applies [RestoreOptions.ForeignCaps] to caps the target
// cannot hold as translated: caps the backup kept host-scoped, and caps
// whose rootid the target maps do not cover (foreign, their error). Under
// skip the file is restored without them, under host with the archive's
// value (host-scoped), each with a warning; under fail a host-scoped cap
// is left out and the entry counted as failed, and a foreign cap fails
// the entry (the error returned). mt.lacking records a cap not written.
func (rs *restorer) foreignCaps(mt *entryMeta, hostScoped bool, foreign error) error {
	if !hostScoped && foreign == nil {
		return nil
	}
	policy := rs.opts.ForeignCaps
	if hostScoped && rs.opts.HostScope && policy == archive.ForeignCapsFail {
		policy = archive.ForeignCapsHost // --host-scope: written verbatim
	}
	text := capsText(mt.caps)
	why := "the backup kept it host-scoped"
	if foreign != nil {
		why = foreign.Error()
	}
	switch policy {
	case archive.ForeignCapsHost:
		mt.warn = fmt.Errorf("xattr %s: host-scoped capability %s restored verbatim (%s)", archive.XattrCaps, text, why)
		return nil
	case archive.ForeignCapsSkip:
		mt.warn = fmt.Errorf("xattr %s: capability %s not restored (--foreign-caps skip; %s)", archive.XattrCaps, text, why)
		mt.caps = nil
		return nil
	case archive.ForeignCapsFail:
	}
	mt.lacking = mt.caps
	mt.caps = nil
	if foreign != nil {
		return fmt.Errorf("xattr %s: %w", archive.XattrCaps, foreign)
	}
	mt.refused = fmt.Errorf("xattr %s: %s: %w", archive.XattrCaps, text, ErrHostScopedCaps)
	return nil
}

// metaCost is the memory a queued member holds besides its data: its
// header's pax records (up to archive/tar's 1 MiB), their decoded xattrs
// and the translated copies. A member with huge headers and no data must
// count against the in-flight budget like a large file.
func metaCost(e *tarfmt.Entry, mt entryMeta) int64 {
	n := int64(512 + len(e.Header.Name) + len(e.Header.Linkname))
	for k, v := range e.Header.PAXRecords {
		n += int64(len(k) + len(v) + 64) // 64: a map entry
	}
	for k, v := range e.Xattrs {
		n += int64(len(k) + len(v) + 64)
	}
	for _, x := range mt.xattrs {
		n += int64(len(x.name) + len(x.value) + 48)
	}
	return n + int64(len(mt.caps))
}

// applyFd gives the open inode fd its owner, mode, xattrs, caps and times,
// in that order: chown clears the setuid bits and the caps, and caps must
// be written last.
func (rs *restorer) applyFd(fd int, name string, mt entryMeta) error {
	if err := rawErr(sys.FchownRaw(fd, mt.uid, mt.gid)); err != nil {
		return rs.d.pathErr("chown", name, err)
	}
	if err := rawErr(sys.FchmodRaw(fd, mt.mode)); err != nil {
		return rs.d.pathErr("chmod", name, err)
	}
	for _, x := range mt.xattrs {
		if err := sys.Fsetxattr(fd, x.name, x.value, 0); err != nil {
			return rs.d.pathErr("setxattr "+x.name, name, err)
		}
	}
	if len(mt.caps) > 0 {
		// fcaps's writer: a refused cap is explained as nscap set explains it.
		if err := fcaps.SetRawFd(fd, rs.d.display(name), mt.caps); err != nil {
			return err
		}
		rs.caps.Add(1)
	}
	ts := mt.times
	if err := rawErr(sys.FutimensRaw(fd, &ts)); err != nil {
		return rs.d.pathErr("utimensat", name, err)
	}
	return nil
}

// rawErr turns the result of a raw system call into an error.
//
// The inode operations of a restore (fchown, fchmod, utimensat, close of
// a file just written) only change in-memory metadata and return in
// microseconds: they are made with RawSyscall, which does not tell the Go
// scheduler about them. Through syscall.Syscall, each would let the
// runtime hand the processor to another thread when it lasts a little,
// and a restore makes a million of them: measured, about a third of the
// system time went to the scheduler's futex wake-ups and sleeps.
func rawErr(e sys.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

// finishDir sets the mode and times of a directory.
func (rs *restorer) finishDir(dd deferredDir) error {
	var fd int
	var err error
	if dd.name == "." {
		fd, err = sys.Openat(rs.d.fd, ".", sys.O_RDONLY|sys.O_DIRECTORY|sys.O_CLOEXEC, 0)
	} else {
		fd, err = openat2(rs.d.fd, dd.name, sys.O_RDONLY|sys.O_DIRECTORY|sys.O_NOFOLLOW)
	}
	if err != nil {
		return rs.d.pathErr("open", dd.name, err)
	}
	defer sys.Close(fd)
	if dd.defACL != nil {
		if err := sys.Fsetxattr(fd, archive.XattrACLDefault, dd.defACL, 0); err != nil {
			return rs.d.pathErr("setxattr "+archive.XattrACLDefault, dd.name, err)
		}
	}
	if err := sys.Fchmod(fd, dd.mode); err != nil {
		return rs.d.pathErr("chmod", dd.name, err)
	}
	if err := sys.Futimens(fd, &dd.times); err != nil {
		return rs.d.pathErr("utimensat", dd.name, err)
	}
	return nil
}

// linkXattrsDiffer compares the translated xattrs of a hardlink member
// with those of its target name in tfd and describes the first difference
// ("" when none). Caps compare as capabilities.
func linkXattrsDiffer(tfd int, tbase string, mt entryMeta) string {
	pfd, err := sys.Openat(tfd, tbase, sys.O_PATH|sys.O_NOFOLLOW|sys.O_CLOEXEC, 0)
	if err != nil {
		return "target unreadable: " + err.Error()
	}
	defer sys.Close(pfd)
	p := sys.ProcFdPath(pfd)
	if mt.caps != nil {
		got, err := sys.GetxattrAll(p, archive.XattrCaps, true)
		if err != nil && !errors.Is(err, sys.ENODATA) {
			return archive.XattrCaps + ": " + err.Error()
		}
		if !sameCaps(mt.caps, got) {
			return fmt.Sprintf("%s: member %s, target %s", archive.XattrCaps, capsText(mt.caps), capsText(got))
		}
	}
	for _, x := range mt.xattrs {
		got, err := sys.GetxattrAll(p, x.name, true)
		if err != nil || !bytes.Equal(got, x.value) {
			return x.name
		}
	}
	return ""
}

// applyAt gives the entry tmp in dirfd (a symlink, fifo or device the
// restore just made, not a regular file) its owner, mode, xattrs and
// times through a descriptor of the object itself: the directory may be
// writable by the container, which can swap another object, a symlink to
// a host file above all, in under the name at any time. The descriptor is
// opened without following, and must be what the restore made (its type,
// one link, owned by the restore) before anything is changed.
func (rs *restorer) applyAt(dirfd int, tmp string, e *tarfmt.Entry, mt entryMeta) error {
	pfd, err := sys.Openat(dirfd, tmp, sys.O_PATH|sys.O_NOFOLLOW|sys.O_CLOEXEC, 0)
	if err != nil {
		return rs.d.pathErr("open", e.Name, err)
	}
	defer sys.Close(pfd)
	st, err := sys.Fstat(pfd)
	if err != nil {
		return rs.d.pathErr("fstat", e.Name, err)
	}
	if st.Mode&sys.S_IFMT != specialType(e.Header.Typeflag) || st.Nlink != 1 || st.Uid != uint32(sys.Geteuid()) {
		return rs.d.pathErr("restore", e.Name, ErrReplaced)
	}
	if err := sys.Fchownat(pfd, "", mt.uid, mt.gid, sys.AT_EMPTY_PATH); err != nil {
		return rs.d.pathErr("chown", e.Name, err)
	}
	// The magic link of an O_PATH descriptor leads to the inode itself,
	// even a symlink's, and no further.
	p := sys.ProcFdPath(pfd)
	if e.Header.Typeflag != tar.TypeSymlink {
		if err := sys.Chmod(p, mt.mode); err != nil {
			return rs.d.pathErr("chmod", e.Name, err)
		}
	}
	for _, x := range mt.xattrs {
		if err := sys.Setxattr(p, x.name, x.value, 0, true); err != nil {
			return rs.d.pathErr("setxattr "+x.name, e.Name, err)
		}
	}
	ts := mt.times
	if err := sys.UtimesNanoAt(sys.AT_FDCWD, p, ts[:], 0); err != nil {
		return rs.d.pathErr("utimensat", e.Name, err)
	}
	return nil
}
