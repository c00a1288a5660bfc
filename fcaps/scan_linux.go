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
// has it (6.13+), else one lgetxattr(2) on its path. Subdirectories are
// opened beneath their root with openat2(2) RESOLVE_NO_SYMLINKS. Results
// are streamed: memory does not grow with the number of files, and the
// order is not defined.
//
// fn is called from one goroutine at a time. A non-nil return stops the
// scan and is returned; so is ctx's error when it is cancelled.
func Scan(ctx context.Context, roots []string, opts ScanOptions, fn func(Found) error) error {
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	s := &scanner{ctx: ctx, opts: opts, fn: fn, useAt: hasXattrat()}
	s.cond = sync.NewCond(&s.mu)
	var rootFds []int
	defer func() {
		for _, fd := range rootFds {
			sys.Close(fd)
		}
	}()
	for _, r := range roots {
		if s.stopped.Load() {
			break
		}
		rt, ok := s.startRoot(r)
		if rt != nil {
			rootFds = append(rootFds, rt.fd)
		}
		if ok {
			s.stack = append(s.stack, dirItem{root: rt, path: r})
		}
	}
	if len(s.stack) > 0 && !s.stopped.Load() {
		var wg sync.WaitGroup
		for range opts.Workers {
			wg.Go(s.work)
		}
		wg.Wait()
	}
	if s.err != nil {
		return s.err
	}
	return ctx.Err()
}

type scanRoot struct {
	fd     int    // the root directory, opened O_DIRECTORY|O_NOFOLLOW
	dev    uint64 // its st_dev, for XDev
	prefix int    // len(path)+1 (or len(path) if it ends in '/'): the start of rel in an item's path
}

type dirItem struct {
	root *scanRoot
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
	ctx   context.Context
	opts  ScanOptions
	fn    func(Found) error
	useAt bool

	fnMu    sync.Mutex
	err     error // first error of fn or ctx (under fnMu)
	stopped atomic.Bool

	mu     sync.Mutex
	cond   *sync.Cond
	stack  []dirItem // LIFO: depth first, so the stack stays small
	active int       // workers holding an item
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

func (s *scanner) stop() {
	s.stopped.Store(true)
	s.mu.Lock()
	s.cond.Broadcast()
	s.mu.Unlock()
}

// checkCtx stops the scan when ctx is done.
func (s *scanner) checkCtx() bool {
	if s.stopped.Load() {
		return false
	}
	if err := s.ctx.Err(); err != nil {
		s.fnMu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.fnMu.Unlock()
		s.stop()
		return false
	}
	return true
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
		if err == sys.ENODATA || err == sys.ENOTSUP {
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

// worker is the per-goroutine state: buffers reused for every directory.
type worker struct {
	dents []byte
	xbuf  [64]byte
	subs  []string
}

func (s *scanner) work() {
	w := &worker{dents: make([]byte, 32<<10)}
	for {
		item, ok := s.pop()
		if !ok {
			return
		}
		s.scanDir(w, item)
		subs := w.subs
		w.subs = w.subs[:0]
		s.done(item.root, subs)
	}
}

// pop waits for a directory; false means the walk is over.
func (s *scanner) pop() (dirItem, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.stack) == 0 && s.active > 0 && !s.stopped.Load() {
		s.cond.Wait()
	}
	if len(s.stack) == 0 || s.stopped.Load() {
		return dirItem{}, false
	}
	it := s.stack[len(s.stack)-1]
	s.stack[len(s.stack)-1] = dirItem{}
	s.stack = s.stack[:len(s.stack)-1]
	s.active++
	return it, true
}

// done pushes the subdirectories an item revealed and retires it.
func (s *scanner) done(root *scanRoot, subs []string) {
	s.mu.Lock()
	for _, p := range subs {
		s.stack = append(s.stack, dirItem{root: root, path: p})
	}
	s.active--
	if len(subs) > 0 || (s.active == 0 && len(s.stack) == 0) {
		s.cond.Broadcast()
	}
	s.mu.Unlock()
}

func join(dir, name string) string {
	if strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}

// scanDir lists one directory and probes its entries; subdirectories are
// collected in w.subs.
func (s *scanner) scanDir(w *worker, item dirItem) {
	if !s.checkCtx() {
		return
	}
	fd, err := sys.OpenDirBeneath(item.root.fd, item.rel())
	if err != nil {
		s.emit(Found{Path: item.path, Type: fs.ModeDir, Err: &fs.PathError{Op: "open", Path: item.path, Err: err}})
		return
	}
	defer sys.Close(fd)
	if s.opts.XDev {
		st, err := sys.Fstat(fd)
		if err != nil {
			s.emit(Found{Path: item.path, Type: fs.ModeDir, Err: &fs.PathError{Op: "fstat", Path: item.path, Err: err}})
			return
		}
		if st.Dev != item.root.dev {
			return
		}
	}
	for {
		n, err := sys.Getdents(fd, w.dents)
		if err != nil {
			s.emit(Found{Path: item.path, Type: fs.ModeDir, Err: &fs.PathError{Op: "getdents", Path: item.path, Err: err}})
			return
		}
		if n == 0 {
			return
		}
		if !sys.ParseDirents(w.dents[:n], func(nameZ []byte, typ uint8, _ uint64) bool {
			return s.entry(w, fd, item.path, nameZ, typ)
		}) {
			return
		}
		if s.stopped.Load() {
			return
		}
	}
}

// entry handles one directory entry; false stops the listing.
func (s *scanner) entry(w *worker, dirfd int, dir string, nameZ []byte, typ uint8) bool {
	mode, ok := sys.DirentType(typ)
	if !ok {
		st, err := sys.FstatatNoFollow(dirfd, string(nameZ[:len(nameZ)-1]))
		if err != nil {
			p := join(dir, string(nameZ[:len(nameZ)-1]))
			return s.emit(Found{Path: p, Err: &fs.PathError{Op: "lstat", Path: p, Err: err}})
		}
		mode = sys.ModeType(st.Mode)
	}
	if mode == fs.ModeDir {
		w.subs = append(w.subs, join(dir, string(nameZ[:len(nameZ)-1])))
	}
	if mode != 0 && !s.opts.NonRegular {
		return true
	}
	if !s.useAt {
		p := join(dir, string(nameZ[:len(nameZ)-1]))
		n, err := sys.Getxattr(p, AttrName, w.xbuf[:], false)
		return s.report(p, mode, w.xbuf[:n], err, func() ([]string, error) { return sys.Listxattr(p, false) })
	}
	n, err := sys.GetxattratZ(dirfd, nameZ, attrZ, sys.AtSymlinkNofollow, w.xbuf[:])
	if err == sys.ENODATA && !s.opts.All {
		return true // the common case: no allocation at all
	}
	name := string(nameZ[:len(nameZ)-1])
	return s.report(join(dir, name), mode, w.xbuf[:n], err, func() ([]string, error) {
		return sys.Listxattrat(dirfd, name, sys.AtSymlinkNofollow)
	})
}
