package tarfmt

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"path"
	"sort"
	"strings"

	"github.com/nscap/nscap/xattrfmt"
)

// Errors of the archive reader. They are returned inside an
// *[EntryError] or wrapped with the archive's context.
var (
	// ErrInsecurePath is an entry name or hardlink target that would leave
	// the destination: a ".." component (GNU tar refuses these too).
	ErrInsecurePath = errors.New("insecure path in archive")
)

// Entry is one member of an archive, its names cleaned and its xattrs
// decoded.
type Entry struct {
	Header *tar.Header
	// Name is the cleaned relative path ("." for the root itself).
	Name string
	// Link is the cleaned relative hardlink target (TypeLink only).
	Link string
	// Xattrs are the extended attributes, SCHILY and LIBARCHIVE records
	// merged (SCHILY wins when both name the same attribute).
	Xattrs map[string][]byte
}

// XattrNames returns the names of e's xattrs in a stable order.
func (e *Entry) XattrNames() []string {
	names := make([]string, 0, len(e.Xattrs))
	for n := range e.Xattrs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Reader reads an archive: it detects the compression, decodes the pax
// global header and hands out entries with their xattrs. It is the one
// archive reader of nscap: restore, verify, list and audit use it.
type Reader struct {
	tr      *tar.Reader
	end     *EndReader
	globals Globals
	close   func()
	// pending is an entry read while looking for the global header.
	pending *tar.Header
	err     error
}

// NewReader opens the archive in r and reads its global header, if
// the first member is one.
func NewReader(r io.Reader) (*Reader, error) {
	dr, closeFn, err := Decompress(r)
	if err != nil {
		if _, header := errors.AsType[*HeaderError](err); !header {
			err = &ReadError{Err: err}
		}
		return nil, err
	}
	end := NewEndReader(dr)
	ar := &Reader{tr: tar.NewReader(end), end: end, close: closeFn}
	// The global header is the first member when present. Read members
	// until the first non-global one and keep it for Next.
	for {
		hdr, err := ar.tr.Next()
		if errors.Is(err, io.EOF) {
			if err := end.Check(); err != nil {
				closeFn()
				return nil, readError(err)
			}
			ar.err = io.EOF
			break
		}
		if err != nil {
			closeFn()
			return nil, readError(err)
		}
		if global, _ := ar.globals.Take(hdr); !global {
			ar.pending = hdr
			break
		}
	}
	return ar, nil
}

// ReadError is an archive whose stream cannot be read on: truncated,
// corrupt, a late global header. Err says why.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "read archive: " + e.Err.Error() }

// Unwrap returns why.
func (e *ReadError) Unwrap() error { return e.Err }

// readError gives an error of archive/tar its context.
func readError(err error) error {
	if errors.Is(err, tar.ErrFieldTooLong) {
		err = fmt.Errorf("a pax extended header over 1 MiB (archive/tar's limit; GNU tar and libarchive have limits of their own): %w", err)
	}
	return &ReadError{Err: err}
}

// Pending is the first member's header while the reader holds it (read
// ahead when looking for the global header), nil once Next returned it.
func (ar *Reader) Pending() *tar.Header { return ar.pending }

// Comment is the comment record of the archive's pax global header (empty
// without one).
func (ar *Reader) Comment() string { return ar.globals.Comment }

// Close releases the decompressor.
func (ar *Reader) Close() { ar.close() }

// Next returns the next entry, io.EOF at the end. A malformed entry is
// returned as an *[EntryError] with the entry (its data is skipped by the
// following Next); other errors end the archive.
func (ar *Reader) Next() (*Entry, error) {
	if ar.err != nil {
		return nil, ar.err
	}
	var hdr *tar.Header
	if ar.pending != nil {
		hdr, ar.pending = ar.pending, nil
	} else {
		var err error
		for {
			hdr, err = ar.tr.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					err = readError(err)
				} else if cerr := ar.end.Check(); cerr != nil {
					err = readError(cerr)
				}
				ar.err = err
				return nil, err
			}
			global, err := ar.globals.Take(hdr)
			if err != nil {
				ar.err = &ReadError{Err: err}
				return nil, ar.err
			}
			if !global {
				break
			}
		}
	}
	return EntryFromHeader(hdr)
}

// Read reads the data of the current entry.
func (ar *Reader) Read(p []byte) (int, error) { return ar.tr.Read(p) }

// EntryError is a member of an archive that cannot be restored as it is:
// an insecure name, a malformed xattr record. errors.Is matches Err.
type EntryError struct {
	Name string // the member name as stored
	Err  error
}

func (e *EntryError) Error() string { return fmt.Sprintf("entry %q: %v", e.Name, e.Err) }

// Unwrap returns the rule broken.
func (e *EntryError) Unwrap() error { return e.Err }

// EntryFromHeader cleans hdr's names and decodes its xattrs.
func EntryFromHeader(hdr *tar.Header) (*Entry, error) {
	e := &Entry{Header: hdr}
	var err error
	if e.Name, err = CleanName(hdr.Name); err != nil {
		return e, &EntryError{Name: hdr.Name, Err: err}
	}
	if hdr.Typeflag == tar.TypeLink {
		if e.Link, err = CleanName(hdr.Linkname); err != nil {
			return e, &EntryError{Name: hdr.Name, Err: fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)}
		}
		if e.Link == "." {
			return e, &EntryError{Name: hdr.Name, Err: fmt.Errorf("hardlink target %q: %w", hdr.Linkname, ErrInsecurePath)}
		}
	}
	if e.Xattrs, err = paxXattrs(hdr.PAXRecords); err != nil {
		return e, &EntryError{Name: hdr.Name, Err: err}
	}
	return e, nil
}

// CleanName turns a member name into a relative slash path below the
// destination as GNU tar does: leading slashes are stripped, "." and empty
// components dropped, and a ".." component refused.
func CleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: NUL byte in name", ErrInsecurePath)
	}
	parts := strings.Split(name, "/")
	out := parts[:0]
	for _, p := range parts {
		switch p {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("%w: %q has a \"..\" component", ErrInsecurePath, name)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return ".", nil
	}
	return path.Join(out...), nil
}

// paxXattrs collects the xattrs of a member from its pax records:
// SCHILY.xattr.NAME (raw value, GNU tar and nscap) and
// LIBARCHIVE.xattr.NAME (percent-escaped name, base64 value, bsdtar) as
// [Xattrs] decodes them, and the POSIX ACLs that bsdtar and GNU tar
// --acls store as text in SCHILY.acl.access and SCHILY.acl.default, turned
// into system.posix_acl_* values (see [xattrfmt.ParseACLText]) so that restore and
// verify treat both forms alike.
func paxXattrs(recs map[string]string) (map[string][]byte, error) {
	out, err := Xattrs(recs)
	if err != nil {
		return nil, err
	}
	// POSIX ACLs as text (bsdtar; GNU tar --acls). GNU tar --xattrs also
	// stores the binary xattr, which wins: it is what the kernel returned.
	for _, a := range []struct{ rec, xattr string }{{ACLAccessRecord, xattrfmt.ACLAccessName}, {ACLDefaultRecord, xattrfmt.ACLDefaultName}} {
		text, ok := recs[a.rec]
		if !ok {
			continue
		}
		if _, dup := out[a.xattr]; dup {
			continue
		}
		raw, trivial, err := xattrfmt.ParseACLText(text)
		if err != nil {
			return nil, &RecordError{Key: a.rec, Reason: "bad ACL text", Err: err}
		}
		if trivial && a.xattr == xattrfmt.ACLAccessName {
			continue // the mode bits say it all; the kernel stores no xattr for it
		}
		if out == nil {
			out = map[string][]byte{}
		}
		out[a.xattr] = raw
	}
	return out, nil
}

// Pax records in which bsdtar (and GNU tar --acls) store POSIX ACLs as
// text.
const (
	ACLAccessRecord  = "SCHILY.acl.access"
	ACLDefaultRecord = "SCHILY.acl.default"
)

// IsSparseMember tells whether an archive member was stored sparse (GNU
// old, 0.x or 1.0 formats): restore re-creates its holes.
func IsSparseMember(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for _, k := range [...]string{"GNU.sparse.major", "GNU.sparse.map", "GNU.sparse.size", "GNU.sparse.numblocks"} {
		if _, ok := h.PAXRecords[k]; ok {
			return true
		}
	}
	return false
}

// Entries iterates over the members of the archive: each entry with a nil
// error; a member that cannot be restored as it is with its *[EntryError]
// (the entry is there too; its data is skipped by the next step); and,
// when ctx is done or the archive cannot be read on, (nil, that error)
// once, which ends the iteration. The end of the archive ends it too.
func (ar *Reader) Entries(ctx context.Context) iter.Seq2[*Entry, error] {
	return func(yield func(*Entry, error) bool) {
		for {
			if err := ctx.Err(); err != nil {
				yield(nil, err)
				return
			}
			e, err := ar.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if _, bad := errors.AsType[*EntryError](err); err != nil && !bad {
				yield(nil, err)
				return
			}
			if !yield(e, err) {
				return
			}
		}
	}
}
