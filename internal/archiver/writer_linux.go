package archiver

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"

	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/internal/tarfmt"

	"github.com/nscap/nscap/internal/sys"
)

// writer is the single goroutine emitting members in walk order.
type writer struct {
	r      *run
	tw     *tar.Writer
	raw    io.Writer // under tw: sparse members are written around it
	rep    archive.Reporter
	links  map[FileID]string // first name of each inode with nlink > 1
	sum    archive.Summary
	failed []archive.ItemError
	buf    []byte
	zeros  []byte
}

// fail reports an item error; a non-nil result stops the backup.
func (w *writer) fail(name string, err error) error {
	w.sum.Errors++
	w.failed = append(w.failed, archive.ItemError{Path: name, Err: err})
	return w.rep.Error(name, err)
}

// emit writes one prepared item. Its error is fatal (the output failed, or
// the reporter asked to stop).
func (w *writer) emit(it *item) error {
	name := it.name
	if name == "." {
		name = "./"
	}
	for _, e := range it.warns {
		w.rep.Warn(name, e)
	}
	if it.dropped {
		w.sum.Skipped++
	}
	if it.err != nil {
		return w.fail(name, it.err)
	}
	if it.skip {
		w.sum.Skipped++
		w.rep.CompleteItem(name, archive.ActionSkipped, archive.ItemStats{})
		return nil
	}
	hdr := it.hdr
	id := FileID{uint64(it.st.Dev), it.st.Ino}
	if hdr.Typeflag == tar.TypeReg && id == w.r.exclude {
		return nil // the archive being written
	}
	action := archive.ActionArchived
	if hdr.Typeflag != tar.TypeDir && it.st.Nlink > 1 {
		if first, ok := w.links[id]; ok {
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			hdr.Size = 0
			// Like GNU tar: the inode's xattrs came with its first member.
			hdr.PAXRecords = nil
			action = archive.ActionLinked
		} else {
			w.links[id] = hdr.Name
		}
	}
	w.rep.StartFile(name)
	if hdr.Typeflag == tar.TypeReg && it.holes {
		if err := w.sparseMember(it); err != nil {
			return err
		}
	} else if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write archive: %s: %w", name, err)
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
		if !it.holes {
			if err := w.content(it); err != nil {
				return err
			}
		}
		w.sum.Files++
		w.sum.Bytes += hdr.Size
	case tar.TypeLink:
		w.sum.Hardlinks++
	case tar.TypeDir:
		w.sum.Dirs++
	case tar.TypeSymlink:
		w.sum.Symlinks++
	default:
		w.sum.Specials++
	}
	w.sum.Entries++
	if it.caps && hdr.Typeflag != tar.TypeLink {
		w.sum.Caps++
	}
	for k := range hdr.PAXRecords {
		if len(k) > len(tarfmt.SchilyXattrPrefix) && k[:len(tarfmt.SchilyXattrPrefix)] == tarfmt.SchilyXattrPrefix {
			w.sum.Xattrs++
		}
	}
	if it.lateErr != nil {
		return w.fail(name, it.lateErr)
	}
	w.rep.CompleteItem(name, action, archive.ItemStats{Size: hdr.Size, Caps: it.caps})
	return nil
}

// content writes a regular file's data: the read-ahead buffer, or the
// file streamed from its fd in chunks.
func (w *writer) content(it *item) error {
	size := it.hdr.Size
	if size == 0 {
		return nil
	}
	if it.data != nil {
		w.sum.ReadAhead += size
		if _, err := w.tw.Write(it.data); err != nil {
			return fmt.Errorf("write archive: %s: %w", it.hdr.Name, err)
		}
		return nil
	}
	if err := w.stream(w.tw, it, 0, size); err != nil {
		return err
	}
	if it.lateErr == nil {
		it.lateErr = checkUnchanged(it.fd, it.hdr.Name, &it.st)
	}
	return nil
}

// stream copies n bytes of it's file from offset off to out in chunks of
// w.buf. A file that shrank (or failed to read) is padded with zeros to
// the size the header promised, as GNU tar does, and reported.
func (w *writer) stream(out io.Writer, it *item, off, n int64) error {
	if w.buf == nil {
		w.buf = make([]byte, streamChunk)
	}
	for end := off + n; off < end; {
		k := int(min(int64(len(w.buf)), end-off))
		m, err := preadFull(it.fd, w.buf[:k], off)
		if err != nil && it.lateErr == nil {
			it.lateErr = &fs.PathError{Op: "read", Path: it.hdr.Name, Err: err}
		}
		if m < k {
			clear(w.buf[m:k])
			if it.lateErr == nil {
				it.lateErr = &fs.PathError{Op: "read", Path: it.hdr.Name, Err: &ShrankError{Size: it.hdr.Size, Read: off + int64(m)}}
			}
			if _, err := out.Write(w.buf[:k]); err != nil {
				return fmt.Errorf("write archive: %s: %w", it.hdr.Name, err)
			}
			off += int64(k)
			return w.pad(out, it.hdr.Name, end-off)
		}
		if _, err := out.Write(w.buf[:k]); err != nil {
			return fmt.Errorf("write archive: %s: %w", it.hdr.Name, err)
		}
		off += int64(k)
	}
	return nil
}

// streamChunk is the size of the buffer a streamed file is copied by.
const streamChunk = 256 << 10

// pad writes n zero bytes to out for the member name.
func (w *writer) pad(out io.Writer, name string, n int64) error {
	if w.zeros == nil {
		w.zeros = make([]byte, 64<<10)
	}
	for n > 0 {
		k := min(n, int64(len(w.zeros)))
		if _, err := out.Write(w.zeros[:k]); err != nil {
			return fmt.Errorf("write archive: %s: %w", name, err)
		}
		n -= k
	}
	return nil
}

// sparseMember writes a sparse file as a GNU pax sparse member (format
// 1.0, see sparse_linux.go): its header blocks, the map and its data runs
// go to the stream under tw, which is between members then.
func (w *writer) sparseMember(it *item) error {
	name := it.hdr.Name
	sh, m := sparseHeader(it.hdr, it.sparse)
	blocks, err := encodeSparseHeader(sh)
	if err != nil {
		return fmt.Errorf("write archive: %s: %w", name, err)
	}
	if err := w.tw.Flush(); err != nil {
		return fmt.Errorf("write archive: %s: %w", name, err)
	}
	if _, err := w.raw.Write(blocks); err != nil {
		return fmt.Errorf("write archive: %s: %w", name, err)
	}
	if _, err := w.raw.Write(m); err != nil {
		return fmt.Errorf("write archive: %s: %w", name, err)
	}
	var data int64
	for _, e := range it.sparse {
		if err := w.stream(w.raw, it, e.off, e.n); err != nil {
			return err
		}
		data += e.n
	}
	w.sum.Sparse++
	if it.lateErr == nil {
		it.lateErr = checkUnchanged(it.fd, name, &it.st)
	}
	return w.pad(w.raw, name, -data&(tarfmt.BlockSize-1))
}

// finish gives back what an item holds, after it was written or dropped.
func (w *writer) finish(it *item) {
	if it.budget > 0 {
		w.r.budget.release(it.budget)
		it.budget = 0
	}
	it.data = nil
	if it.fd >= 0 {
		sys.Close(it.fd)
		it.fd = -1
	}
	it.release()
}
