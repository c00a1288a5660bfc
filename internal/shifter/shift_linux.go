//go:build linux

package shifter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/nscap/nscap/internal/archive"

	"github.com/nscap/nscap/internal/sys"

	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

// Shift re-owns the tree at root in place: every owner, POSIX ACL id
// (access and default ACLs) and capability rootid is moved from the
// source maps to the target maps of opts, so that the tree means under
// the target maps what it meant under the source ones. A revision-2 cap
// (the container root's) stays the container root's: revision 3 with the
// new root's host uid, or revision 2 again when that is host uid 0; a
// nested root's revision-3 cap moves to the nested root's new host uid.
//
// The kernel clears caps and the setuid and setgid bits of a file it
// chowns; Shift writes them back. It never follows a symlink (symlinks
// are lchown'ed, every other inode is changed through a descriptor of
// the inode it stat'ed), shifts a hardlinked inode once, and does not
// cross into other file systems unless [ShiftOptions.CrossMounts]. An id
// outside the source maps is left as it is: silently when it is in the
// target maps (the inode is shifted already), else reported to
// [ShiftReporter.Error]. A cap whose rootid is outside the source map
// follows [ShiftOptions.ForeignCaps].
//
// Crash safety: an inode is done when its ids are outside the source
// maps, so running a killed shift again completes it, provided the source
// and target ranges are disjoint ([ErrShiftOverlap] otherwise). What the
// kernel clears on chown (caps, setuid and setgid bits) is first written,
// with the values to put back, to a journal in the state directory
// (fdatasync'ed): a run that finds it completes those inodes before
// anything else, whichever maps it was run with. The journal is removed
// when a run ends, unless it was stopped or an inode it names failed.
//
// Shift returns the totals; a run that left ids or inodes as they were
// ends with a [*ShiftFailedError].
func Shift(ctx context.Context, root string, opts ShiftOptions) (ShiftSummary, error) {
	opts.ApplyDefaults()
	if err := CheckMaps(&opts); err != nil {
		return ShiftSummary{}, err
	}
	if opts.ForeignCaps > archive.ForeignCapsHost {
		return ShiftSummary{}, fmt.Errorf("foreign caps policy %d unknown", opts.ForeignCaps)
	}
	rootfd, err := sys.Open(root, sys.O_RDONLY|sys.O_DIRECTORY|sys.O_CLOEXEC, 0)
	if err != nil {
		return ShiftSummary{}, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	defer sys.Close(rootfd)
	st, err := sys.Fstat(rootfd)
	if err != nil {
		return ShiftSummary{}, &fs.PathError{Op: "fstat", Path: root, Err: err}
	}
	s := &shifter{
		ctx:     ctx,
		opts:    &opts,
		maps:    shiftMaps{opts.FromUID, opts.FromGID, opts.ToUID, opts.ToGID},
		root:    root,
		rootfd:  rootfd,
		rootDev: st.Dev,
		raw:     opts.Workers <= runtime.GOMAXPROCS(0),
	}
	s.sum.DryRun = opts.DryRun
	s.cond = sync.NewCond(&s.mu)
	if !opts.DryRun {
		if err := s.openJournal(); err != nil {
			return s.summary(), err
		}
	}
	s.stack = []string{"."}
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.work()
		}()
	}
	wg.Wait()
	if n := s.already.Load(); n > 0 && s.changed.Load() > 0 && s.journal != nil && !s.journal.resumed {
		// A fresh run that found both: the tree had owners in the
		// target range before the shift; a reverse shift will move them
		// too.
		s.warn(".", fmt.Errorf("%d inodes were owned in the --to range already and were taken as shifted: the reverse shift would move them into the --from range", n))
	}
	sum := s.summary()
	err = s.abortErr()
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if s.journal != nil {
		// Keep the journal while an inode it names may be incomplete:
		// the run was stopped, or an inode it journaled failed.
		if jerr := s.journal.Close(err == nil && !s.incomplete.Load()); err == nil {
			err = jerr
		}
	}
	if err == nil && sum.Failures > 0 {
		err = &ShiftFailedError{Failures: sum.Failures}
	}
	opts.Reporter.Finish(sum)
	return sum, err
}

// openJournal opens the journal of the tree and completes the inodes an
// interrupted shift left half done.
func (s *shifter) openJournal() error {
	j, err := openShiftJournal(s.opts.StateDir, s.root, s.rootfd, s.opts)
	if err != nil {
		return err
	}
	s.journal = j
	if err := s.replay(); err != nil {
		_ = j.Close(false)
		return err
	}
	if j.other != "" {
		// The journal of an interrupted shift between other maps:
		// its inodes are complete now; this run starts its own.
		s.warn(".", fmt.Errorf("completed the inodes an interrupted shift (%s) had left half done, from its journal %s", j.other, j.Path))
		if err := j.restart(s.opts); err != nil {
			_ = j.Close(false)
			return err
		}
	}
	return nil
}

// shifter is one run of [Shift].
type shifter struct {
	ctx     context.Context
	opts    *ShiftOptions
	maps    shiftMaps
	root    string
	rootfd  int
	rootDev uint64
	journal *shiftJournal
	// raw makes the per-inode system calls raw ones (see
	// sys.ProbeXattratZ): with no more workers than Ps, there is no
	// other goroutine to run meanwhile.
	raw bool

	mu     sync.Mutex
	cond   *sync.Cond
	stack  []string // directories to walk, relative to root
	active int      // workers walking a directory
	done   bool

	seen  sync.Map // hardlinked inodes already claimed: [2]uint64{dev, ino}
	abort atomic.Pointer[error]
	// already counts the inodes whose owner was in the target range
	// already (taken as shifted).
	already atomic.Int64
	// incomplete is set when an inode the journal names may be left
	// without its caps or mode: the journal is kept for the next run.
	incomplete atomic.Bool

	entries, changed, caps, acls, mounts, replayed, failures, warnings atomic.Int64
	sum                                                                ShiftSummary
}

func (s *shifter) summary() ShiftSummary {
	sum := s.sum
	sum.Entries, sum.Changed, sum.Caps, sum.ACLs = s.entries.Load(), s.changed.Load(), s.caps.Load(), s.acls.Load()
	sum.Mounts, sum.Replayed, sum.Failures, sum.Warnings = s.mounts.Load(), s.replayed.Load(), s.failures.Load(), s.warnings.Load()
	return sum
}

func (s *shifter) abortErr() error {
	if p := s.abort.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *shifter) stopped() bool { return s.abort.Load() != nil || s.ctx.Err() != nil }

// fail reports an inode or id left as it was.
func (s *shifter) fail(rel string, err error) {
	s.failures.Add(1)
	if rerr := s.opts.Reporter.Error(rel, err); rerr != nil {
		s.abort.CompareAndSwap(nil, &rerr)
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

func (s *shifter) warn(rel string, err error) {
	s.warnings.Add(1)
	s.opts.Reporter.Warn(rel, err)
}

// work pops directories until the walk is over.
func (s *shifter) work() {
	for {
		s.mu.Lock()
		for len(s.stack) == 0 && !s.done && s.active > 0 && !s.stopped() {
			s.cond.Wait()
		}
		if len(s.stack) == 0 || s.done || s.stopped() {
			s.done = true
			s.cond.Broadcast()
			s.mu.Unlock()
			return
		}
		rel := s.stack[len(s.stack)-1]
		s.stack = s.stack[:len(s.stack)-1]
		s.active++
		s.mu.Unlock()

		s.dir(rel)

		s.mu.Lock()
		s.active--
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

func (s *shifter) push(rels []string) {
	if len(rels) == 0 {
		return
	}
	s.mu.Lock()
	s.stack = append(s.stack, rels...)
	s.cond.Broadcast()
	s.mu.Unlock()
}

// dir shifts the directory rel and its entries, and queues its
// subdirectories.
func (s *shifter) dir(rel string) {
	fd, err := sys.OpenDirBeneath(s.rootfd, rel)
	if errors.Is(err, sys.ENAMETOOLONG) {
		fd, err = openDeep(s.rootfd, rel, false)
	}
	if err != nil {
		s.fail(rel, &fs.PathError{Op: "open", Path: rel, Err: err})
		return
	}
	defer sys.Close(fd)
	st, err := sys.Fstat(fd)
	if err != nil {
		s.fail(rel, &fs.PathError{Op: "fstat", Path: rel, Err: err})
		return
	}
	if st.Dev != s.rootDev && !s.opts.CrossMounts {
		s.mounts.Add(1)
		s.warn(rel, errors.New("a mount point: left alone with what is below it (--one-file-system=false shifts it too)"))
		return
	}
	s.inode(handle{fd: fd}, rel, &st, nil, nil)

	// The inodes whose chown clears caps or setuid bits wait in a batch
	// (their descriptors open): one fdatasync of the journal covers them
	// all.
	var batch []*journaled
	defer func() { s.flush(batch) }()
	var subdirs []string
	buf := make([]byte, 32<<10)
	xbuf := make([]byte, 1024) // flistxattr's names
	for !s.stopped() {
		n, err := sys.Getdents(fd, buf)
		if err != nil {
			s.fail(rel, &fs.PathError{Op: "getdents", Path: rel, Err: err})
			break
		}
		if n == 0 {
			break
		}
		sys.ParseDirents(buf[:n], func(nameZ []byte, typ uint8, _ uint64) bool {
			name := string(nameZ[:len(nameZ)-1])
			child := name
			if rel != "." {
				child = rel + "/" + name
			}
			if typ == sys.DTDir {
				subdirs = append(subdirs, child)
				return true
			}
			if s.entry(fd, nameZ, child, typ, &batch, xbuf) {
				subdirs = append(subdirs, child)
			}
			if len(batch) >= journalBatch {
				s.flush(batch)
				batch = batch[:0]
			}
			return !s.stopped()
		})
		// Hand subdirectories out as they come: other workers may idle.
		if len(subdirs) >= 64 {
			s.push(subdirs)
			subdirs = nil
		}
	}
	s.push(subdirs)
}

// entry shifts the non-directory nameZ of dirfd (rel from the root); it
// returns true when the name turned out to be a directory (to walk).
func (s *shifter) entry(dirfd int, nameZ []byte, rel string, typ uint8, batch *[]*journaled, xbuf []byte) (isDir bool) {
	h, e := openEntry(dirfd, nameZ, typ, s.raw)
	if e != 0 {
		if e != sys.ENOENT { // removed meanwhile: nothing to shift
			s.fail(rel, &fs.PathError{Op: "open", Path: rel, Err: e})
		}
		return false
	}
	kept := false
	defer func() {
		if !kept {
			s.close(h.fd)
		}
	}()
	var st sys.Stat
	if e := sys.FstatZ(h.fd, &st, s.raw); e != 0 {
		s.fail(rel, &fs.PathError{Op: "fstat", Path: rel, Err: e})
		return false
	}
	if st.Mode&sys.S_IFMT == sys.S_IFDIR {
		return true
	}
	if !h.path && st.Mode&sys.S_IFMT != sys.S_IFREG {
		// Replaced meanwhile by a fifo or a device, opened for reading:
		// use an O_PATH descriptor of it instead.
		s.close(h.fd)
		kept = true // closed
		return s.entry(dirfd, nameZ, rel, sys.DTUnknown, batch, xbuf)
	}
	if st.Nlink > 1 {
		if _, dup := s.seen.LoadOrStore([2]uint64{st.Dev, st.Ino}, struct{}{}); dup {
			return false
		}
	}
	kept = s.inode(h, rel, &st, batch, xbuf)
	return false
}

// close closes a descriptor of the walk.
func (s *shifter) close(fd int) {
	if s.raw {
		_ = sys.CloseRaw(fd)
		return
	}
	sys.Close(fd)
}

// journalBatch bounds the inodes of a directory waiting for their
// journal records to be synced (each holds a descriptor).
const journalBatch = 128

// journaled is an inode whose changes wait for its journal record.
type journaled struct {
	h     handle
	rel   string
	st    sys.Stat
	p     inodePlan
	chown bool
}

// flush records the batch in the journal with one fdatasync, then
// changes each inode and closes its descriptor.
func (s *shifter) flush(batch []*journaled) {
	if len(batch) == 0 {
		return
	}
	var b strings.Builder
	for _, j := range batch {
		b.WriteString(fixRecord(j.st.Ino, j.p.uid, j.p.gid, j.st.Mode&0o7777, j.p.newCaps, j.rel))
	}
	err := s.journal.write(b.String(), true)
	if err != nil {
		s.incomplete.Store(true) // a record may have made it
	}
	for _, j := range batch {
		if err != nil {
			s.fail(j.rel, err) // not journaled: left as it is
		} else if aerr := s.apply(j.h, j.rel, &j.st, &j.p, j.chown); aerr != nil {
			s.incomplete.Store(true)
			s.fail(j.rel, aerr)
		} else {
			s.changedOne(j.rel, &j.p)
		}
		s.close(j.h.fd)
	}
}

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

// openDeep opens rel below rootfd one component at a time, for a path
// longer than PATH_MAX: every directory with O_DIRECTORY|O_NOFOLLOW
// relative to the one before (no symlink followed, none escapes), the
// last one too unless last is set (then O_PATH|O_NOFOLLOW).
func openDeep(rootfd int, rel string, last bool) (int, error) {
	parts := strings.Split(rel, "/")
	fd := rootfd
	for i, c := range parts {
		var nfd int
		var err error
		if last && i == len(parts)-1 {
			nfd, err = sys.Openat(fd, c, sys.OPathNoFollow, 0)
		} else {
			nfd, err = sys.OpenDirAtZ(fd, append([]byte(c), 0), false)
		}
		if fd != rootfd {
			sys.Close(fd)
		}
		if err != nil {
			return -1, err
		}
		fd = nfd
	}
	return fd, nil
}

// replay completes the inodes the journal of an interrupted run names:
// those it chowned but may not have given their caps and mode back.
func (s *shifter) replay() error {
	for _, f := range s.journal.fixes {
		fd, err := sys.Openat2(s.rootfd, f.path, sys.OPathNoFollow, sys.ResolveBeneath|sys.ResolveNoSymlinks)
		if errors.Is(err, sys.ENAMETOOLONG) {
			fd, err = openDeep(s.rootfd, f.path, true)
		}
		if err != nil {
			if !errors.Is(err, sys.ENOENT) {
				s.fail(f.path, &fs.PathError{Op: "open", Path: f.path, Err: err})
			}
			continue
		}
		st, err := sys.Fstat(fd)
		// Only the very inode, chowned already: otherwise the walk does
		// it from the start.
		if err == nil && st.Ino == f.ino && st.Mode&sys.S_IFMT != sys.S_IFDIR && st.Uid == f.uid && st.Gid == f.gid {
			if fixed, err := s.replayOne(fd, f, &st); err != nil {
				s.incomplete.Store(true)
				s.fail(f.path, err)
			} else if fixed {
				s.replayed.Add(1)
			}
		}
		sys.Close(fd)
	}
	return s.abortErr()
}

func (s *shifter) replayOne(fd int, f shiftFix, st *sys.Stat) (fixed bool, err error) {
	proc := sys.ProcFdPath(fd)
	if st.Mode&0o7777 != f.mode {
		if err := sys.Chmod(proc, f.mode); err != nil {
			return false, &fs.PathError{Op: "chmod", Path: f.path, Err: err}
		}
		fixed = true
	}
	if f.caps != nil {
		cur, err := sys.GetxattrAll(proc, archive.XattrCaps, true)
		if err != nil && !errors.Is(err, sys.ENODATA) {
			return fixed, &fs.PathError{Op: "getxattr " + archive.XattrCaps, Path: f.path, Err: err}
		}
		if !bytes.Equal(cur, f.caps) {
			if err := sys.Setxattr(proc, archive.XattrCaps, f.caps, 0, true); err != nil {
				return fixed, &fs.PathError{Op: "setxattr " + archive.XattrCaps, Path: f.path, Err: err}
			}
			fixed = true
		}
	}
	return fixed, nil
}
