//go:build linux

package shifter

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/nscap/nscap/internal/archive"

	"github.com/nscap/nscap/internal/sys"
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
