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
	s := &archiveMembers{a: a, opts: opts, name: name, dirs: map[string]DirInfo{}}
	readErr, err := s.read(ctx, zr)
	if err != nil {
		return err
	}
	if !s.relative && opts.UIDMap.IsZero() {
		if c, ok := a.archiveMap(s.dirs["."], s.dirs, s.pw); ok {
			if opts.OnMap != nil {
				opts.OnMap(c)
			}
			a = NewAuditor(c.Apply(opts))
		}
	}
	for _, e := range s.entries {
		for d := e.Rel; d != "."; {
			d = path.Dir(d)
			if di, ok := s.dirs[d]; ok {
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

// archiveMembers is what [AuditArchive] gathers from the members before
// auditing them: the directories must all be known first.
type archiveMembers struct {
	a        *Auditor
	opts     AuditOptions
	name     string
	relMap   userns.Map
	relative bool
	entries  []Entry
	dirs     map[string]DirInfo
	pw       *passwdMember
	globals  tarfmt.Globals
}

func (s *archiveMembers) display(member string) string { return s.name + ":" + member }

// read reads every member. readErr ends the reading of a truncated or
// corrupt archive: the members read before it are still audited, then it
// is returned. err stops the audit.
func (s *archiveMembers) read(ctx context.Context, zr io.Reader) (readErr, err error) {
	tail := tarfmt.NewEndReader(zr)
	tr := tar.NewReader(tail)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			// archive/tar also takes an archive cut between two
			// members for a complete one: every writer ends an archive
			// with zero blocks.
			if err := tail.Check(); err != nil {
				return fmt.Errorf("read %s: %w: %w", s.name, ErrBadArchive, err), nil
			}
			return nil, nil
		}
		if err != nil {
			if !errors.Is(err, ErrBadArchive) {
				err = fmt.Errorf("%w: %w", ErrBadArchive, err)
			}
			return fmt.Errorf("read %s: %w", s.name, err), nil
		}
		if global, err := s.globals.Take(h); global {
			if err := s.global(err); err != nil {
				return err, nil
			}
			continue
		}
		if err := s.member(h, tr); err != nil {
			return nil, err
		}
	}
}

// global takes in a pax global header (takeErr is what reading it gave):
// an nscap comment with a map makes the archive namespace-relative. The
// error returned ends the reading.
func (s *archiveMembers) global(takeErr error) error {
	if takeErr != nil {
		return fmt.Errorf("read %s: %w: %w", s.name, ErrBadArchive, takeErr)
	}
	c, ok, err := tarfmt.ParseComment(s.globals.Comment)
	if err != nil {
		return fmt.Errorf("read %s: %w: nscap comment %w", s.name, ErrBadArchive, err)
	}
	if ok {
		s.relMap, s.relative = c.UIDMap, !c.UIDMap.IsZero()
	}
	return nil
}

// member records the member h, whose data tr reads: a directory, the
// passwd file, a member with caps. The error returned (from
// AuditOptions.Error) stops the audit.
func (s *archiveMembers) member(h *tar.Header, tr io.Reader) error {
	member := memberName(h.Name)
	mode := h.FileInfo().Mode()
	uid, gid := uint32(h.Uid), uint32(h.Gid)
	if member == "etc/passwd" && h.Typeflag == tar.TypeReg {
		s.pw = &passwdMember{uid: uid}
		s.pw.maxUID, s.pw.maxGID, _ = passwdMaxID(io.LimitReader(tr, maxJSON))
	}
	if h.Typeflag == tar.TypeDir {
		s.dirs[member] = DirInfo{Path: s.display(member), Mode: mode, UID: uid, GID: gid}
	}
	raw, ok, err := tarfmt.Xattr(h.PAXRecords, AttrName)
	if err != nil {
		return s.a.reportError(s.display(member), fmt.Errorf("%w: %w", ErrBadArchive, err))
	}
	if !ok || h.Typeflag == tar.TypeLink {
		return nil
	}
	if raw == nil {
		raw = []byte{}
	}
	e := Entry{Path: s.display(member), Root: s.name, Rel: member, Mode: mode, UID: uid, GID: gid, Raw: raw, Relative: s.relative, RelMap: s.relMap}
	if s.opts.Binfmt != nil && h.Typeflag == tar.TypeReg {
		e.Head = readMemberHead(tr)
	}
	if s.relative && h.PAXRecords[tarfmt.CommentRecord] == tarfmt.HostScopedComment {
		e.Relative, e.RelMap = false, userns.Map{}
		e.Container = "in a namespace-relative nscap archive (value kept host-scoped)"
	}
	s.entries = append(s.entries, e)
	return nil
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
