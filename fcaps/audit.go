package fcaps

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

// Severity ranks an audit finding. The zero value is [SeverityInfo].
type Severity uint8

// Severities, from the least to the most serious.
const (
	SeverityInfo Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"info", "low", "medium", "high", "critical"}

// ErrBadSeverity is a severity name [ParseSeverity] does not know.
var ErrBadSeverity = errors.New("fcaps: unknown severity")

// String returns the lowercase name: "info", "low", "medium", "high" or
// "critical" (or "severity(N)" for a value out of range).
func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return "severity(" + strconv.Itoa(int(s)) + ")"
}

// ParseSeverity parses a severity name, in any letter case.
func ParseSeverity(name string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(name, n) {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("%w %q (want one of %s)", ErrBadSeverity, name, strings.Join(severityNames[:], ", "))
}

// MarshalText implements [encoding.TextMarshaler] with [Severity.String].
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements [encoding.TextUnmarshaler] with [ParseSeverity].
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Rule is one audit rule.
type Rule struct {
	// ID is the stable identifier, "NSCAP001"; SARIF's ruleId.
	ID string
	// Name is a short kebab-case name, "host-scoped-in-container".
	Name string
	// Severity is the severity of every finding of the rule.
	Severity Severity
	// Summary is one line describing what the rule detects.
	Summary string
	// Explanation is the long text of `nscap audit --explain`: why it
	// matters, where the kernel behaviour comes from, how to fix it.
	Explanation string
}

// Rule IDs.
const (
	RuleCapabilities    = "NSCAP000"
	RuleHostScoped      = "NSCAP001"
	RuleWritable        = "NSCAP002"
	RuleRootEquivalent  = "NSCAP003"
	RuleOrphanedRootID  = "NSCAP004"
	RuleSetID           = "NSCAP005"
	RuleMalformed       = "NSCAP006"
	RuleNonRegular      = "NSCAP007"
	RuleNotVisible      = "NSCAP008"
	RuleBaselineAdded   = "NSCAP101"
	RuleBaselineRemoved = "NSCAP102"
	RuleBaselineChanged = "NSCAP103"
	ruleCount           = 12
)

var rules = [ruleCount]Rule{
	{
		ID: RuleCapabilities, Name: "file-capabilities", Severity: SeverityInfo,
		Summary: "the file carries capabilities (inventory)",
		Explanation: `Every file whose security.capability the kernel returns is listed once
with this rule, with its capabilities and the user namespaces in which they are
honoured, so that the audit is also an inventory. It is not a problem in itself.

Where caps are honoured (kernel-semantics.md §4, rootid_owns_currentns): a
revision-2 value (or revision 3 with rootid 0) acts in every user namespace; a
revision-3 value with rootid R acts in every user namespace whose root is uid R
(as the host sees it) and in all their descendants, and nowhere else: not in a
namespace that merely maps R to a non-zero uid.`,
	},
	{
		ID: RuleHostScoped, Name: "host-scoped-in-container", Severity: SeverityCritical,
		Summary: "host-scoped capabilities on a file inside a container rootfs",
		Explanation: `A revision-2 security.capability (or revision 3 with rootid 0) is honoured
in every user namespace, on the host too. Inside a container rootfs (a tree
audited with --uidmap, a namespace-relative nscap archive entry marked
host-scoped, or a file whose owner lies in a subordinate id range of
/etc/subuid) such a value lets anyone on the host who can execute the file
gain the capabilities, although the container was only meant to have them in
its own namespace.

It usually comes from copying a rootfs with "tar --xattrs" or "cp -a" from
inside a container to the host (the kernel shows the container's own caps as
revision 2 inside it), or from running setcap on the host.

Fix: re-scope the caps to the container root, for example
  nscap set --uidmap 0:100000:65536 CAPS FILE
or remove them with nscap remove.`,
	},
	{
		ID: RuleWritable, Name: "writable-by-non-root", Severity: SeverityCritical,
		Summary: "a non-root user can modify or replace a file with capabilities",
		Explanation: `The file with capabilities is owned by a non-root user, is group- or
world-writable (group other than root), or lies in a directory that a
non-root user can write without the sticky bit (or owns), so that the file can
be renamed away and replaced. "Root" is uid and gid 0 and, for a container
rootfs (--uidmap), the container root's host ids.

The kernel drops security.capability on write(2), truncate and chown (kill-priv),
which is a safety net, not a control: the owner can chmod the file, a writer can
race the exec of the file or swap in another binary under the same name, and
whatever trusts the path then runs attacker code (or loses its capabilities).

Fix: chown root:root, chmod go-w the file and its directories (or set the
sticky bit on shared directories).`,
	},
	{
		ID: RuleRootEquivalent, Name: "root-equivalent-capability", Severity: SeverityHigh,
		Summary: "capabilities that are equivalent to full root",
		Explanation: `Some capabilities give full root to whoever runs the file: cap_sys_admin,
cap_sys_module, cap_sys_rawio, cap_sys_ptrace, cap_sys_boot (kexec), cap_dac_override,
cap_dac_read_search (read any file: /etc/shadow, keys), cap_setuid, cap_setgid,
cap_setfcap, cap_setpcap, cap_chown, cap_fowner, cap_mknod, cap_mac_admin,
cap_mac_override and cap_bpf. A file granting one of them (permitted or
inheritable) is as dangerous as a setuid-root binary, in every namespace where
the caps are honoured, and must be reviewed like one.

Fix: grant the narrowest capability the program needs, or none.`,
	},
	{
		ID: RuleOrphanedRootID, Name: "orphaned-rootid", Severity: SeverityMedium,
		Summary: "namespaced capabilities whose rootid is the root of no live user namespace",
		Explanation: `A revision-3 security.capability acts only in user namespaces whose root
is its rootid (and their descendants). When no live namespace has that root,
and the rootid lies outside the tree's uid map (--uidmap), the caps are dead:
typically a rootfs restored into another uid range by a tool that copied the
rootid verbatim (tar, rsync, cp -a). Worse, the rootid range may later be
handed to another user's container, which would then gain the caps.

Fix: re-scope the caps with nscap set --uidmap or --pid, or restore the rootfs
with nscap restore, which translates rootids.`,
	},
	{
		ID: RuleSetID, Name: "capabilities-with-setid", Severity: SeverityMedium,
		Summary: "capabilities on a setuid or setgid file",
		Explanation: `The file carries both capabilities and the setuid or setgid bit. The kernel
handles the combination specially (a setuid-root file with file caps run by a
non-root user gets the file caps, not full root, and logs a warning), which
is rarely what the packager intended and usually means that one of the two
mechanisms was added by mistake or by tampering.

Fix: drop the setuid/setgid bit (chmod u-s,g-s) or the capabilities.`,
	},
	{
		ID: RuleMalformed, Name: "malformed-capability", Severity: SeverityHigh,
		Summary: "a security.capability value the kernel will not return",
		Explanation: `The file has a security.capability xattr (listxattr lists it) that getxattr
refuses with EINVAL, or an archive holds such a value: a zero-length value, a
value with flag bits other than the effective bit, revision 1, a wrong size
or an unknown revision (kernel-semantics.md §1). Nothing legitimate writes
these: the kernel refuses them on setxattr (older kernels stored the empty
value unchecked, 6.18.44 refuses it too), so they come from an old kernel, a
raw disk edit or a foreign archive:
  - revision 1 and stray flags are still honoured at exec, yet getcap and
    most tools cannot show them: hidden capabilities;
  - an empty value makes every exec of the file fail with EINVAL, and
    survives chown and writes.

Fix: remove the value (nscap remove, as root) and set the intended caps.`,
	},
	{
		ID: RuleNonRegular, Name: "capabilities-on-non-regular-file", Severity: SeverityLow,
		Summary: "capabilities on a directory, symlink, device, fifo or socket",
		Explanation: `The kernel accepts security.capability on any file type but acts on it only
when it executes a regular file; setcap refuses other types. Caps on a
directory, a symlink itself, a device, a fifo or a socket have no effect: they
are a sign of tampering, of a broken copy or of a tool that followed the
wrong path.

Fix: remove them (setfattr -x security.capability, or lsetxattr for a symlink).`,
	},
	{
		ID: RuleNotVisible, Name: "capability-not-visible", Severity: SeverityInfo,
		Summary: "capabilities of a user namespace the auditor cannot see",
		Explanation: `getxattr returned EOVERFLOW: the value is revision 3 and its rootid is not
mapped in the auditor's user namespace, so the caps belong to a namespace
outside the auditor's view (kernel-semantics.md §3). The audit cannot decode
them; it reports them and goes on.

Fix: audit from the host (the initial user namespace), which sees every rootid.`,
	},
	{
		ID: RuleBaselineAdded, Name: "baseline-capability-added", Severity: SeverityMedium,
		Summary: "capabilities added since the baseline",
		Explanation: `With --baseline FILE, a file that carries a security.capability now but had
none in the baseline (written earlier with --write-baseline). New privileged
binaries deserve a review.`,
	},
	{
		ID: RuleBaselineRemoved, Name: "baseline-capability-removed", Severity: SeverityLow,
		Summary: "capabilities removed since the baseline",
		Explanation: `With --baseline FILE, a file that carried a security.capability in the
baseline and has none now (or is gone). Often harmless (a package update), but
the kernel also drops caps silently on chown and on writes, so a program may
have lost a capability it needs.`,
	},
	{
		ID: RuleBaselineChanged, Name: "baseline-capability-changed", Severity: SeverityMedium,
		Summary: "capabilities changed since the baseline",
		Explanation: `With --baseline FILE, a file whose capabilities, revision or rootid differ
from the baseline: new capabilities, or a changed scope (a rootid that now
points to another namespace, a namespaced cap that became host-scoped).`,
	},
}

// Rules returns every audit rule, ordered by ID.
func Rules() []Rule { return slices.Clone(rules[:]) }

// LookupRule finds a rule by ID ("NSCAP001", any letter case) or name
// ("host-scoped-in-container").
func LookupRule(idOrName string) (Rule, bool) {
	for _, r := range rules {
		if strings.EqualFold(r.ID, idOrName) || r.Name == idOrName {
			return r, true
		}
	}
	return Rule{}, false
}

func mustRule(id string) Rule {
	r, ok := LookupRule(id)
	if !ok {
		panic("fcaps: no rule " + id) // unreachable: ids are constants of this file
	}
	return r
}

// RootEquivalentCaps are the capabilities that give full root to whoever
// holds them (rule NSCAP003).
const RootEquivalentCaps xattrfmt.CapSet = 1<<0 | // cap_chown
	1<<1 | // cap_dac_override
	1<<2 | // cap_dac_read_search
	1<<3 | // cap_fowner
	1<<6 | // cap_setgid
	1<<7 | // cap_setuid
	1<<8 | // cap_setpcap
	1<<16 | // cap_sys_module
	1<<17 | // cap_sys_rawio
	1<<19 | // cap_sys_ptrace
	1<<21 | // cap_sys_admin
	1<<22 | // cap_sys_boot
	1<<27 | // cap_mknod
	1<<31 | // cap_setfcap
	1<<32 | // cap_mac_override
	1<<33 | // cap_mac_admin
	1<<39 // cap_bpf

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
}

// Strings renders s as the list printed in "honoured in": ["all"] for
// host-scoped caps, one "user:[INODE]" per live namespace, ["unknown"],
// ["restore-target"] or ["restore-target-uid:N"] for a namespace-relative
// archive, and an empty list when the caps are honoured nowhere.
func (s Scope) Strings() []string {
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
}

// AuditOptions configure the audit rules and engines.
type AuditOptions struct {
	// UIDMap marks the audited trees as a container rootfs with this uid
	// map (host ids outside); the container root's host uid then counts as
	// root for NSCAP002, and rootids inside the map are not orphaned.
	// GIDMap is the gid map (defaults to UIDMap).
	UIDMap, GIDMap userns.Map
	// SubUIDs are subordinate uid ranges (/etc/subuid): a file owned by a
	// uid in one of them is taken to lie in a container rootfs, whose root
	// is the first uid of the range.
	SubUIDs []userns.SubIDRange
	// Namespaces are the live user namespaces ([userns.Tree]). Nil means
	// unknown: rootids are then never called orphaned and the scope of
	// namespaced caps is unknown.
	Namespaces []*userns.Node
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

// honouredIn returns the live namespaces honouring caps with root kuid r:
// the namespaces whose root is r and their descendants, by inode.
func (a *Auditor) honouredIn(r uint32) []userns.NSRef {
	seen := map[userns.NSRef]bool{}
	var out []userns.NSRef
	var add func(n *userns.Node)
	add = func(n *userns.Node) {
		if seen[n.NSRef] {
			return
		}
		seen[n.NSRef] = true
		out = append(out, n.NSRef)
		for _, c := range n.Children {
			add(c)
		}
	}
	for _, n := range a.roots[r] {
		add(n)
	}
	slices.SortFunc(out, func(x, y userns.NSRef) int {
		if x.Inode != y.Inode {
			return cmp.Compare(x.Inode, y.Inode)
		}
		return cmp.Compare(x.Dev, y.Dev)
	})
	return out
}

// subRange returns the subordinate range holding uid.
func (a *Auditor) subRange(uid uint32) (userns.SubIDRange, bool) {
	for _, r := range a.opts.SubUIDs {
		if uid >= r.Start && uint64(uid) < uint64(r.Start)+uint64(r.Count) {
			return r, true
		}
	}
	return userns.SubIDRange{}, false
}

// container says whether e lies in a container rootfs, and why.
func (a *Auditor) container(e *Entry) (string, bool) {
	switch {
	case e.Container != "":
		return e.Container, true
	case e.Relative:
		return "in a namespace-relative archive", true
	case !a.opts.UIDMap.IsZero():
		return "in a container rootfs with uid map " + a.opts.UIDMap.String(), true
	}
	if r, ok := a.subRange(e.UID); ok {
		return fmt.Sprintf("in a container rootfs (owner %d lies in the subordinate range %d-%d)", e.UID, r.Start, uint64(r.Start)+uint64(r.Count)-1), true
	}
	return "", false
}

// isRootUID reports whether uid counts as root for e: 0, the container
// root of --uidmap, or the first uid of the subordinate range of e's owner.
func (a *Auditor) isRootUID(e *Entry, uid uint32) bool {
	if uid == 0 {
		return true
	}
	if e.Relative {
		return false
	}
	if r, err := a.opts.UIDMap.ToHost(0); err == nil && r == uid {
		return true
	}
	if r, ok := a.subRange(e.UID); ok && a.opts.UIDMap.IsZero() && r.Start == uid {
		return true
	}
	return false
}

func (a *Auditor) isRootGID(e *Entry, gid uint32) bool {
	if gid == 0 {
		return true
	}
	if e.Relative {
		return false
	}
	if r, err := a.opts.GIDMap.ToHost(0); err == nil && r == gid {
		return true
	}
	if r, ok := a.subRange(e.UID); ok && a.opts.UIDMap.IsZero() && r.Start == gid {
		return true
	}
	return false
}

// hostScoped reports whether c, as read by the auditor, acts in every
// namespace (revision 1 or 2, or revision 3 with rootid 0).
func hostScoped(c xattrfmt.FileCaps) bool {
	return c.Revision != xattrfmt.Revision3 || c.RootID == 0
}

// scope computes where the caps of e are honoured.
func (a *Auditor) scope(e *Entry) Scope {
	switch {
	case e.CapsErr != nil:
		if e.Raw != nil && len(e.Raw) == 0 {
			return Scope{Kind: ScopeNone} // exec fails
		}
		return Scope{Kind: ScopeUnknown}
	case e.Mode.Type() != 0:
		return Scope{Kind: ScopeNone}
	case e.Relative:
		if e.Caps.Revision == xattrfmt.Revision3 {
			return Scope{Kind: ScopeRelative, RootID: e.Caps.RootID}
		}
		return Scope{Kind: ScopeRelative}
	case hostScoped(e.Caps):
		return Scope{Kind: ScopeAll}
	case a.roots == nil:
		return Scope{Kind: ScopeUnknown}
	}
	return Scope{Kind: ScopeNamespaces, Namespaces: a.honouredIn(e.Caps.RootID)}
}

// Check applies every rule (but the baseline ones) to e and returns its
// findings, the most severe first. An entry without any capability value
// (Raw nil, CapsErr nil and a zero Caps) still gets the rules on its
// value as given.
func (a *Auditor) Check(e Entry) []Finding {
	if e.Raw != nil && e.CapsErr == nil {
		e.Caps, e.CapsErr = xattrfmt.Decode(e.Raw)
	}
	var out []Finding
	sc := a.scope(&e)
	var caps *xattrfmt.FileCaps
	if e.CapsErr == nil {
		c := e.Caps
		caps = &c
	}
	add := func(id, msg string) {
		out = append(out, Finding{Rule: mustRule(id), Path: e.Path, Root: e.Root, Rel: e.Rel, Message: msg, Caps: caps, Scope: sc})
	}
	regular := e.Mode.Type() == 0
	where := scopeText(sc)

	// NSCAP006 and NSCAP008: values that cannot be read as they are.
	switch {
	case errors.Is(e.CapsErr, ErrNotVisible):
		add(RuleNotVisible, "capabilities of a user namespace the auditor cannot see (EOVERFLOW: the rootid is not mapped here)")
	case e.CapsErr != nil && e.Raw != nil:
		add(RuleMalformed, malformedText(e.Raw, e.CapsErr))
	case e.CapsErr != nil:
		add(RuleMalformed, "security.capability is listed but the kernel refuses to return it (EINVAL): an empty value (exec fails), revision 1 or stray flags (still honoured at exec)")
	case e.Caps.Revision == xattrfmt.Revision1:
		add(RuleMalformed, "revision-1 value: honoured at exec (capabilities 0-31, host-scoped) but getxattr refuses it with EINVAL, so getcap cannot show it")
	}

	if e.CapsErr == nil {
		desc := fmt.Sprintf("revision %d", e.Caps.Revision)
		if e.Caps.HasRootID() {
			desc += fmt.Sprintf(", rootid %d", e.Caps.RootID)
		}
		add(RuleCapabilities, fmt.Sprintf("%s (%s), honoured in %s", e.Caps, desc, where))

		// NSCAP001: host-scoped inside a container rootfs.
		if why, ok := a.container(&e); ok && regular && !e.Relative && hostScoped(e.Caps) {
			rev := fmt.Sprintf("revision %d", e.Caps.Revision)
			if e.Caps.HasRootID() {
				rev += ", rootid 0"
			}
			add(RuleHostScoped, fmt.Sprintf("host-scoped capabilities (%s) %s: honoured in every user namespace, the host's included", rev, why))
		}

		// NSCAP003: root-equivalent capabilities.
		c := e.Caps.Caps()
		if bad := (c.Permitted | c.Inheritable) & RootEquivalentCaps; bad != 0 && regular {
			add(RuleRootEquivalent, fmt.Sprintf("grants %s, equivalent to full root where honoured (%s)", setNames(bad), where))
		}

		// NSCAP004: orphaned rootid.
		if regular && e.Caps.Revision == xattrfmt.Revision3 && e.Caps.RootID != 0 {
			if msg, ok := a.orphaned(&e); ok {
				add(RuleOrphanedRootID, msg)
			}
		}
	}

	if regular {
		// NSCAP002: writable or replaceable by non-root.
		if why := a.writable(&e); why != "" {
			add(RuleWritable, why)
		}
		// NSCAP005: setuid/setgid.
		if bits := e.Mode & (fs.ModeSetuid | fs.ModeSetgid); bits != 0 {
			add(RuleSetID, fmt.Sprintf("capabilities on a %s file (mode %s)", setidText(bits), modeText(e.Mode)))
		}
	} else {
		add(RuleNonRegular, fmt.Sprintf("capabilities on a %s, where they have no effect (sign of tampering or of a broken copy)", typeText(e.Mode)))
	}
	slices.SortStableFunc(out, func(x, y Finding) int {
		if x.Rule.Severity != y.Rule.Severity {
			return int(y.Rule.Severity) - int(x.Rule.Severity)
		}
		return strings.Compare(x.Rule.ID, y.Rule.ID)
	})
	return out
}

// orphaned explains why e's rootid is dead, if it is.
func (a *Auditor) orphaned(e *Entry) (string, bool) {
	r := e.Caps.RootID
	if e.Relative {
		if e.RelMap.IsZero() {
			return "", false
		}
		if _, err := e.RelMap.ToHost(r); err == nil {
			return "", false
		}
		return fmt.Sprintf("rootid %d is not mapped by the archive's uid map %s: the capabilities can never be honoured after a restore", r, e.RelMap), true
	}
	if a.roots == nil || len(a.roots[r]) > 0 {
		return "", false
	}
	if !a.opts.UIDMap.IsZero() {
		if _, err := a.opts.UIDMap.ToNs(r); err == nil {
			return "", false
		}
		return fmt.Sprintf("rootid %d is the root of no live user namespace and lies outside the uid map %s", r, a.opts.UIDMap), true
	}
	return fmt.Sprintf("rootid %d is the root of no live user namespace: the capabilities act nowhere (until a namespace with that root appears)", r), true
}

// writable explains how a non-root user can modify or replace e, or "".
func (a *Auditor) writable(e *Entry) string {
	var why []string
	switch {
	case !a.isRootUID(e, e.UID):
		why = append(why, fmt.Sprintf("owned by non-root uid %d", e.UID))
	case e.Mode&0o002 != 0:
		why = append(why, fmt.Sprintf("world-writable (mode %s)", modeText(e.Mode)))
	case e.Mode&0o020 != 0 && !a.isRootGID(e, e.GID):
		why = append(why, fmt.Sprintf("writable by non-root group %d (mode %s)", e.GID, modeText(e.Mode)))
	}
	for _, d := range e.Dirs {
		var w string
		switch {
		case !a.isRootUID(e, d.UID):
			w = fmt.Sprintf("owned by non-root uid %d", d.UID)
		case d.Mode&fs.ModeSticky != 0:
			// Only the file's owner (root here) or the directory's
			// owner (root) may rename or remove it.
		case d.Mode&0o002 != 0:
			w = fmt.Sprintf("world-writable without the sticky bit (mode %s)", modeText(d.Mode|fs.ModeDir))
		case d.Mode&0o020 != 0 && !a.isRootGID(e, d.GID):
			w = fmt.Sprintf("writable by non-root group %d without the sticky bit (mode %s)", d.GID, modeText(d.Mode|fs.ModeDir))
		}
		if w != "" {
			why = append(why, fmt.Sprintf("its directory %s is %s, so the file can be replaced", d.Path, w))
			break
		}
	}
	if len(why) == 0 {
		return ""
	}
	return "a non-root user can modify or replace this file with capabilities: " + strings.Join(why, "; ")
}

func scopeText(s Scope) string {
	switch s.Kind {
	case ScopeAll:
		return "all user namespaces"
	case ScopeNone:
		return "no namespace"
	case ScopeUnknown:
		return "unknown namespaces"
	case ScopeRelative:
		if s.RootID == 0 {
			return "the namespace the archive is restored into"
		}
		return fmt.Sprintf("the nested namespace whose root is uid %d of the restore target", s.RootID)
	case ScopeNamespaces:
	}
	if len(s.Namespaces) == 0 {
		return "no live namespace"
	}
	return strings.Join(s.Strings(), ", ")
}

func malformedText(raw []byte, err error) string {
	switch {
	case len(raw) == 0:
		return "zero-length security.capability: every exec of the file fails with EINVAL, and chown or writes do not clear it"
	case errors.Is(err, xattrfmt.ErrBadFlags):
		return fmt.Sprintf("security.capability with stray flags (%v): refused by getxattr, yet honoured at exec (hidden capabilities)", err)
	}
	return fmt.Sprintf("malformed security.capability (%v): exec of the file fails with EINVAL", err)
}

func setNames(s xattrfmt.CapSet) string {
	var names []string
	for bit := range 64 {
		if s.Has(bit) {
			names = append(names, xattrfmt.Name(bit))
		}
	}
	return strings.Join(names, ", ")
}

func setidText(bits fs.FileMode) string {
	switch bits {
	case fs.ModeSetuid:
		return "setuid"
	case fs.ModeSetgid:
		return "setgid"
	}
	return "setuid and setgid"
}

// modeText formats the permission bits as ls does ("-rwsr-xr-x").
func modeText(m fs.FileMode) string {
	b := []byte(fs.FileMode(m & fs.ModePerm).String())
	if m.IsDir() {
		b[0] = 'd'
	}
	set := func(i int, on bool, lower, upper byte) {
		if !on {
			return
		}
		if b[i] == 'x' {
			b[i] = lower
		} else {
			b[i] = upper
		}
	}
	set(3, m&fs.ModeSetuid != 0, 's', 'S')
	set(6, m&fs.ModeSetgid != 0, 's', 'S')
	set(9, m&fs.ModeSticky != 0, 't', 'T')
	return string(b)
}

func typeText(m fs.FileMode) string {
	switch m.Type() {
	case fs.ModeDir:
		return "directory"
	case fs.ModeSymlink:
		return "symlink"
	case fs.ModeNamedPipe:
		return "fifo"
	case fs.ModeSocket:
		return "socket"
	case fs.ModeDevice | fs.ModeCharDevice:
		return "character device"
	case fs.ModeDevice:
		return "block device"
	}
	return "non-regular file"
}
