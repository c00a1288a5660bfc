package fcaps

import (
	"context"
	"errors"
	"io/fs"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/nscap/nscap/internal/sys"
	"github.com/nscap/nscap/xattrfmt"
)

// ScanOptions tunes [Scan].
type ScanOptions struct {
	// Workers is the number of directories read in parallel; 0 means
	// GOMAXPROCS.
	Workers int
	// XDev keeps the walk on the filesystem of each root (like find
	// -xdev): a directory whose st_dev differs from its root's is neither
	// listed nor reported.
	XDev bool
	// All also reports regular files without capabilities, with a Found.Err
	// matching [ErrNoCaps] (or [ErrNotSupported] on a filesystem without
	// xattrs), as getcap -v lists them.
	All bool
	// NonRegular also probes directories, symlinks, devices, fifos and
	// sockets (getcap -r reads regular files only) and reports those
	// carrying security.capability, which the kernel accepts on any file
	// type but never acts on. It costs the same one system call per entry
	// as a regular file (getxattrat with AT_SYMLINK_NOFOLLOW opens nothing).
	NonRegular bool
}

// Found is one file reported by [Scan].
type Found struct {
	// Path is the root joined with the names below it, as getcap -r
	// prints it.
	Path string
	// Type holds the type bits of the directory entry (0 for a regular
	// file).
	Type fs.FileMode
	// Caps is the decoded value when Err is nil.
	Caps xattrfmt.FileCaps
	// Err is non-nil when the capabilities could not be read: an
	// [*fs.PathError] matching [ErrUnreadable], [ErrNotVisible], the errno,
	// or [ErrNoCaps] for files listed because of ScanOptions.All.
	Err error
}

// hasXattrat is sys.HasXattrat; tests swap it to cover the fallback.
var hasXattrat = sys.HasXattrat

// attrZ is AttrName NUL-terminated, for sys.GetxattratZ.
var attrZ = []byte(AttrName + "\x00")

// Scan walks the trees under roots in parallel, never following symlinks,
// and calls fn for every regular file carrying security.capability, and
// for every per-path error with Found.Err set (never fatal: the walk goes
// on). A root that is a regular file is checked itself; a root that is a
// symlink is not followed and, as with getcap -r, yields nothing (unless
// ScanOptions.NonRegular).
//
// Directories are listed with getdents64(2) and the type of each entry is
// taken from d_type (fstatat(2) only for DT_UNKNOWN); each regular file
// costs one getxattrat(2) relative to its directory's fd when the kernel
// has it (6.13+), else one lgetxattr(2) on its path. A subdirectory is
// opened relative to its parent's fd, by its name alone, with
// O_DIRECTORY|O_NOFOLLOW: no symlink is ever followed and a tree renamed
// concurrently cannot redirect the walk. Each worker walks depth first,
// keeping the fds of the directories above it open (at most 64 levels:
// deeper directories are reopened beneath their root with openat2(2)
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), and keeps a small shared queue
// stocked with the largest pending subdirectories it holds (the
// shallowest), from which the other workers take when they run out. With
// no more workers than GOMAXPROCS, the per-entry system calls bypass the
// Go scheduler (raw system calls): there is no other goroutine to run
// meanwhile. Nothing is allocated per file or per directory except for
// what is reported, so memory does not grow with the tree; results are
// streamed, in no defined order.
//
// fn is called from one goroutine at a time. A non-nil return stops the
// scan and is returned; so is ctx's error when it is cancelled.
func Scan(ctx context.Context, roots []string, opts ScanOptions, fn func(Found) error) error {
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	s := &scanner{ctx: ctx, ctxDone: ctx.Done(), opts: opts, fn: fn, useAt: hasXattrat(), raw: opts.Workers <= runtime.GOMAXPROCS(0)}
	s.cond = sync.NewCond(&s.mu)
	if err := ctx.Err(); err != nil {
		return err
	}
	var rootFds []int
	defer func() {
		for _, fd := range rootFds {
			sys.Close(fd)
		}
	}()
	for _, r := range roots {
		if s.cancelled() {
			break
		}
		rt, ok := s.startRoot(r)
		if rt != nil {
			rootFds = append(rootFds, rt.fd)
		}
		if ok {
			s.queue = append(s.queue, dirItem{root: rt, fd: -1, path: r})
		}
	}
	if len(s.queue) > 0 && !s.stopped.Load() {
		// Keep a reserve of queued directories besides the waiting
		// workers' share: a worker the kernel preempts (a busy machine)
		// then never holds up the others, which take from the reserve.
		reserve := 0
		if opts.Workers > 1 {
			reserve = opts.Workers
		}
		s.hungry.Store(int32(reserve - len(s.queue)))
		var wg sync.WaitGroup
		for range opts.Workers {
			wg.Go(s.work)
		}
		wg.Wait()
	}
	// After a stop, directories handed out but never taken are still open.
	for _, it := range s.queue {
		if it.fd >= 0 {
			sys.Close(it.fd)
		}
	}
	s.fnMu.Lock()
	defer s.fnMu.Unlock()
	if s.err != nil {
		return s.err
	}
	return ctx.Err()
}

// maxHeldDepth bounds the directory fds a worker keeps open above the one
// it lists; deeper subdirectories are queued by path and reopened from
// their root.
const maxHeldDepth = 64

type scanRoot struct {
	fd     int    // the root directory, opened O_DIRECTORY|O_NOFOLLOW
	dev    uint64 // its st_dev, for XDev
	prefix int    // len(path)+1 (or len(path) if it ends in '/'): the start of rel in an item's path
}

// dirItem is a directory waiting in the queue.
type dirItem struct {
	root *scanRoot
	fd   int    // the directory, already open (its taker closes it); -1: open path beneath root.fd
	path string // the root joined with the relative path
}

// rel returns the item's path relative to its root ("." for the root).
func (d dirItem) rel() string {
	if d.root.prefix >= len(d.path) {
		return "."
	}
	return d.path[d.root.prefix:]
}

type scanner struct {
	ctx     context.Context
	ctxDone <-chan struct{} // polled once per directory and per getdents64 batch
	opts    ScanOptions
	fn      func(Found) error
	useAt   bool
	// raw makes the per-entry system calls (getxattrat, openat, getdents64
	// and close of directories) raw ones: with no more workers than Ps
	// there is no other goroutine to hand a P to during a call, so telling
	// the scheduler would only cost (see sys.ProbeXattratZ). With more
	// workers than Ps (to overlap disk reads on a cold cache), it is told.
	raw bool

	fnMu    sync.Mutex
	err     error // first error of fn or ctx (under fnMu)
	stopped atomic.Bool

	mu     sync.Mutex
	cond   *sync.Cond
	queue  []dirItem // LIFO
	active int       // workers holding an item
	// hungry is the number of waiting workers plus a reserve, minus the
	// queued items (under mu, read without it): while it is positive, a
	// worker hands pending subdirectories to the queue.
	hungry atomic.Int32
}

// emit hands f to fn under fnMu; it returns false once the scan stops.
func (s *scanner) emit(f Found) bool {
	s.fnMu.Lock()
	defer s.fnMu.Unlock()
	if s.err != nil {
		return false
	}
	if err := s.fn(f); err != nil {
		s.err = err
		s.stop()
		return false
	}
	return true
}

// cancelled reports whether the scan is to stop: fn failed, or ctx is
// done (then its error becomes the scan's). Polling, rather than a
// goroutine waiting on ctx, stops the workers promptly even when they
// keep every P busy with raw system calls.
func (s *scanner) cancelled() bool {
	if s.stopped.Load() {
		return true
	}
	select {
	case <-s.ctxDone:
		s.fnMu.Lock()
		if s.err == nil {
			s.err = s.ctx.Err()
		}
		s.fnMu.Unlock()
		s.stop()
		return true
	default:
		return false
	}
}

func (s *scanner) stop() {
	s.stopped.Store(true)
	s.mu.Lock()
	s.cond.Broadcast()
	s.mu.Unlock()
}

// startRoot inspects root: a directory is opened and returned for walking,
// a regular file (or, with NonRegular, anything else) is probed at once.
func (s *scanner) startRoot(root string) (*scanRoot, bool) {
	st, err := sys.Lstat(root)
	if err != nil {
		s.emit(Found{Path: root, Err: &fs.PathError{Op: "lstat", Path: root, Err: err}})
		return nil, false
	}
	mode := sys.ModeType(st.Mode)
	if mode != fs.ModeDir {
		if mode == 0 || s.opts.NonRegular {
			s.probePath(root, mode)
		}
		return nil, false
	}
	fd, err := sys.OpenDir(root)
	if err != nil {
		s.emit(Found{Path: root, Type: fs.ModeDir, Err: &fs.PathError{Op: "open", Path: root, Err: err}})
		return nil, false
	}
	rt := &scanRoot{fd: fd, dev: st.Dev, prefix: len(root) + 1}
	if strings.HasSuffix(root, "/") {
		rt.prefix = len(root)
	}
	if s.opts.NonRegular {
		s.probePath(root, fs.ModeDir)
	}
	return rt, true
}

// probePath reads the value of path with lgetxattr(2) and reports it.
func (s *scanner) probePath(path string, mode fs.FileMode) {
	var buf [64]byte
	n, err := sys.Getxattr(path, AttrName, buf[:], false)
	s.report(path, mode, buf[:n], err, func() ([]string, error) { return sys.Listxattr(path, false) })
}

// report turns the outcome of one read into a Found (or nothing).
func (s *scanner) report(path string, mode fs.FileMode, val []byte, err error, list func() ([]string, error)) bool {
	if err != nil {
		if errors.Is(err, syscall.ERANGE) {
			val, err = sys.GetxattrAll(path, AttrName, false)
		}
	}
	if err != nil {
		if errors.Is(err, sys.ENODATA) || errors.Is(err, sys.ENOTSUP) {
			if !s.opts.All || mode != 0 {
				return true
			}
		}
		return s.emit(Found{Path: path, Type: mode, Err: readError("getxattr", path, err, list)})
	}
	c, derr := decode(path, val)
	if derr != nil {
		return s.emit(Found{Path: path, Type: mode, Err: derr})
	}
	return s.emit(Found{Path: path, Type: mode, Caps: c})
}
