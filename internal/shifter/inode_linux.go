//go:build linux

package shifter

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/internal/sys"
	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

// TestHookChowned is called, when set (by tests only), right after the
// chown of an inode whose caps or setuid bits the kernel cleared, before
// they are written back: the window the journal covers.
var TestHookChowned func(rel string)

// handle is a descriptor of the inode a shift changes: a directory or a
// regular file opened for reading, on which the f* calls work, or an
// O_PATH descriptor (symlinks, fifos, devices, and files the caller may
// not open), reached through its /proc/self/fd magic link.
type handle struct {
	fd   int
	path bool // O_PATH
}

func (h handle) proc() string { return sys.ProcFdPath(h.fd) }

func (h handle) list() ([]string, error) {
	if h.path {
		return sys.Listxattr(h.proc(), true)
	}
	return sys.Flistxattr(h.fd)
}

func (h handle) get(name string) ([]byte, error) {
	if h.path {
		return sys.GetxattrAll(h.proc(), name, true)
	}
	return sys.FgetxattrAll(h.fd, name)
}

func (h handle) set(name string, val []byte) error {
	if h.path {
		return sys.Setxattr(h.proc(), name, val, 0, true)
	}
	return sys.Fsetxattr(h.fd, name, val, 0)
}

func (h handle) remove(name string) error {
	if h.path {
		return sys.Removexattr(h.proc(), name, true)
	}
	return sys.Fremovexattr(h.fd, name)
}

func (h handle) chmod(mode uint32) error {
	if h.path {
		return sys.Chmod(h.proc(), mode)
	}
	return sys.Fchmod(h.fd, mode)
}

// openEntry opens the entry nameZ (NUL-terminated) of dirfd, never
// following a symlink: a regular file (typ DT_REG from the directory)
// for reading, without updating its atime, anything else with O_PATH
// (opening a device or a fifo for I/O has side effects). A file that
// cannot be opened for reading is opened with O_PATH.
func openEntry(dirfd int, nameZ []byte, typ uint8, raw bool) (handle, syscall.Errno) {
	if typ == sys.DTReg {
		const rd = sys.O_RDONLY | sys.O_NOFOLLOW | sys.O_NONBLOCK | sys.O_NOCTTY | sys.O_CLOEXEC
		fd, e := sys.OpenatZ(dirfd, nameZ, rd|sys.O_NOATIME, raw)
		if e == sys.EPERM { // O_NOATIME: not the owner, no CAP_FOWNER
			fd, e = sys.OpenatZ(dirfd, nameZ, rd, raw)
		}
		switch e {
		case 0:
			return handle{fd: fd}, 0
		case sys.EACCES, sys.EPERM, sys.ELOOP, sys.ENXIO, sys.ETXTBSY:
		default:
			return handle{fd: -1}, e
		}
	}
	fd, e := sys.OpenatZ(dirfd, nameZ, sys.OPathNoFollow, raw)
	return handle{fd: fd, path: true}, e
}

// xattrKV is an xattr to write.
type xattrKV struct {
	name  string
	value []byte
}

// inodePlan is what a shift changes on one inode.
type inodePlan struct {
	uid, gid  uint32
	oldCaps   []byte // the cap on disk (nil: none)
	newCaps   []byte // the cap to leave on it (nil: none)
	acls      []xattrKV
	change    ShiftChange
	dropCaps  bool
	leaveNode bool // leave the whole inode as it is (reported)
}

// plan works out the changes of the inode fd (stat'ed as st).
func (s *shifter) plan(h handle, rel string, st *sys.Stat, xbuf []byte) (p inodePlan) {
	p.uid, p.gid = st.Uid, st.Gid
	p.change = ShiftChange{OldUID: st.Uid, NewUID: st.Uid, OldGID: st.Gid, NewGID: st.Gid}
	id := func(from, to userns.Map, kind archive.IDKind, h uint32) uint32 {
		n, ok, err := moveID(from, to, kind, h)
		switch {
		case err != nil:
			s.fail(rel, fmt.Errorf("%s %d: %w", kind, h, err))
		case !ok && !inMap(to, h):
			s.fail(rel, &archive.IDError{Kind: kind, ID: h, Host: true, Err: &userns.UnmappedError{ID: h, Host: true, Map: from}})
		case !ok && kind == archive.KindUID:
			s.already.Add(1)
		}
		return n
	}
	p.uid = id(s.maps.fromUID, s.maps.toUID, archive.KindUID, st.Uid)
	p.gid = id(s.maps.fromGID, s.maps.toGID, archive.KindGID, st.Gid)
	p.change.NewUID, p.change.NewGID = p.uid, p.gid
	if st.Mode&sys.S_IFMT == sys.S_IFLNK {
		return p // no xattrs the shift knows on a symlink
	}
	names, err := s.listNames(h, xbuf)
	if err != nil && !errors.Is(err, sys.ENOTSUP) && !errors.Is(err, sys.EOPNOTSUPP) {
		s.fail(rel, &fs.PathError{Op: "listxattr", Path: rel, Err: err})
		p.leaveNode = true
		return p
	}
	for _, name := range names {
		if name != archive.XattrCaps && !archive.IsACL(name) {
			continue
		}
		raw, err := h.get(name)
		if errors.Is(err, sys.ENODATA) {
			continue
		}
		if err != nil {
			s.fail(rel, &fs.PathError{Op: "getxattr " + name, Path: rel, Err: err})
			p.leaveNode = true
			return p
		}
		if name == archive.XattrCaps {
			if !s.planCaps(rel, raw, &p) {
				p.leaveNode = true
				return p
			}
			continue
		}
		out, unmoved, err := s.maps.acl(raw)
		if err != nil {
			s.fail(rel, fmt.Errorf("%s: %w", name, err))
			p.leaveNode = true
			return p
		}
		unseen := false
		for _, e := range unmoved {
			to := s.maps.toGID
			if e.Kind == archive.KindACLUser {
				to = s.maps.toUID
			}
			switch {
			case e.ID == xattrfmt.ACLUndefinedID:
				// Read through a helper namespace: an id it does not
				// map, which the kernel shows as -1 and refuses to write.
				unseen = true
				s.fail(rel, fmt.Errorf("%s: an entry names an %s outside the ids this namespace maps (outside your subordinate ranges); the ACL is left as it is", name, e.Kind))
			case !inMap(to, e.ID):
				s.fail(rel, fmt.Errorf("%s: %w", name, e))
			}
		}
		if !unseen && !bytes.Equal(out, raw) {
			p.acls = append(p.acls, xattrKV{name: name, value: out})
			p.change.ACLs++
		}
	}
	return p
}

// listNames lists the xattr names of h, into xbuf when it fits: most
// inodes have none, and then nothing is allocated.
func (s *shifter) listNames(h handle, xbuf []byte) ([]string, error) {
	if h.path || len(xbuf) == 0 {
		return h.list()
	}
	n, e := sys.FlistxattrZ(h.fd, xbuf, s.raw)
	switch {
	case e == sys.ERANGE:
		return h.list()
	case e != 0:
		return nil, e
	case n == 0:
		return nil, nil
	}
	return sys.SplitXattrNames(xbuf[:n]), nil
}

// planCaps plans the cap raw; false leaves the inode alone.
func (s *shifter) planCaps(rel string, raw []byte, p *inodePlan) bool {
	p.oldCaps = raw
	out, oldRoot, newRoot, foreign, err := s.maps.caps(raw)
	if err != nil {
		s.fail(rel, fmt.Errorf("%s: %w", archive.XattrCaps, err))
		return false
	}
	p.change.OldRootID, p.change.NewRootID = oldRoot, newRoot
	switch {
	case !foreign:
		p.newCaps = out
		p.change.Caps = !bytes.Equal(out, raw)
	case inMap(s.maps.toUID, oldRoot):
		p.newCaps = raw // shifted already (revision 2 of a target that maps host uid 0 too)
	default:
		ferr := fmt.Errorf("%s: rootid %d: %w", archive.XattrCaps, oldRoot,
			&archive.IDError{Kind: archive.KindRootID, ID: oldRoot, Host: true, Err: &userns.UnmappedError{ID: oldRoot, Host: true, Map: s.maps.fromUID}})
		switch s.opts.ForeignCaps {
		case archive.ForeignCapsFail:
			s.fail(rel, fmt.Errorf("%w; the file is left as it is (--foreign-caps skip drops the cap, host keeps it)", ferr))
			return false
		case archive.ForeignCapsSkip:
			s.warn(rel, fmt.Errorf("%w; cap dropped (--foreign-caps skip)", ferr))
			p.dropCaps = true
			p.change.Caps = true
		case archive.ForeignCapsHost:
			s.warn(rel, fmt.Errorf("%w; cap kept as it is (--foreign-caps host)", ferr))
			p.newCaps = raw
		}
	}
	return true
}

// inMap reports whether the host id h is in m.
func inMap(m userns.Map, h uint32) bool {
	_, err := m.ToNs(h)
	return err == nil
}

// inode shifts the inode fd (a directory opened for reading or an O_PATH
// descriptor of anything else), stat'ed as st. An inode whose chown
// clears caps or setuid bits is appended to batch, which then owns fd
// (inode returns true), when batch is not nil; otherwise it is changed
// at once, its journal record synced first.
func (s *shifter) inode(h handle, rel string, st *sys.Stat, batch *[]*journaled, xbuf []byte) bool {
	s.entries.Add(1)
	p := s.plan(h, rel, st, xbuf)
	if p.leaveNode {
		return false
	}
	chown := p.uid != st.Uid || p.gid != st.Gid
	if !chown && !p.change.Caps && len(p.acls) == 0 {
		return false
	}
	if s.opts.DryRun {
		s.changedOne(rel, &p)
		return false
	}
	if needsJournal(st, &p, chown) {
		j := &journaled{h: h, rel: rel, st: *st, p: p, chown: chown}
		if batch != nil {
			*batch = append(*batch, j)
			return true
		}
		if err := s.journal.write(fixRecord(st.Ino, p.uid, p.gid, st.Mode&0o7777, p.newCaps, rel), true); err != nil {
			s.incomplete.Store(true)
			s.fail(rel, err)
			return false
		}
	}
	if err := s.apply(h, rel, st, &p, chown); err != nil {
		if needsJournal(st, &p, chown) {
			s.incomplete.Store(true)
		}
		s.fail(rel, err)
	} else {
		s.changedOne(rel, &p)
	}
	return false
}

// changedOne counts and reports the inode changed (or, under DryRun, to
// change) as p says.
func (s *shifter) changedOne(rel string, p *inodePlan) {
	s.changed.Add(1)
	if p.change.Caps {
		s.caps.Add(1)
	}
	s.acls.Add(int64(len(p.acls)))
	s.opts.Reporter.Change(rel, p.change)
}

// needsJournal tells whether the chown of the inode clears what the
// shift must write back (caps, setuid and setgid bits): the kernel
// clears them on every non-directory it chowns.
func needsJournal(st *sys.Stat, p *inodePlan, chown bool) bool {
	typ := st.Mode & sys.S_IFMT
	if !chown || typ == sys.S_IFDIR || typ == sys.S_IFLNK {
		return false
	}
	return p.oldCaps != nil || st.Mode&(sys.S_ISUID|sys.S_ISGID) != 0
}

// apply makes the changes of p on the inode fd; its journal record, when
// it needs one, is synced already.
func (s *shifter) apply(h handle, rel string, st *sys.Stat, p *inodePlan, chown bool) error {
	for _, a := range p.acls {
		if err := h.set(a.name, a.value); err != nil {
			return &fs.PathError{Op: "setxattr " + a.name, Path: rel, Err: err}
		}
	}
	typ := st.Mode & sys.S_IFMT
	mode := st.Mode & 0o7777
	// What the kernel clears when it chowns a non-directory.
	cleared := chown && typ != sys.S_IFDIR
	// (fifos and devices keep setuid bits as well as files do).
	suid := cleared && typ != sys.S_IFLNK && mode&(sys.S_ISUID|sys.S_ISGID) != 0
	if chown {
		if e := sys.FchownEmptyZ(h.fd, p.uid, p.gid, s.raw); e != 0 {
			if e == sys.EPERM && s.opts.InHelper {
				return fmt.Errorf("lchown %s: %w (through the helper namespace: the file's owner or group is outside the ids it maps, your subordinate ranges)", rel, e)
			}
			return &fs.PathError{Op: "lchown", Path: rel, Err: e}
		}
		if TestHookChowned != nil && needsJournal(st, p, chown) {
			TestHookChowned(rel)
		}
	}
	if suid {
		if err := h.chmod(mode); err != nil {
			return &fs.PathError{Op: "chmod", Path: rel, Err: err}
		}
	}
	switch {
	case p.newCaps != nil && (cleared || !bytes.Equal(p.newCaps, p.oldCaps)):
		if err := h.set(archive.XattrCaps, p.newCaps); err != nil {
			return &fs.PathError{Op: "setxattr " + archive.XattrCaps, Path: rel, Err: err}
		}
	case p.dropCaps && !cleared:
		if err := h.remove(archive.XattrCaps); err != nil && !errors.Is(err, sys.ENODATA) {
			return &fs.PathError{Op: "removexattr " + archive.XattrCaps, Path: rel, Err: err}
		}
	}
	return nil
}
