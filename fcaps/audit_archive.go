package fcaps

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/nscap/nscap/userns"
)

// Pax records the archive audit reads.
const (
	schilyXattr     = "SCHILY.xattr."     // GNU tar --xattrs, bsdtar, nscap: raw value
	libarchiveXattr = "LIBARCHIVE.xattr." // bsdtar: %-escaped name, base64 value
	paxCommentKey   = "comment"
	// nscapCommentMagic starts the global comment of an nscap backup;
	// its uidmap= word gives the source map ("identity" for raw ids).
	nscapCommentMagic = "nscap-backup/1"
	// nscapHostScoped is the member comment of a value nscap kept raw
	// (host-scoped) in a namespace-relative archive.
	nscapHostScoped = "nscap: host-scoped security.capability"
	// maxArchiveZstdWindow bounds the memory a hostile zstd header can
	// make the decoder allocate.
	maxArchiveZstdWindow = 16 << 20
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// ErrBadArchive is an archive the audit cannot read: a corrupt tar stream,
// compressed data that does not decompress, or a malformed xattr record.
var ErrBadArchive = errors.New("fcaps: malformed archive")

// sniffArchive reports whether head (up to 512 bytes) starts an archive.
func sniffArchive(head []byte) bool {
	if bytes.HasPrefix(head, gzipMagic) || bytes.HasPrefix(head, zstdMagic) {
		return true
	}
	if len(head) < 512 {
		return false
	}
	if bytes.HasPrefix(head[257:], []byte("ustar")) {
		return true
	}
	// A pre-POSIX header: the checksum field (148-155, octal) equals the
	// sum of the header bytes with that field taken as spaces.
	var sum int64
	for i, c := range head[:512] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	field := strings.TrimRight(strings.TrimSpace(string(head[148:156])), "\x00 ")
	var want int64
	if _, err := fmt.Sscanf(field, "%o", &want); err != nil {
		return false
	}
	return want == sum && sum != 8*' '
}

// decompressArchive detects gzip or zstd from the first bytes of r.
func decompressArchive(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: gzip: %w", ErrBadArchive, err)
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxArchiveZstdWindow),
			zstd.WithDecoderMaxMemory(4*maxArchiveZstdWindow))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: zstd: %w", ErrBadArchive, err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

// blockSize is the size of a tar block.
const blockSize = 512

// tailReader counts the bytes read through it and the zero bytes that
// end them, to tell an archive that ends with its end-of-archive zero
// blocks from one cut at a block boundary. It is no io.Seeker, so
// archive/tar reads (never seeks over) member data.
type tailReader struct {
	r     io.Reader
	n     int64 // bytes read
	zeros int64 // trailing zero bytes among them
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.n += int64(n)
	i := n
	for i > 0 && p[i-1] == 0 {
		i--
	}
	if i == 0 {
		t.zeros += int64(n)
	} else {
		t.zeros = int64(n - i)
	}
	return n, err
}

// memberName cleans a member name to a relative path ("." for the root).
func memberName(n string) string {
	n = path.Clean("/" + n)
	if n == "/" {
		return "."
	}
	return n[1:]
}

// capsRecord returns the raw security.capability of a member, from its
// SCHILY.xattr record or, failing that, its LIBARCHIVE.xattr record.
func capsRecord(h *tar.Header) (raw []byte, ok bool, err error) {
	if v, ok := h.PAXRecords[schilyXattr+AttrName]; ok {
		return []byte(v), true, nil
	}
	// Sorted keys: the same member always gives the same answer (and the
	// fuzzer sees deterministic coverage).
	for _, k := range slices.Sorted(maps.Keys(h.PAXRecords)) {
		v := h.PAXRecords[k]
		name, found := strings.CutPrefix(k, libarchiveXattr)
		if !found {
			continue
		}
		if n, err := url.PathUnescape(name); err != nil || n != AttrName {
			continue
		}
		b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(v, "="))
		if err != nil {
			return nil, true, fmt.Errorf("%w: record %s: bad base64: %w", ErrBadArchive, k, err)
		}
		return b, true, nil
	}
	return nil, false, nil
}

// archiveMap parses the uidmap= word of an nscap global comment; ok is
// false for another comment.
func archiveMap(comment string) (m userns.Map, ok bool, err error) {
	words := strings.Fields(comment)
	if len(words) == 0 || words[0] != nscapCommentMagic {
		return userns.Map{}, false, nil
	}
	for _, w := range words[1:] {
		v, found := strings.CutPrefix(w, "uidmap=")
		if !found || v == "identity" {
			continue
		}
		m, err := userns.ParseMap(v)
		if err != nil {
			return userns.Map{}, true, fmt.Errorf("%w: nscap comment uidmap %q: %w", ErrBadArchive, v, err)
		}
		return m, true, nil
	}
	return userns.Map{}, true, nil
}

// AuditArchive audits a tar archive (plain, gzip or zstd, detected from
// its first bytes; an OCI image layer is such an archive) read from r,
// without extracting it: the security.capability of each member comes
// from its SCHILY.xattr.security.capability pax record (GNU tar --xattrs,
// bsdtar, nscap) or its LIBARCHIVE.xattr.security.capability record
// (bsdtar, base64), its mode and owner from the header, and the
// directories above it from their own members. Since raw values are
// available, malformed ones are told apart (empty, revision 1, stray
// flags, wrong size).
//
// Members are named "NAME:MEMBER" in findings, MEMBER cleaned of any
// leading "./" or "/". An nscap archive made with a map (its pax global
// comment says so) is namespace-relative: its revision-2 caps belong to
// the container root, and only members nscap marked as kept host-scoped
// count as host-scoped.
//
// The findings are delivered at the end of the archive (the directories
// must all be known first), to fn, sorted by member order; their Root is
// name and their Rel the cleaned member name. A malformed archive gives an
// error wrapping [ErrBadArchive]; a truncated or corrupt one still gets
// the findings of the members read before the damage, and then that
// error. A malformed record of one member goes to opts.Error.
func AuditArchive(ctx context.Context, r io.Reader, name string, opts AuditOptions, fn func(Finding) error) error {
	a := NewAuditor(opts)
	zr, closeFn, err := decompressArchive(r)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	defer closeFn()
	tail := &tailReader{r: zr}
	tr := tar.NewReader(tail)
	var (
		relMap   userns.Map
		relative bool
		entries  []Entry
		dirs     = map[string]DirInfo{}
	)
	display := func(member string) string { return name + ":" + member }
	// readErr ends the reading of a truncated or corrupt archive: the
	// members read before it are still audited, then it is returned.
	var readErr error
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			// archive/tar also takes an archive cut between two
			// members for a complete one: every writer ends an archive
			// with zero blocks.
			if tail.n > 0 && tail.zeros < blockSize {
				readErr = fmt.Errorf("read %s: %w: unexpected EOF: no end-of-archive block (truncated archive)", name, ErrBadArchive)
			}
			break
		}
		if err != nil {
			if !errors.Is(err, ErrBadArchive) {
				err = fmt.Errorf("%w: %w", ErrBadArchive, err)
			}
			readErr = fmt.Errorf("read %s: %w", name, err)
			break
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			m, ok, err := archiveMap(h.PAXRecords[paxCommentKey])
			if err != nil {
				readErr = fmt.Errorf("read %s: %w", name, err)
				break
			}
			if ok {
				relMap, relative = m, !m.IsZero()
			}
			continue
		}
		member := memberName(h.Name)
		mode := h.FileInfo().Mode()
		uid, gid := uint32(h.Uid), uint32(h.Gid)
		if h.Typeflag == tar.TypeDir {
			dirs[member] = DirInfo{Path: display(member), Mode: mode, UID: uid, GID: gid}
		}
		raw, ok, err := capsRecord(h)
		if err != nil {
			if err := a.reportError(display(member), err); err != nil {
				return err
			}
			continue
		}
		if !ok || h.Typeflag == tar.TypeLink {
			continue
		}
		if raw == nil {
			raw = []byte{}
		}
		e := Entry{Path: display(member), Root: name, Rel: member, Mode: mode, UID: uid, GID: gid, Raw: raw, Relative: relative, RelMap: relMap}
		if relative && h.PAXRecords[paxCommentKey] == nscapHostScoped {
			e.Relative, e.RelMap = false, userns.Map{}
			e.Container = "in a namespace-relative nscap archive (value kept host-scoped)"
		}
		entries = append(entries, e)
	}
	for _, e := range entries {
		for d := e.Rel; d != "."; {
			d = path.Dir(d)
			if di, ok := dirs[d]; ok {
				e.Dirs = append(e.Dirs, di)
			}
		}
		for _, f := range a.Check(e) {
			if err := fn(f); err != nil {
				return err
			}
		}
	}
	return readErr
}
