package fcaps

import (
	"io/fs"
	"strconv"

	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

// ScopeKind says where capabilities are honoured.
type ScopeKind uint8

// Scope kinds.
const (
	// ScopeUnknown: the value could not be read.
	ScopeUnknown ScopeKind = iota
	// ScopeNone: the caps act nowhere (a non-regular file, an empty
	// value, or a rootid that is the root of no live namespace).
	ScopeNone
	// ScopeAll: host-scoped, honoured in every user namespace.
	ScopeAll
	// ScopeNamespaces: honoured in the live namespaces listed.
	ScopeNamespaces
	// ScopeRelative: a namespace-relative archive entry, honoured in the
	// namespace the archive is restored into (RootID 0) or in its nested
	// namespace whose root is its uid RootID.
	ScopeRelative
)

// Scope says where the capabilities of a file are honoured.
type Scope struct {
	Kind ScopeKind
	// Namespaces are the live user namespaces honouring the caps
	// (ScopeNamespaces), ordered by inode: every namespace whose root is
	// the rootid, and their descendants.
	Namespaces []userns.NSRef
	// RootID is the rootid relative to the restore target (ScopeRelative).
	RootID uint32
	// InContainer is set when the caps are namespaced and their rootid
	// lies in the uid map of the container the file lies in
	// (ScopeNamespaces, ScopeUnknown): ContainerRootID is then the rootid
	// as the container sees it, 0 for the container's own namespace, N
	// for a nested namespace whose root is the container's uid N. It is
	// set whether or not such a namespace is live.
	InContainer     bool
	ContainerRootID uint32
}

// Strings renders s as the list printed in "honoured in": ["all"] for
// host-scoped caps, one "user:[INODE]" per live namespace, ["unknown"],
// ["restore-target"] or ["restore-target-uid:N"] for a namespace-relative
// archive, ["container-root"] or ["container-uid:N"] for caps scoped to
// the container's namespace or to a nested one (InContainer) when no
// such namespace is live or the live ones are unknown, and an empty list
// when the caps are honoured nowhere.
func (s Scope) Strings() []string {
	if s.InContainer && (s.Kind == ScopeUnknown || s.Kind == ScopeNamespaces && len(s.Namespaces) == 0) {
		if s.ContainerRootID == 0 {
			return []string{"container-root"}
		}
		return []string{"container-uid:" + strconv.FormatUint(uint64(s.ContainerRootID), 10)}
	}
	switch s.Kind {
	case ScopeUnknown:
		return []string{"unknown"}
	case ScopeAll:
		return []string{"all"}
	case ScopeRelative:
		if s.RootID == 0 {
			return []string{"restore-target"}
		}
		return []string{"restore-target-uid:" + strconv.FormatUint(uint64(s.RootID), 10)}
	case ScopeNamespaces:
		out := make([]string, len(s.Namespaces))
		for i, n := range s.Namespaces {
			out[i] = n.String()
		}
		return out
	case ScopeNone:
	}
	return []string{}
}

// Finding is one problem (or, for [RuleCapabilities], one inventory
// entry) the audit reports about a file.
type Finding struct {
	// Rule is the rule that fired; Rule.Severity is the finding's.
	Rule Rule
	// Path names the file: the path in the tree, or "ARCHIVE:NAME" for an
	// archive member.
	Path string
	// Root is the audited root the file was found under: the tree (or
	// file) given to [Audit], or the archive name given to [AuditArchive].
	// Rel is the file's path relative to Root, cleaned ("bin/ping", "."
	// for the root itself; an archive member's name without "./" or a
	// leading "/"), the same however Root was spelt, and the same for a
	// tree and for an archive of it. Both are empty for an [Entry] that
	// had none. A [Baseline] keys its files by Rel.
	Root, Rel string
	// Message explains the finding for this file.
	Message string
	// Caps is the decoded value, nil when it could not be read.
	Caps *xattrfmt.FileCaps
	// Scope says where the caps are honoured.
	Scope Scope
	// Owner is the file's owner uid as the entry gives it (host ids for a
	// live tree). OwnerInContainer and RootIDInContainer are the owner
	// and the rootid as the container the file lies in sees them, when
	// its uid map is known and maps them; nil otherwise.
	Owner             uint32
	OwnerInContainer  *uint32
	RootIDInContainer *uint32
	// MapGuessed is set when the finding's verdict depends on a container
	// uid map that was guessed ([AuditOptions].MapGuessed, or a
	// subordinate range without a live namespace): its severity is then
	// capped at [SeverityLow], below its rule's.
	MapGuessed bool
	// Layer is the digest of the image layer that wrote the file, for a
	// file of a container image ([AuditImage]).
	Layer string
	// Binfmt says how binfmt_misc runs a foreign binary (NSCAP010,
	// NSCAP011).
	Binfmt *BinfmtMatch
}

// Severity returns f.Rule.Severity.
func (f Finding) Severity() Severity { return f.Rule.Severity }

// CapsText returns the capabilities as getcap -n prints them
// ("cap_net_raw=ep [rootid=100000]"), or "" when unknown.
func (f Finding) CapsText() string {
	if f.Caps == nil {
		return ""
	}
	s := f.Caps.String()
	if f.Caps.HasRootID() && f.Caps.RootID != 0 {
		s += " [rootid=" + strconv.FormatUint(uint64(f.Caps.RootID), 10) + "]"
	}
	return s
}

// DirInfo is what the audit knows of a directory above a file.
type DirInfo struct {
	Path     string
	Mode     fs.FileMode // permission bits, sticky bit
	UID, GID uint32
}

// Entry is one file as the rules see it, from a live tree or an archive.
// Only entries carrying a security.capability xattr are audited.
type Entry struct {
	// Path names the file in findings.
	Path string
	// Root and Rel are copied to the findings (see [Finding]).
	Root, Rel string
	// Mode holds the type, permission, setuid, setgid and sticky bits.
	Mode fs.FileMode
	// UID and GID own the file (host ids for a live tree; as stored for
	// an archive).
	UID, GID uint32
	// Raw is the raw value when known (archives). When Raw is nil,
	// Caps and CapsErr hold what the kernel returned.
	Raw []byte
	// Caps is the decoded value, valid when CapsErr is nil (and, when Raw
	// is set, decoded from it).
	Caps xattrfmt.FileCaps
	// CapsErr is why the value could not be read: it matches
	// [ErrUnreadable] (EINVAL while listxattr lists it), [ErrNotVisible]
	// (EOVERFLOW) or is a [*xattrfmt.DecodeError] of Raw.
	CapsErr error
	// Dirs are the directories containing the file, nearest first (as far
	// up as the auditor knows them).
	Dirs []DirInfo
	// Relative is set for a member of a namespace-relative nscap archive:
	// its ids and rootid are relative to the container, revision 2 meaning
	// the container's root; RelMap is the archive's source uid map.
	Relative bool
	RelMap   userns.Map
	// Container, when not empty, says that the file lies in a container
	// rootfs and why (an archive entry whose value nscap kept host-scoped).
	Container string
	// Image is set for a file of a container image's layers (with
	// Relative); Layer is the digest of the layer that wrote it.
	Image bool
	Layer string
	// Head holds the first bytes of a regular file (up to [HeadLen]),
	// when the auditor has them: an ELF header for another machine is
	// checked against AuditOptions.Binfmt.
	Head []byte
}

// AuditOptions configure the audit rules and engines.
type AuditOptions struct {
	// UIDMap marks the audited trees as a container rootfs with this uid
	// map (host ids outside); the container root's host uid then counts as
	// root for NSCAP002, and rootids inside the map are not orphaned.
	// GIDMap is the gid map (defaults to UIDMap).
	UIDMap, GIDMap userns.Map
	// MapGuessed says that UIDMap (and GIDMap) is a guess (see
	// [InferMap]): a finding whose verdict depends on the map is then
	// reported at [SeverityLow] at most. MapReason, when set, replaces
	// "in a container rootfs with uid map M" in messages.
	MapGuessed bool
	MapReason  string
	// SubUIDs are subordinate uid ranges (/etc/subuid). Without UIDMap, a
	// file owned by a uid in one of them may lie in a container rootfs:
	// its root is taken to be the owner of the outermost directory above
	// the file owned in the same range (the rootfs's top directory). The
	// map is a guess unless a live namespace has that root; the first uid
	// of the range is never taken for the root on its own (root's
	// 100000:1000000 of LXD and Incus hosts holds many containers).
	SubUIDs []userns.SubIDRange
	// Namespaces are the live user namespaces ([userns.Tree]). Nil means
	// unknown: rootids are then never called orphaned and the scope of
	// namespaced caps is unknown.
	Namespaces []*userns.Node
	// OnMap, when set, is called by [AuditArchive] with the map it
	// inferred for an archive of a container rootfs (without UIDMap).
	OnMap func(MapChoice)
	// Binfmt, when set, is the binfmt_misc instance capped binaries of
	// another machine are run through (rules NSCAP010 and NSCAP011); the
	// audit then reads the first bytes of every capped regular file.
	Binfmt *Binfmt
	// XDev keeps the walk of a tree on the filesystem of its root.
	XDev bool
	// Workers is the number of directories read in parallel (0:
	// GOMAXPROCS).
	Workers int
	// Error is called for a path that could not be audited (permission
	// denied, vanished file, unreadable archive member). Returning nil goes
	// on; an error stops the audit and is returned. Nil means go on.
	// It is called from one goroutine at a time.
	Error func(path string, err error) error
}

// Auditor applies the rules to entries. It is pure (no system calls) and
// safe for concurrent use.
type Auditor struct {
	opts AuditOptions
	// roots maps a live namespace's root kuid to the namespaces with it.
	roots map[uint32][]*userns.Node
}

// NewAuditor returns an auditor with opts.
func NewAuditor(opts AuditOptions) *Auditor {
	if opts.GIDMap.IsZero() {
		opts.GIDMap = opts.UIDMap
	}
	a := &Auditor{opts: opts}
	if opts.Namespaces != nil {
		a.roots = map[uint32][]*userns.Node{}
		var walk func(n *userns.Node)
		walk = func(n *userns.Node) {
			if n.RootVisible {
				a.roots[n.RootID] = append(a.roots[n.RootID], n)
			}
			for _, c := range n.Children {
				walk(c)
			}
		}
		for _, n := range opts.Namespaces {
			walk(n)
		}
	}
	return a
}
