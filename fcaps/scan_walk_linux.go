package fcaps

import (
	"bytes"
	"io/fs"
	"syscall"

	"github.com/nscap/nscap/internal/sys"
)

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
