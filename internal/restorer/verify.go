package restorer

import (
	"fmt"

	"github.com/nscap/nscap/internal/archive"

	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

// DiffKind names what differs between an archive and a tree.
type DiffKind string

// Kinds of [Difference].
const (
	DiffMissing DiffKind = "missing" // in the archive, not in the tree
	DiffExtra   DiffKind = "extra"   // in the tree, not in the archive
	DiffType    DiffKind = "type"    // file type
	DiffOwner   DiffKind = "owner"   // uid:gid, after translation
	DiffMode    DiffKind = "mode"    // permission bits (with setuid, setgid, sticky)
	DiffSize    DiffKind = "size"    // regular file size
	DiffContent DiffKind = "content" // sha256 of a regular file's data
	DiffLink    DiffKind = "link"    // symlink target, hardlink identity, device number
	DiffXattr   DiffKind = "xattr"   // an extended attribute other than the caps
	DiffCaps    DiffKind = "caps"    // security.capability, compared as capabilities
	DiffError   DiffKind = "error"   // the entry could not be checked (bad archive value, unreadable file)
)

// Difference is one way in which a tree differs from an archive.
type Difference struct {
	Path string   `json:"path"`           // the path in the tree
	Kind DiffKind `json:"kind"`           // what differs
	Name string   `json:"name,omitempty"` // the xattr name for DiffXattr
	Want string   `json:"want,omitempty"` // the archive's value, translated
	Got  string   `json:"got,omitempty"`  // the tree's value
}

// String formats d as one line: "PATH: KIND [NAME]: want W, got G".
func (d Difference) String() string {
	s := d.Path + ": " + string(d.Kind)
	if d.Name != "" {
		s += " " + d.Name
	}
	switch {
	case d.Want != "" && d.Got != "":
		s += fmt.Sprintf(": want %s, got %s", d.Want, d.Got)
	case d.Want != "":
		s += ": want " + d.Want
	case d.Got != "":
		s += ": got " + d.Got
	}
	return s
}

// VerifyOptions tunes [Verify]. The maps mean what they mean for
// [RestoreOptions]: Verify compares the tree with what [Restore] would make
// of the archive under the same options.
type VerifyOptions struct {
	UIDMap, GIDMap             userns.Map
	SourceUIDMap, SourceGIDMap userns.Map
	HostScope                  bool
	// archive.ForeignCaps is the policy of the restore checked
	// ([RestoreOptions.ForeignCaps]). Under fail, a cap of the archive
	// that the restore could not write is reported missing from the tree.
	ForeignCaps archive.ForeignCaps
	// ShownUIDMap and ShownGIDMap: see RestoreOptions.
	ShownUIDMap, ShownGIDMap userns.Map
	// XattrsInclude is the xattr policy of the restore checked (see
	// [RestoreOptions.XattrsInclude]): the xattrs it leaves out are not
	// compared, in the archive or in the tree.
	XattrsInclude []string
	// StateDir is where the restore checked kept its state
	// ([RestoreOptions.StateDir]; empty: the same default): the state
	// of a restore into dest that did not end is reported, with the
	// staging directory and temporary names it left.
	StateDir string
	// Difference is called for each difference as it is found; an error
	// ends the verification with it. nil: differences are only returned.
	Difference func(Difference) error
	// Reporter receives the events of the verification (see
	// [archive.Reporter]): each entry compared, with the size of its
	// data (for progress). nil: none.
	Reporter archive.Reporter
}

func (o *VerifyOptions) restoreOptions() *RestoreOptions {
	ro := &RestoreOptions{
		UIDMap: o.UIDMap, GIDMap: o.GIDMap, SourceUIDMap: o.SourceUIDMap,
		SourceGIDMap: o.SourceGIDMap, HostScope: o.HostScope, XattrsInclude: o.XattrsInclude,
		ForeignCaps: o.ForeignCaps, ShownUIDMap: o.ShownUIDMap, ShownGIDMap: o.ShownGIDMap,
	}
	ro.ApplyDefaults()
	if o.Reporter == nil {
		o.Reporter = archive.NopReporter{}
	}
	return ro
}

// capsText describes a security.capability value for a difference: the
// libcap text and, for revision 3, the rootid ("cap_net_raw=ep
// [rootid=200000]").
func capsText(raw []byte) string {
	if raw == nil {
		return "none"
	}
	c, err := xattrfmt.Decode(raw)
	if err != nil {
		return fmt.Sprintf("malformed (%x)", raw)
	}
	s := c.String()
	if c.HasRootID() {
		s += fmt.Sprintf(" [rootid=%d]", c.RootID)
	}
	return s
}

// sameCaps compares two capability values as the kernel honours them:
// revision 2 and revision 3 with rootid 0 are the same.
func sameCaps(a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	ca, err1 := xattrfmt.Decode(a)
	cb, err2 := xattrfmt.Decode(b)
	if err1 != nil || err2 != nil {
		return string(a) == string(b)
	}
	root := func(c xattrfmt.FileCaps) uint32 {
		if c.HasRootID() {
			return c.RootID
		}
		return 0
	}
	return ca.Effective == cb.Effective && ca.Permitted == cb.Permitted &&
		ca.Inheritable == cb.Inheritable && root(ca) == root(cb)
}
