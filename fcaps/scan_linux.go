package fcaps

import (
	"bytes"
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

// worker is the per-goroutine state, reused for every directory: nothing
// is allocated per file or per directory unless something is reported or
// handed to another worker.
type worker struct {
	root   *scanRoot
	dents  []byte // getdents64 buffer
	xbuf   [64]byte
	path   []byte  // the path of the directory being listed or walked
	frames []frame // the open directories, from the item's down to the current one
	subs   []int   // offsets in names of the subdirectories to walk, frame after frame; -1: handed out
	names  []byte  // their names, NUL-terminated
}

// frame is a directory a worker holds open while it walks the
// subdirectories it listed.
type frame struct {
	fd       int
	pathLen  int // len(w.path) for this directory
	first    int // its subdirectories are w.subs[first:end]
	next     int // the next one to walk
	end      int
	namesOff int // len(w.names) before its names
}

func (s *scanner) work() {
	w := &worker{dents: make([]byte, 64<<10)}
	for {
		item, ok := s.pop()
		if !ok {
			return
		}
		w.root = item.root
		w.path = append(w.path[:0], item.path...)
		fd := item.fd
		if fd < 0 {
			var err error
			fd, err = sys.OpenDirBeneath(item.root.fd, item.rel())
			if err != nil {
				s.emit(Found{Path: item.path, Type: fs.ModeDir, Err: &fs.PathError{Op: "open", Path: item.path, Err: err}})
			}
		}
		if fd >= 0 {
			s.walk(w, fd)
		}
		s.done()
	}
}

func (s *scanner) getdents(fd int, buf []byte) (int, error) {
	if s.raw {
		return sys.GetdentsRaw(fd, buf)
	}
	return sys.Getdents(fd, buf)
}

func (s *scanner) closeDir(fd int) {
	if s.raw {
		sys.CloseRaw(fd)
	} else {
		sys.Close(fd)
	}
}

// pop waits for a directory; false means the walk is over.
func (s *scanner) pop() (dirItem, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) == 0 && s.active > 0 && !s.stopped.Load() {
		s.hungry.Add(1)
		s.cond.Wait()
		s.hungry.Add(-1)
	}
	if len(s.queue) == 0 || s.stopped.Load() {
		return dirItem{}, false
	}
	it := s.queue[len(s.queue)-1]
	s.queue[len(s.queue)-1] = dirItem{}
	s.queue = s.queue[:len(s.queue)-1]
	s.hungry.Add(1) // one item fewer
	s.active++
	return it, true
}

// push queues a directory for another worker.
func (s *scanner) push(it dirItem) {
	s.mu.Lock()
	s.queue = append(s.queue, it)
	s.hungry.Add(-1)
	s.cond.Signal()
	s.mu.Unlock()
}

// done retires an item; the last one ends the walk.
func (s *scanner) done() {
	s.mu.Lock()
	s.active--
	if s.active == 0 && len(s.queue) == 0 {
		s.cond.Broadcast()
	}
	s.mu.Unlock()
}

// appendJoin appends name to the path dir as getcap joins them.
func appendJoin(dir []byte, name []byte) []byte {
	if len(dir) == 0 || dir[len(dir)-1] != '/' {
		dir = append(dir, '/')
	}
	return append(dir, name...)
}

// filePath returns the path of the entry nameZ of the directory being
// listed.
func (w *worker) filePath(nameZ []byte) string {
	return string(appendJoin(w.path, nameZ[:len(nameZ)-1]))
}

// subName returns the NUL-terminated name of the subdirectory w.subs[i].
func (w *worker) subName(i int) []byte {
	off := w.subs[i]
	end := off + bytes.IndexByte(w.names[off:], 0)
	return w.names[off : end+1]
}

// walk lists the directory fd (whose path is w.path) and everything below
// it, depth first, closing every fd it opens and fd itself. Whenever the
// queue runs short (s.hungry), it hands out the last pending subdirectories
// of the shallowest directories it holds: the largest pieces of work it
// can give.
func (s *scanner) walk(w *worker, fd int) {
	w.frames, w.subs, w.names = w.frames[:0], w.subs[:0], w.names[:0]
	defer func() { // after a stop
		for _, f := range w.frames {
			s.closeDir(f.fd)
		}
	}()
	s.enter(w, fd)
	for len(w.frames) > 0 {
		if s.cancelled() {
			return
		}
		top := &w.frames[len(w.frames)-1]
		for top.next < top.end && w.subs[top.next] < 0 {
			top.next++
		}
		if top.next == top.end {
			s.closeDir(top.fd)
			w.subs, w.names = w.subs[:top.first], w.names[:top.namesOff]
			w.frames = w.frames[:len(w.frames)-1]
			continue
		}
		nameZ := w.subName(top.next)
		top.next++
		w.path = appendJoin(w.path[:top.pathLen], nameZ[:len(nameZ)-1])
		if len(w.frames) >= maxHeldDepth {
			s.push(dirItem{root: w.root, fd: -1, path: string(w.path)})
			continue
		}
		cfd, err := sys.OpenDirAtZ(top.fd, nameZ, s.raw)
		if err != nil {
			p := string(w.path)
			s.emit(Found{Path: p, Type: fs.ModeDir, Err: &fs.PathError{Op: "open", Path: p, Err: err}})
			continue
		}
		s.enter(w, cfd)
		if s.hungry.Load() > 0 {
			s.share(w)
		}
	}
}

// enter lists the directory fd, whose path is w.path, and pushes its
// frame (or closes fd when it has no subdirectory to walk, or on error).
func (s *scanner) enter(w *worker, fd int) {
	if s.opts.XDev {
		st, err := sys.Fstat(fd)
		if err != nil {
			s.closeDir(fd)
			p := string(w.path)
			s.emit(Found{Path: p, Type: fs.ModeDir, Err: &fs.PathError{Op: "fstat", Path: p, Err: err}})
			return
		}
		if st.Dev != w.root.dev {
			s.closeDir(fd)
			return
		}
	}
	f := frame{fd: fd, pathLen: len(w.path), first: len(w.subs), namesOff: len(w.names)}
	f.next = f.first
	if !s.list(w, fd) || len(w.subs) == f.first {
		s.closeDir(fd)
		w.subs, w.names = w.subs[:f.first], w.names[:f.namesOff]
		return
	}
	f.end = len(w.subs)
	w.frames = append(w.frames, f)
}

// share hands pending subdirectories to the waiting workers, taken from
// the shallowest frames first.
func (s *scanner) share(w *worker) {
	for i := range w.frames {
		f := &w.frames[i]
		for j := f.end - 1; j >= f.next && s.hungry.Load() > 0; j-- {
			if w.subs[j] < 0 {
				continue
			}
			nameZ := w.subName(j)
			w.subs[j] = -1
			p := string(appendJoin(append([]byte(nil), w.path[:f.pathLen]...), nameZ[:len(nameZ)-1]))
			cfd, err := sys.OpenDirAtZ(f.fd, nameZ, s.raw)
			if err != nil {
				s.emit(Found{Path: p, Type: fs.ModeDir, Err: &fs.PathError{Op: "open", Path: p, Err: err}})
				continue
			}
			s.push(dirItem{root: w.root, fd: cfd, path: p})
		}
		if s.hungry.Load() <= 0 {
			return
		}
	}
}

// list reads the directory fd, probing its files and collecting its
// subdirectories in w.subs; false stops the walk.
func (s *scanner) list(w *worker, fd int) bool {
	for {
		n, err := s.getdents(fd, w.dents)
		if err != nil {
			p := string(w.path)
			s.emit(Found{Path: p, Type: fs.ModeDir, Err: &fs.PathError{Op: "getdents", Path: p, Err: err}})
			return false
		}
		if n == 0 {
			return true
		}
		if !sys.ParseDirents(w.dents[:n], func(nameZ []byte, typ uint8, _ uint64) bool {
			return s.entry(w, fd, nameZ, typ)
		}) {
			return false
		}
		if s.cancelled() {
			return false
		}
	}
}

// entry handles one directory entry; false stops the listing.
func (s *scanner) entry(w *worker, dirfd int, nameZ []byte, typ uint8) bool {
	mode, ok := sys.DirentType(typ)
	if !ok {
		st, err := sys.FstatatNoFollow(dirfd, string(nameZ[:len(nameZ)-1]))
		if err != nil {
			p := w.filePath(nameZ)
			return s.emit(Found{Path: p, Err: &fs.PathError{Op: "lstat", Path: p, Err: err}})
		}
		mode = sys.ModeType(st.Mode)
	}
	if mode == fs.ModeDir {
		w.subs = append(w.subs, len(w.names))
		w.names = append(w.names, nameZ...)
	}
	if mode != 0 && !s.opts.NonRegular {
		return true
	}
	if !s.useAt {
		// lgetxattr(2) on the path, built NUL-terminated past w.path.
		dirLen := len(w.path)
		pathZ := append(appendJoin(w.path, nameZ[:len(nameZ)-1]), 0)
		w.path = pathZ[:dirLen]
		n, errno := sys.ProbeLgetxattrZ(pathZ, attrZ, w.xbuf[:], s.raw)
		if errno == sys.ENODATA && !s.opts.All {
			return true
		}
		p := string(pathZ[:len(pathZ)-1])
		return s.report(p, mode, w.xbuf[:n], errnoErr(errno), func() ([]string, error) { return sys.Listxattr(p, false) })
	}
	n, errno := sys.ProbeXattratZ(dirfd, nameZ, attrZ, sys.AtSymlinkNofollow, w.xbuf[:], s.raw)
	if errno == sys.ENODATA && !s.opts.All {
		return true // the common case: no allocation at all
	}
	name := string(nameZ[:len(nameZ)-1])
	return s.report(w.filePath(nameZ), mode, w.xbuf[:n], errnoErr(errno), func() ([]string, error) {
		return sys.Listxattrat(dirfd, name, sys.AtSymlinkNofollow)
	})
}

// errnoErr is errno as an error, nil for 0.
func errnoErr(errno syscall.Errno) error {
	if errno == 0 {
		return nil
	}
	return errno
}
