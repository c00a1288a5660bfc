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
		pw       *passwdMember
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
		if member == "etc/passwd" && h.Typeflag == tar.TypeReg {
			pw = &passwdMember{uid: uid}
			pw.maxUID, pw.maxGID, _ = passwdMaxID(io.LimitReader(tr, maxJSON))
		}
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
	if !relative && opts.UIDMap.IsZero() {
		if c, ok := a.archiveMap(dirs["."], dirs, pw); ok {
			if opts.OnMap != nil {
				opts.OnMap(c)
			}
			a = NewAuditor(c.Apply(opts))
		}
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

// passwdMember is what an archive's etc/passwd says.
type passwdMember struct{ uid, maxUID, maxGID uint32 }

// archiveMap infers the container uid map of an archive of a rootfs as
// [InferMap] does for a tree: its top directory (member ".") owned by U
// != 0, and then a live namespace whose root is U, or else (a guess)
// etc/passwd owned by U too.
func (a *Auditor) archiveMap(top DirInfo, dirs map[string]DirInfo, pw *passwdMember) (MapChoice, bool) {
	if _, ok := dirs["."]; !ok || top.UID == 0 {
		return MapChoice{}, false
	}
	u, g := top.UID, top.GID
	for _, n := range a.roots[u] {
		if n.Self || n.MapErr != nil || n.UIDMap.IsZero() {
			continue
		}
		gid := n.GIDMap
		if gid.IsZero() {
			gid = n.UIDMap
		}
		return MapChoice{
			Source: MapLiveNamespace, UIDMap: n.UIDMap, GIDMap: gid,
			Reason: fmt.Sprintf("the archive's top directory is owned by uid %d, the root of the live user namespace %s", u, n.NSRef),
		}, true
	}
	if pw == nil || pw.uid != u {
		return MapChoice{}, false
	}
	um, err1 := shiftedMap(u, pw.maxUID)
	gm, err2 := shiftedMap(g, pw.maxGID)
	if err1 != nil || err2 != nil {
		return MapChoice{}, false
	}
	return MapChoice{
		Source: MapRootfsOwner, UIDMap: um, GIDMap: gm, Guessed: true,
		Reason: fmt.Sprintf("the archive's top directory and etc/passwd are owned by uid %d, taken for the container root; the highest uid in etc/passwd is %d", u, pw.maxUID),
	}, true
}
