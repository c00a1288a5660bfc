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
	ar, err := tarfmt.NewReader(r)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, badArchive(err))
	}
	defer ar.Close()
	s := &archiveMembers{a: a, opts: opts, name: name, dirs: map[string]DirInfo{}}
	if err := s.global(ar.Comment()); err != nil {
		return err
	}
	readErr, err := s.read(ctx, ar)
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
}

func (s *archiveMembers) display(member string) string { return s.name + ":" + member }

// read reads every member with the one archive reader of nscap
// (tarfmt.Reader: names cleaned and refused as restore does, xattrs from
// SCHILY and LIBARCHIVE records). readErr ends the reading of a truncated
// or corrupt archive: the members read before it are still audited, then
// it is returned. err stops the audit.
func (s *archiveMembers) read(ctx context.Context, ar *tarfmt.Reader) (readErr, err error) {
	for e, err := range ar.Entries(ctx) {
		if ee, ok := errors.AsType[*tarfmt.EntryError](err); ok {
			// A member of its own that cannot be read as it is (an
			// insecure name, a malformed xattr record): reported, the
			// rest is audited.
			name := ee.Name
			if e != nil && e.Name != "" {
				name = e.Name
			}
			if err := s.a.reportError(s.display(name), fmt.Errorf("%w: %w", ErrBadArchive, ee.Err)); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			return fmt.Errorf("read %s: %w", s.name, badArchive(err)), nil
		}
		s.member(e, ar)
	}
	return nil, nil
}

// global takes in the comment of the archive's pax global header: an
// nscap comment with a map makes the archive namespace-relative.
func (s *archiveMembers) global(comment string) error {
	c, ok, err := tarfmt.ParseComment(comment)
	if err != nil {
		return fmt.Errorf("read %s: %w: nscap comment %w", s.name, ErrBadArchive, err)
	}
	if ok {
		s.relMap, s.relative = c.UIDMap, !c.UIDMap.IsZero()
	}
	return nil
}

// member records the member e, whose data r reads: a directory, the
// passwd file, a member with caps.
func (s *archiveMembers) member(e *tarfmt.Entry, r io.Reader) {
	h, member := e.Header, e.Name
	mode := h.FileInfo().Mode()
	uid, gid := uint32(h.Uid), uint32(h.Gid)
	if member == "etc/passwd" && h.Typeflag == tar.TypeReg {
		s.pw = &passwdMember{uid: uid}
		s.pw.maxUID, s.pw.maxGID, _ = passwdMaxID(io.LimitReader(r, maxJSON))
	}
	if h.Typeflag == tar.TypeDir {
		s.dirs[member] = DirInfo{Path: s.display(member), Mode: mode, UID: uid, GID: gid}
	}
	raw, ok := e.Xattrs[AttrName]
	if !ok || h.Typeflag == tar.TypeLink {
		return
	}
	if raw == nil {
		raw = []byte{}
	}
	fe := Entry{Path: s.display(member), Root: s.name, Rel: member, Mode: mode, UID: uid, GID: gid, Raw: raw, Relative: s.relative, RelMap: s.relMap}
	if s.opts.Binfmt != nil && h.Typeflag == tar.TypeReg {
		fe.Head = readMemberHead(r)
	}
	if s.relative && h.PAXRecords[tarfmt.CommentRecord] == tarfmt.HostScopedComment {
		fe.Relative, fe.RelMap = false, userns.Map{}
		fe.Container = "in a namespace-relative nscap archive (value kept host-scoped)"
	}
	s.entries = append(s.entries, fe)
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

// badArchive wraps an error of the archive reader in [ErrBadArchive],
// without the reader's own "read archive" context.
func badArchive(err error) error {
	if re, ok := errors.AsType[*tarfmt.ReadError](err); ok {
		err = re.Err
	}
	return fmt.Errorf("%w: %w", ErrBadArchive, err)
}
