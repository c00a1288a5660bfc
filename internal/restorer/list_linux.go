package restorer

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/nscap/nscap/internal/archive"

	"github.com/nscap/nscap/internal/tarfmt"
	"github.com/nscap/nscap/userns"
)

// ListEntry is one member of an archive as [List] shows it: its owner,
// mode and caps as [Restore] with the same options would write them.
type ListEntry struct {
	Name string `json:"name"`           // the member name, as stored
	Type string `json:"type"`           // "file", "dir", "symlink", "hardlink", "fifo", "char", "block"
	Mode uint32 `json:"mode"`           // permission bits, with setuid, setgid and sticky
	UID  int    `json:"uid"`            // the owner to be written (translated)
	GID  int    `json:"gid"`            // the group to be written (translated)
	Size int64  `json:"size"`           // content bytes of a regular file
	Link string `json:"link,omitempty"` // a symlink's target, a hardlink's target member
	// Dev is "MAJOR,MINOR" of a device.
	Dev   string    `json:"dev,omitempty"`
	MTime time.Time `json:"mtime"`
	// Caps is the security.capability to be written, in libcap text
	// with " [rootid=N]" for revision 3 (getcap -n), empty for none.
	Caps string `json:"caps,omitempty"`
	// CapsNote says why a cap of the archive would not be written as
	// translated (the foreign-caps policy), empty otherwise.
	CapsNote string `json:"caps_note,omitempty"`
	ACL      bool   `json:"acl,omitempty"` // a POSIX ACL beyond the mode bits
	// Error is why the member could not be restored as it is (an owner
	// outside the target maps, a malformed xattr), empty otherwise: Mode,
	// UID, GID and Caps are then as stored.
	Error string `json:"error,omitempty"`
}

// ListOptions tunes [List]: the maps and policies mean what they mean for
// [RestoreOptions]. Without target maps, owners and caps are shown as
// stored.
type ListOptions struct {
	UIDMap, GIDMap             userns.Map
	SourceUIDMap, SourceGIDMap userns.Map
	ForeignCaps                archive.ForeignCaps
	HostScope                  bool
	// Paths limits the listing to the members a restore with these
	// [RestoreOptions.Paths] would write; a path no member matches makes
	// List return a [*NotFoundError] at the end.
	Paths []string
}

// List reads the archive in r and calls fn for each member, in archive
// order, with what [Restore] under the same maps would write. An error
// of fn ends the listing with it. An archive of raw host ids whose owners
// the target maps do not cover stops it with a [*RawArchiveError].
func List(ctx context.Context, r io.Reader, opts ListOptions, fn func(ListEntry) error) error {
	ro := &RestoreOptions{
		UIDMap: opts.UIDMap, GIDMap: opts.GIDMap, SourceUIDMap: opts.SourceUIDMap, SourceGIDMap: opts.SourceGIDMap,
		ForeignCaps: opts.ForeignCaps, HostScope: opts.HostScope || opts.UIDMap.IsZero(),
		XattrsInclude: []string{"*"},
	}
	ro.ApplyDefaults()
	ar, m, sel, err := openArchive(r, ro, opts.Paths)
	if err != nil {
		return err
	}
	defer ar.Close()
	rs := &restorer{opts: ro, m: m}
	for e, err := range ar.Entries(ctx) {
		ee, _ := errors.AsType[*tarfmt.EntryError](err)
		if err != nil && ee == nil {
			return err
		}
		if ee == nil && !sel.match(e.Name, e.Header.Typeflag == tar.TypeDir) {
			continue
		}
		le, err := rs.listEntry(e, ee)
		if err != nil {
			return err
		}
		if err := fn(le); err != nil {
			return err
		}
	}
	return sel.missing()
}

// listEntry describes member e (ee: why it cannot be restored, if so) as
// a restore under rs's options would make it.
func (rs *restorer) listEntry(e *tarfmt.Entry, ee *tarfmt.EntryError) (ListEntry, error) {
	h := e.Header
	le := ListEntry{
		Name: h.Name, Type: tarfmt.TypeWord(h.Typeflag), Mode: uint32(h.Mode) & 0o7777, UID: h.Uid, GID: h.Gid,
		MTime: h.ModTime,
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
		le.Size = h.Size
	case tar.TypeSymlink, tar.TypeLink:
		le.Link = h.Linkname
	case tar.TypeChar, tar.TypeBlock:
		le.Dev = fmtDev(h.Devmajor, h.Devminor)
	}
	if ee != nil {
		le.Error = ee.Error()
	} else {
		mt, err := rs.meta(e)
		switch {
		case errors.Is(err, ErrRawArchive):
			return le, err
		case err != nil:
			le.Error = err.Error()
			if raw, ok := e.Xattrs[archive.XattrCaps]; ok {
				le.Caps = capsText(raw)
			}
		default:
			le.UID, le.GID, le.Mode = mt.uid, mt.gid, mt.mode
			if mt.caps != nil {
				le.Caps = capsText(mt.caps)
			}
			for _, x := range mt.xattrs {
				if archive.IsACL(x.name) {
					le.ACL = true
				}
			}
			switch {
			case mt.refused != nil:
				le.CapsNote = mt.refused.Error()
			case mt.warn != nil && e.Xattrs[archive.XattrCaps] != nil:
				le.CapsNote = mt.warn.Error()
			}
		}
	}
	return le, nil
}

func fmtDev(major, minor int64) string {
	return strconv.FormatInt(major, 10) + "," + strconv.FormatInt(minor, 10)
}
