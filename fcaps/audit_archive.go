package fcaps

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/nscap/nscap/internal/tarfmt"
	"github.com/nscap/nscap/userns"
)

// ErrBadArchive is an archive the audit cannot read: a corrupt tar stream,
// compressed data that does not decompress, or a malformed xattr record.
var ErrBadArchive = errors.New("fcaps: malformed archive")

// memberName cleans a member name to a relative path ("." for the root).
func memberName(n string) string {
	n = path.Clean("/" + n)
	if n == "/" {
		return "."
	}
	return n[1:]
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
	zr, closeFn, err := tarfmt.Decompress(r)
	if err != nil {
		if _, header := errors.AsType[*tarfmt.HeaderError](err); header {
			err = fmt.Errorf("%w: %w", ErrBadArchive, err)
		}
		return fmt.Errorf("read %s: %w", name, err)
	}
	defer closeFn()
	tail := tarfmt.NewEndReader(zr)
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
	var globals tarfmt.Globals
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			// archive/tar also takes an archive cut between two
			// members for a complete one: every writer ends an archive
			// with zero blocks.
			if err := tail.Check(); err != nil {
				readErr = fmt.Errorf("read %s: %w: %w", name, ErrBadArchive, err)
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
		if global, err := globals.Take(h); global {
			if err != nil {
				readErr = fmt.Errorf("read %s: %w: %w", name, ErrBadArchive, err)
				break
			}
			c, ok, err := tarfmt.ParseComment(globals.Comment)
			if err != nil {
				readErr = fmt.Errorf("read %s: %w: nscap comment %w", name, ErrBadArchive, err)
				break
			}
			if ok {
				relMap, relative = c.UIDMap, !c.UIDMap.IsZero()
			}
			continue
		}
		member := memberName(h.Name)
		mode := h.FileInfo().Mode()
		uid, gid := uint32(h.Uid), uint32(h.Gid)
		if h.Typeflag == tar.TypeDir {
			dirs[member] = DirInfo{Path: display(member), Mode: mode, UID: uid, GID: gid}
		}
		raw, ok, err := tarfmt.Xattr(h.PAXRecords, AttrName)
		if err != nil {
			if err := a.reportError(display(member), fmt.Errorf("%w: %w", ErrBadArchive, err)); err != nil {
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
		if opts.Binfmt != nil && h.Typeflag == tar.TypeReg {
			e.Head = readMemberHead(tr)
		}
		if relative && h.PAXRecords[tarfmt.CommentRecord] == tarfmt.HostScopedComment {
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

// readMemberHead returns the first bytes of the current member's data (up
// to [HeadLen]); a read error is left for the next header to report.
func readMemberHead(r io.Reader) []byte {
	b := make([]byte, HeadLen)
	n, _ := io.ReadFull(r, b)
	return b[:n:n]
}
