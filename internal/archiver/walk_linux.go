package archiver

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/internal/tarfmt"

	"github.com/nscap/nscap/internal/sys"
)

// FileID identifies an inode.
type FileID struct{ Dev, Ino uint64 }

// FileIDOf returns the identity of an open file.
func FileIDOf(f *os.File) (FileID, error) {
	st, err := sys.Fstat(int(f.Fd()))
	if err != nil {
		return FileID{}, &fs.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	return FileID{uint64(st.Dev), st.Ino}, nil
}

// dirHandle is an open directory shared by the items that need it: its
// own entry and its children (which are opened relative to it, so the
// walk never resolves a path twice). It is closed when the last user
// releases it.
type dirHandle struct {
	fd   int
	refs atomic.Int32
}

func newDirHandle(fd int) *dirHandle {
	d := &dirHandle{fd: fd}
	d.refs.Store(1)
	return d
}

func (d *dirHandle) acquire() *dirHandle { d.refs.Add(1); return d }

func (d *dirHandle) release() {
	if d.refs.Add(-1) == 0 {
		sys.Close(d.fd)
	}
}

// item is one entry travelling from the walk, through a worker, to the
// writer.
type item struct {
	name   string     // archive name ("./a/b"; directories without the slash)
	parent *dirHandle // the directory holding it (nil for the root)
	base   string     // its name in parent
	self   *dirHandle // a directory's own handle
	typ    fs.FileMode
	done   chan struct{}

	// Filled by prepare.
	st      sys.Stat_t
	hdr     *tar.Header
	data    []byte   // content read ahead (len = hdr.Size), or nil
	holes   bool     // a sparse file: archived as runs of data, streamed by the writer
	sparse  []extent // its data runs
	budget  int64    // read-ahead bytes to give back
	fd      int      // open regular file to stream (-1 when none)
	err     error    // the item cannot be archived
	warns   []error
	skip    bool  // not archivable (socket): warn, write nothing
	caps    bool  // a security.capability is stored
	dropped bool  // a foreign security.capability was dropped
	lateErr error // reported after the member was written (file shrank)
}

// budget bounds the bytes held by read-ahead buffers. Acquisition never
// waits (tryAcquire): a worker that cannot get bytes leaves the file to
// the writer, so a full budget cannot deadlock the in-order writer.
type budget struct{ avail atomic.Int64 }

func (b *budget) tryAcquire(n int64) bool {
	for {
		a := b.avail.Load()
		if a < n {
			return false
		}
		if b.avail.CompareAndSwap(a, a-n) {
			return true
		}
	}
}

func (b *budget) release(n int64) { b.avail.Add(n) }

// batchSize is the number of entries handed over at once.
const batchSize = 32

// smallFile is the largest file a worker reads ahead: larger files are
// streamed by the writer in chunks, so that memory stays bounded by
// ReadAhead whatever the file sizes.
const smallFile = 1 << 20

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// run is the state of one Write call.
type run struct {
	opts    *Options
	exclude FileID
	budget  budget
	rootfd  int
	rootDev uint64 // st_dev of the root, for OneFileSystem
	xattrat bool   // listxattrat/getxattrat are available

	enotsup  atomic.Bool  // ENOTSUP from listxattr was already warned
	excluded atomic.Int64 // entries left out by Options.Exclude
}

// Write archives the tree at root to w (see backup.Archiver.Write).
func Write(ctx context.Context, w io.Writer, root string, opts Options, x Extra) (sum archive.Summary, err error) {
	start := time.Now()
	opts.ApplyDefaults()
	r := &run{opts: &opts, exclude: x.Exclude, xattrat: sys.HasXattrat()}
	r.budget.avail.Store(opts.ReadAhead)
	rootDir, err := r.openRoot(root)
	if err != nil {
		return archive.Summary{}, err
	}
	meta := archive.Meta{Tool: opts.Tool, UIDMap: opts.UIDMap, GIDMap: opts.GIDMap, ForeignCaps: opts.ForeignCaps}
	if !x.MetaUIDMap.IsZero() {
		meta.UIDMap, meta.GIDMap = x.MetaUIDMap, x.MetaGIDMap
	}
	out, err := openStream(w, &opts, meta)
	if err != nil {
		rootDir.release()
		return archive.Summary{}, err
	}
	wr := &writer{r: r, tw: out.tw, raw: out.zw, links: map[FileID]string{}, rep: opts.Reporter}
	fatal := r.pipeline(ctx, rootDir, wr)
	if fatal == nil {
		fatal = out.close()
	}
	sum = wr.sum
	sum.Excluded = r.excluded.Load()
	sum.Written = out.cw.n
	sum.Duration = time.Since(start)
	sum.Workers = opts.Workers
	if fatal != nil {
		return sum, fatal
	}
	if len(wr.failed) > 0 {
		return sum, &archive.IncompleteError{Items: wr.failed}
	}
	return sum, nil
}

// openRoot opens the root of the tree and records its device.
func (r *run) openRoot(root string) (*dirHandle, error) {
	rootfd, err := sys.Open(root, sys.O_RDONLY|sys.O_DIRECTORY|sys.O_CLOEXEC|sys.O_NONBLOCK, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	rootDir := newDirHandle(rootfd)
	r.rootfd = rootfd
	rst, err := sys.Fstat(rootfd)
	if err != nil {
		rootDir.release()
		return nil, &fs.PathError{Op: "fstat", Path: root, Err: err}
	}
	r.rootDev = rst.Dev
	return rootDir, nil
}

// stream is the output of a backup: the tar writer over the compressor
// over a buffer over the caller's writer, counted.
type stream struct {
	cw *countWriter
	bw *bufio.Writer
	zw io.WriteCloser
	tw *tar.Writer
}

// openStream starts the archive on w with its pax global header.
func openStream(w io.Writer, opts *Options, meta archive.Meta) (*stream, error) {
	out := &stream{cw: &countWriter{w: w}}
	out.bw = bufio.NewWriterSize(out.cw, 256<<10)
	var err error
	if out.zw, err = archive.Compressor(out.bw, opts.Compression, opts.CompressLevel); err != nil {
		return nil, err
	}
	out.tw = tar.NewWriter(out.zw)
	err = out.tw.WriteHeader(&tar.Header{
		Typeflag:   tar.TypeXGlobalHeader,
		Name:       "pax_global_header",
		Format:     tar.FormatPAX,
		PAXRecords: map[string]string{tarfmt.CommentRecord: meta.Comment()},
	})
	if err != nil {
		return nil, fmt.Errorf("write archive: %w", err)
	}
	return out, nil
}

// close ends the archive and flushes it to the caller's writer.
func (out *stream) close() error {
	for _, c := range []func() error{out.tw.Close, out.zw.Close, out.bw.Flush} {
		if err := c(); err != nil {
			return fmt.Errorf("write archive: %w", err)
		}
	}
	return nil
}

// pipeline runs the walk, the workers that prepare the items and the
// writer that emits them in walk order; it returns the error that stopped
// the backup, if any.
func (r *run) pipeline(ctx context.Context, rootDir *dirHandle, wr *writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Entries travel in batches: one channel operation (and at most one
	// goroutine wake-up) per batch instead of per file.
	order := make(chan []*item, max(r.opts.Window/batchSize, 1))
	jobs := make(chan []*item, max(r.opts.Window/batchSize, 1))
	var walkErr error
	go func() {
		defer close(jobs)
		defer close(order)
		defer rootDir.release()
		walkErr = r.walk(ctx, rootDir, order, jobs)
	}()
	var wg sync.WaitGroup
	for range r.opts.Workers {
		wg.Go(func() { r.prepareAll(ctx, jobs) })
	}
	var fatal error
	for b := range order {
		for _, it := range b {
			<-it.done
			if fatal == nil {
				fatal = ctx.Err()
			}
			if fatal == nil {
				if fatal = wr.emit(it); fatal != nil {
					cancel()
				}
			}
			wr.finish(it)
		}
	}
	wg.Wait()
	if fatal == nil && walkErr != nil && !errors.Is(walkErr, context.Canceled) {
		fatal = walkErr
	}
	if fatal == nil {
		fatal = ctx.Err()
	}
	return fatal
}

// prepareAll is a worker: it prepares the items of the batches it gets.
func (r *run) prepareAll(ctx context.Context, jobs <-chan []*item) {
	for b := range jobs {
		for _, it := range b {
			if err := ctx.Err(); err != nil {
				// Not prepared: the writer must not emit it.
				it.err = err
			} else {
				r.prepare(it)
			}
			close(it.done)
		}
	}
}

// walk lists the tree depth first, names sorted, and sends every entry to
// order (for the writer, in archive order) and to jobs (for the workers).
func (r *run) walk(ctx context.Context, root *dirHandle, order, jobs chan<- []*item) (err error) {
	var cur []*item
	flush := func() error {
		b := cur
		cur = make([]*item, 0, batchSize)
		select {
		case order <- b:
		case <-ctx.Done():
			for _, it := range b {
				it.release()
			}
			return ctx.Err()
		}
		select {
		case jobs <- b:
			return nil
		case <-ctx.Done():
			// The writer waits for done: mark them failed so it lets go.
			for _, it := range b {
				it.err = ctx.Err()
				close(it.done)
			}
			return ctx.Err()
		}
	}
	send := func(it *item) error {
		cur = append(cur, it)
		if len(cur) >= batchSize {
			return flush()
		}
		return nil
	}
	defer func() {
		if err == nil && len(cur) > 0 {
			err = flush()
		} else {
			for _, it := range cur {
				it.release()
			}
		}
	}()
	if ExcludeMatch(r.opts.Exclude, ".") {
		return nil // as GNU tar: a pattern matching "." leaves nothing
	}
	rootItem := &item{name: ".", self: root.acquire(), typ: fs.ModeDir, done: make(chan struct{}), fd: -1}
	ents, err := readDir(root.fd)
	if err != nil {
		rootItem.err = &fs.PathError{Op: "getdents", Path: ".", Err: err}
	}
	if err := send(rootItem); err != nil {
		return err
	}
	return r.walkDir(root, ".", ents, send)
}

type dirent struct {
	name string
	typ  fs.FileMode
}

// readDir lists the directory fd, sorted by name.
func readDir(fd int) ([]dirent, error) {
	var ents []dirent
	buf := make([]byte, 32<<10)
	for {
		n, err := sys.Getdents(fd, buf)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		var derr error
		sys.ParseDirents(buf[:n], func(nameZ []byte, typ uint8, _ uint64) bool {
			name := string(nameZ[:len(nameZ)-1])
			mode, ok := sys.DirentType(typ)
			if !ok {
				var st sys.Stat_t
				if err := sys.Fstatat(fd, name, &st, sys.AT_SYMLINK_NOFOLLOW); err != nil {
					derr = err
					return false
				}
				mode = sys.ModeType(st.Mode)
			}
			ents = append(ents, dirent{name: name, typ: mode})
			return true
		})
		if derr != nil {
			return nil, derr
		}
	}
	slices.SortFunc(ents, func(a, b dirent) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return ents, nil
}

// walkDir sends the entries ents of the directory d (archive name name)
// and recurses into its subdirectories. d stays referenced by the walk
// while its children are listed.
func (r *run) walkDir(d *dirHandle, name string, ents []dirent, send func(*item) error) error {
	for _, e := range ents {
		cname := name + "/" + e.name
		if len(r.opts.Exclude) > 0 && ExcludeMatch(r.opts.Exclude, cname) {
			r.excluded.Add(1)
			continue
		}
		it := &item{name: cname, parent: d.acquire(), base: e.name, typ: e.typ, done: make(chan struct{}), fd: -1}
		if e.typ != fs.ModeDir {
			if err := send(it); err != nil {
				return err
			}
			continue
		}
		fd, err := sys.Openat(d.fd, e.name, sys.O_RDONLY|sys.O_DIRECTORY|sys.O_NOFOLLOW|sys.O_CLOEXEC|sys.O_NONBLOCK, 0)
		if err != nil {
			it.err = &fs.PathError{Op: "open", Path: cname, Err: err}
			if err := send(it); err != nil {
				return err
			}
			continue
		}
		sub := newDirHandle(fd)
		it.self = sub.acquire()
		var subEnts []dirent
		other, err := r.otherFS(fd)
		switch {
		case err != nil:
			it.err = &fs.PathError{Op: "fstat", Path: cname, Err: err}
		case other:
			// As GNU tar --one-file-system: the mount point is
			// archived, what is mounted on it is not.
			it.warns = append(it.warns, errors.New("on another filesystem: its contents are not archived (--one-file-system)"))
		default:
			if subEnts, err = readDir(fd); err != nil {
				it.err = &fs.PathError{Op: "getdents", Path: cname, Err: err}
			}
		}
		if err := send(it); err != nil {
			sub.release()
			return err
		}
		err = r.walkDir(sub, cname, subEnts, send)
		sub.release()
		if err != nil {
			return err
		}
	}
	return nil
}

// otherFS reports whether the directory fd is on another filesystem than
// the root while Options.OneFileSystem is set.
func (r *run) otherFS(fd int) (bool, error) {
	if !r.opts.OneFileSystem {
		return false, nil
	}
	st, err := sys.Fstat(fd)
	if err != nil {
		return false, err
	}
	return st.Dev != r.rootDev, nil
}

// release gives back what an item holds.
func (it *item) release() {
	if it.fd >= 0 {
		sys.Close(it.fd)
		it.fd = -1
	}
	if it.parent != nil {
		it.parent.release()
		it.parent = nil
	}
	if it.self != nil {
		it.self.release()
		it.self = nil
	}
}
