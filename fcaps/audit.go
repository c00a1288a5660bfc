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
	RuleCapabilities      = "NSCAP000"
	RuleHostScoped        = "NSCAP001"
	RuleWritable          = "NSCAP002"
	RuleRootEquivalent    = "NSCAP003"
	RuleOrphanedRootID    = "NSCAP004"
	RuleSetID             = "NSCAP005"
	RuleMalformed         = "NSCAP006"
	RuleNonRegular        = "NSCAP007"
	RuleNotVisible        = "NSCAP008"
	RuleHostRootID        = "NSCAP009"
	RuleForeignArch       = "NSCAP010"
	RuleBinfmtInterpreter = "NSCAP011"
	RuleBaselineAdded     = "NSCAP101"
	RuleBaselineRemoved   = "NSCAP102"
	RuleBaselineChanged   = "NSCAP103"
	ruleCount             = 15
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
audited with a uid map, given or inferred, a namespace-relative nscap archive
entry marked host-scoped, or a file below a directory owned in a subordinate
id range of /etc/subuid) such a value lets anyone on the host who can execute the file
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
be renamed away and replaced. "Root" is uid and gid 0, the container root's
host ids for a container rootfs, and, for namespaced caps, the root of the
namespace where they are honoured (the rootid) and the roots of the live
namespaces above it: they could give themselves the caps anyway. A finding
that rests on owners in a container whose uid map was guessed is reported as
low.

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
		ID: RuleHostRootID, Name: "host-rootid-in-image-layer", Severity: SeverityMedium,
		Summary: "namespaced capabilities with a host's rootid in an image layer",
		Explanation: `An image layer holds a revision-3 security.capability with a non-zero
rootid. Layer contents are relative to the container (owners are container
ids, a revision-2 value belongs to the container root), but a rootid is a host
uid: that of the user namespace the layer was built in (a rootless or
userns-remapped build: podman's container-libs pull 1126, moby pull 41724).
The runtime unpacks the layer under whatever uid map it picks, so the caps
are honoured nowhere the image will run, only in a namespace whose root is
that very host uid, on whatever machine has one: the program silently
runs without its capabilities, or gains them in an unrelated container.

Fix: rewrite the layer with the caps namespace-relative (revision 2 for the
container root; nscap normalize), then rebuild the image.`,
	},
	{
		ID: RuleForeignArch, Name: "foreign-arch-capabilities", Severity: SeverityLow,
		Summary: "capabilities on a binary of another architecture (binfmt_misc)",
		Explanation: `The file with capabilities is an ELF binary for another machine than the
host's (an arm64 ping in an amd64 host's container): the kernel runs it
through the binfmt_misc entry that matches it, with its interpreter (qemu-user,
box64, ...). Its capabilities are honoured only when the entry has the C flag
(credentials from the binary, not from the interpreter). Without C they are
silently ignored (the program runs but fails where it needs them: low); with
C they are honoured (info); with no entry the file cannot run at all (low).

The entries read are those of the binfmt_misc instance of the audited
container (--pid, when it mounted its own: Linux 6.7 lets a user namespace
do so) or else the host's /proc/sys/fs/binfmt_misc.

Fix: register the interpreter with the C flag if the caps are needed (and
make sure the interpreter is trustworthy: NSCAP011), or drop the caps.`,
	},
	{
		ID: RuleBinfmtInterpreter, Name: "binfmt-interpreter-unsafe", Severity: SeverityCritical,
		Summary: "the binfmt_misc interpreter of a capped binary is writable or has capabilities",
		Explanation: `The interpreter the kernel runs for a capped foreign binary (binfmt_misc)
can be written by a non-root user, or carries capabilities itself. With the
C flag the interpreter runs with the capabilities of the binary it is given:
whoever can replace it runs code with them (critical). Without C, a writable
interpreter runs as everyone who executes a binary of that format (medium),
and an interpreter with capabilities gives them to every such binary (high).

Fix: chown root:root, chmod go-w the interpreter and its directories; do not
set capabilities on interpreters.`,
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

// view is the container an entry is taken to lie in.
type view struct {
	// in: the entry lies in a container (rootfs or archive).
	in bool
	// why says why, for the messages.
	why string
	// uid and gid are the container's maps (host ids outside), zero when
	// unknown (an archive marked host-scoped, a namespace-relative archive
	// whose ids are the container's already).
	uid, gid userns.Map
	// guessed: the maps are a guess; verdicts depending on them are
	// capped at SeverityLow.
	guessed bool
}

// view finds the container e lies in: the one of the entry itself (an
// archive), of AuditOptions.UIDMap, or, without a map, of a subordinate
// range holding e's owner, whose root is the owner of the outermost
// directory above e owned in the same range.
func (a *Auditor) view(e *Entry) view {
	switch {
	case e.Container != "":
		return view{in: true, why: e.Container}
	case e.Relative:
		return view{in: true, why: "in a namespace-relative archive"}
	case !a.opts.UIDMap.IsZero():
		why := a.opts.MapReason
		if why == "" {
			why = "in a container rootfs with uid map " + a.opts.UIDMap.String()
		}
		return view{in: true, why: why, uid: a.opts.UIDMap, gid: a.opts.GIDMap, guessed: a.opts.MapGuessed}
	}
	r, ok := a.subRange(e.UID)
	if !ok {
		return view{}
	}
	end := uint64(r.Start) + uint64(r.Count)
	top, topName := e.UID, "the file"
	for _, d := range e.Dirs {
		if d.UID < r.Start || uint64(d.UID) >= end {
			break
		}
		top, topName = d.UID, d.Path
	}
	for _, n := range a.roots[top] {
		if n.Self || n.MapErr != nil || n.UIDMap.IsZero() {
			continue
		}
		gid := n.GIDMap
		if gid.IsZero() {
			gid = n.UIDMap
		}
		return view{
			in: true, uid: n.UIDMap, gid: gid,
			why: fmt.Sprintf("in a container rootfs (%s is owned by uid %d, the root of the live user namespace %s, uid map %s)", topName, top, n.NSRef, n.UIDMap),
		}
	}
	count := min(end-uint64(top), 65536)
	m, err := userns.NewMap([]userns.Extent{{NsID: 0, HostID: top, Count: uint32(count)}})
	if err != nil {
		return view{} // unreachable: a single extent inside the range
	}
	v := view{
		in: true, uid: m, gid: m, guessed: true,
		why: fmt.Sprintf("probably in a container rootfs (%s is owned by uid %d, in the subordinate range %d-%d; no live user namespace has that root, so the uid map %s is a guess)", topName, top, r.Start, end-1, m),
	}
	if len(a.roots[top]) > 0 {
		// A live namespace with that root, whose map could not be read.
		v.guessed = false
		v.why = fmt.Sprintf("in a container rootfs (%s is owned by uid %d, the root of a live user namespace)", topName, top)
	}
	return v
}

// uidText names a host uid, with the container's view when the map knows
// it: "uid 1000 in the container (host 201000)".
func (v view) uidText(uid uint32) string {
	if n, err := v.uid.ToNs(uid); err == nil && !v.uid.IsZero() {
		return fmt.Sprintf("uid %d in the container (host %d)", n, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

func (v view) gidText(gid uint32) string {
	if n, err := v.gid.ToNs(gid); err == nil && !v.gid.IsZero() {
		return fmt.Sprintf("group %d in the container (host %d)", n, gid)
	}
	return fmt.Sprintf("group %d", gid)
}

// scopeRoot returns the rootid of e's namespaced caps: the root of the
// only namespaces (with their descendants) where they are honoured.
func scopeRoot(e *Entry) (uint32, bool) {
	if e.CapsErr != nil || e.Caps.Revision != xattrfmt.Revision3 || e.Caps.RootID == 0 {
		return 0, false
	}
	return e.Caps.RootID, true
}

// isRootUID reports whether uid counts as root for e: a uid that could
// give itself e's caps anyway, so that its writing the file is no
// escalation. That is 0, the container root, and for namespaced caps the
// root of their scope (the rootid) and the roots of the live namespaces
// above it: the only namespaces where the caps act are theirs.
func (a *Auditor) isRootUID(e *Entry, v view, uid uint32) bool {
	if uid == 0 {
		return true
	}
	r, scoped := scopeRoot(e)
	if scoped && uid == r {
		return true
	}
	if e.Relative {
		return false
	}
	if h, err := v.uid.ToHost(0); err == nil && h == uid {
		return true
	}
	if scoped {
		for _, n := range a.roots[r] {
			for p := n.Parent; p != nil; p = p.Parent {
				if p.RootVisible && p.RootID == uid {
					return true
				}
			}
		}
	}
	return false
}

// isRootGID is isRootUID for groups: 0, the container root's group, and
// for namespaced caps the group of their scope's root. That group is the
// gid a live namespace with that root maps to its gid 0, or else the gid
// with the rootid's number in the container (shifted maps map uids and
// gids alike: container uid 1000 goes with container gid 1000).
func (a *Auditor) isRootGID(e *Entry, v view, gid uint32) bool {
	if gid == 0 {
		return true
	}
	r, scoped := scopeRoot(e)
	if e.Relative {
		return scoped && gid == r
	}
	if h, err := v.gid.ToHost(0); err == nil && h == gid {
		return true
	}
	if !scoped {
		return false
	}
	if v.uid.IsZero() {
		if gid == r {
			return true
		}
	} else if n, err := v.uid.ToNs(r); err == nil {
		if h, err := v.gid.ToHost(n); err == nil && h == gid {
			return true
		}
	}
	for _, n := range a.roots[r] {
		for p := n; p != nil; p = p.Parent {
			if h, err := p.GIDMap.ToHost(0); err == nil && h == gid && p.MapErr == nil {
				return true
			}
		}
	}
	return false
}

// hostScoped reports whether c, as read by the auditor, acts in every
// namespace (revision 1 or 2, or revision 3 with rootid 0).
func hostScoped(c xattrfmt.FileCaps) bool {
	return c.Revision != xattrfmt.Revision3 || c.RootID == 0
}

// scope computes where the caps of e are honoured.
func (a *Auditor) scope(e *Entry, v view) Scope {
	var sc Scope
	switch {
	case e.CapsErr != nil:
		if e.Raw != nil && len(e.Raw) == 0 {
			return Scope{Kind: ScopeNone} // exec fails
		}
		return Scope{Kind: ScopeUnknown}
	case e.Mode.Type() != 0:
		return Scope{Kind: ScopeNone}
	case e.Image && !hostScoped(e.Caps):
		return Scope{Kind: ScopeNone} // a host's rootid (NSCAP009)
	case e.Image:
		// Whatever namespace the image runs in, its root's.
		return Scope{Kind: ScopeUnknown, InContainer: true}
	case e.Relative:
		if e.Caps.Revision == xattrfmt.Revision3 {
			return Scope{Kind: ScopeRelative, RootID: e.Caps.RootID}
		}
		return Scope{Kind: ScopeRelative}
	case hostScoped(e.Caps):
		return Scope{Kind: ScopeAll}
	case a.roots == nil:
		sc = Scope{Kind: ScopeUnknown}
	default:
		sc = Scope{Kind: ScopeNamespaces, Namespaces: a.honouredIn(e.Caps.RootID)}
	}
	if n, err := v.uid.ToNs(e.Caps.RootID); err == nil && !v.uid.IsZero() {
		sc.InContainer, sc.ContainerRootID = true, n
	}
	return sc
}

// Check applies every rule (but the baseline ones) to e and returns its
// findings, the most severe first. An entry without any capability value
// (Raw nil, CapsErr nil and a zero Caps) still gets the rules on its
// value as given.
//
// A finding whose verdict depends on a guessed container uid map (see
// [Finding].MapGuessed) is reported at [SeverityLow] at most: NSCAP001,
// NSCAP004, and NSCAP002 (NSCAP011 for an interpreter) when only owners
// and groups (not mode bits) make the file writable.
func (a *Auditor) Check(e Entry) []Finding {
	if e.Raw != nil && e.CapsErr == nil {
		e.Caps, e.CapsErr = xattrfmt.Decode(e.Raw)
	}
	var out []Finding
	v := a.view(&e)
	sc := a.scope(&e, v)
	var caps *xattrfmt.FileCaps
	if e.CapsErr == nil {
		c := e.Caps
		caps = &c
	}
	base := Finding{Path: e.Path, Root: e.Root, Rel: e.Rel, Caps: caps, Scope: sc, Owner: e.UID, Layer: e.Layer}
	if n, err := v.uid.ToNs(e.UID); err == nil && !v.uid.IsZero() {
		base.OwnerInContainer = &n
	}
	if sc.InContainer {
		n := sc.ContainerRootID
		base.RootIDInContainer = &n
	}
	add := func(id, msg string) {
		f := base
		f.Rule, f.Message = mustRule(id), msg
		out = append(out, f)
	}
	// guess caps the finding just added when its verdict depends on a
	// guessed map.
	guess := func() {
		f := &out[len(out)-1]
		f.MapGuessed = true
		if f.Rule.Severity > SeverityLow {
			f.Message += fmt.Sprintf(" (reported as low, not %s: the container uid map is a guess; give --uidmap to confirm)", f.Rule.Severity)
			f.Rule.Severity = SeverityLow
		}
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
			switch {
			case sc.InContainer && sc.ContainerRootID == 0:
				desc += " (the container root)"
			case sc.InContainer:
				desc += fmt.Sprintf(" (container uid %d)", sc.ContainerRootID)
			}
		}
		add(RuleCapabilities, fmt.Sprintf("%s (%s), honoured in %s", e.Caps, desc, where))

		// NSCAP001: host-scoped inside a container rootfs.
		if v.in && regular && !e.Relative && hostScoped(e.Caps) {
			rev := fmt.Sprintf("revision %d", e.Caps.Revision)
			if e.Caps.HasRootID() {
				rev += ", rootid 0"
			}
			add(RuleHostScoped, fmt.Sprintf("host-scoped capabilities (%s) %s: honoured in every user namespace, the host's included", rev, v.why))
			if v.guessed {
				guess()
			}
		}

		// NSCAP003: root-equivalent capabilities.
		c := e.Caps.Caps()
		if bad := (c.Permitted | c.Inheritable) & RootEquivalentCaps; bad != 0 && regular {
			add(RuleRootEquivalent, fmt.Sprintf("grants %s, equivalent to full root where honoured (%s)", setNames(bad), where))
		}

		// NSCAP009: a host's rootid in an image layer.
		if e.Image && e.Caps.Revision == xattrfmt.Revision3 && e.Caps.RootID != 0 {
			add(RuleHostRootID, fmt.Sprintf("revision 3 with rootid %d in layer %s: a host uid of the machine that built the layer, so the capabilities are honoured nowhere the image will run", e.Caps.RootID, e.Layer))
		}

		// NSCAP004: orphaned rootid.
		if regular && e.Caps.Revision == xattrfmt.Revision3 && e.Caps.RootID != 0 && !e.Image {
			if msg, ok := a.orphaned(&e, v); ok {
				add(RuleOrphanedRootID, msg)
				if v.guessed {
					guess()
				}
			}
		}
	}

	if regular {
		// NSCAP002: writable or replaceable by non-root.
		if why, byMode := a.writable(&e, v); why != "" {
			add(RuleWritable, why)
			if v.guessed && !byMode {
				guess()
			}
		}
		// NSCAP010, NSCAP011: a foreign binary run through binfmt_misc.
		if e.CapsErr == nil {
			a.checkBinfmt(&e, v, add, func(s Severity) {
				f := &out[len(out)-1]
				if s < f.Rule.Severity || f.Rule.ID == RuleForeignArch {
					f.Rule.Severity = s
				}
			}, func(m *BinfmtMatch) { out[len(out)-1].Binfmt = m }, guess)
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
func (a *Auditor) orphaned(e *Entry, v view) (string, bool) {
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
	if !v.uid.IsZero() {
		if _, err := v.uid.ToNs(r); err == nil {
			return "", false
		}
		return fmt.Sprintf("rootid %d is the root of no live user namespace and lies outside the container's uid map %s", r, v.uid), true
	}
	return fmt.Sprintf("rootid %d is the root of no live user namespace: the capabilities act nowhere (until a namespace with that root appears)", r), true
}

// writable explains how a non-root user can modify or replace e, or "";
// byMode says that mode bits alone make it so (world-writable), whoever
// counts as root.
func (a *Auditor) writable(e *Entry, v view) (string, bool) {
	var why []string
	byMode := false
	switch {
	case !a.isRootUID(e, v, e.UID):
		why = append(why, fmt.Sprintf("owned by non-root %s", v.uidText(e.UID)))
		byMode = e.Mode&0o002 != 0
	case e.Mode&0o002 != 0:
		why = append(why, fmt.Sprintf("world-writable (mode %s)", modeText(e.Mode)))
		byMode = true
	case e.Mode&0o020 != 0 && !a.isRootGID(e, v, e.GID):
		why = append(why, fmt.Sprintf("writable by non-root %s (mode %s)", v.gidText(e.GID), modeText(e.Mode)))
	}
	for _, d := range e.Dirs {
		var w string
		switch {
		case !a.isRootUID(e, v, d.UID):
			w = fmt.Sprintf("owned by non-root %s", v.uidText(d.UID))
			byMode = byMode || d.Mode&(fs.ModeSticky|0o002) == 0o002
		case d.Mode&fs.ModeSticky != 0:
			// Only the file's owner (root here) or the directory's
			// owner (root) may rename or remove it.
		case d.Mode&0o002 != 0:
			w = fmt.Sprintf("world-writable without the sticky bit (mode %s)", modeText(d.Mode|fs.ModeDir))
			byMode = true
		case d.Mode&0o020 != 0 && !a.isRootGID(e, v, d.GID):
			w = fmt.Sprintf("writable by non-root %s without the sticky bit (mode %s)", v.gidText(d.GID), modeText(d.Mode|fs.ModeDir))
		}
		if w != "" {
			why = append(why, fmt.Sprintf("its directory %s is %s, so the file can be replaced", d.Path, w))
			break
		}
	}
	if len(why) == 0 {
		return "", false
	}
	return "a non-root user can modify or replace this file with capabilities: " + strings.Join(why, "; "), byMode
}

func scopeText(s Scope) string {
	switch s.Kind {
	case ScopeAll:
		return "all user namespaces"
	case ScopeNone:
		return "no namespace"
	case ScopeUnknown:
		if s.InContainer {
			return containerScopeText(s)
		}
		return "unknown namespaces"
	case ScopeRelative:
		if s.RootID == 0 {
			return "the namespace the archive is restored into"
		}
		return fmt.Sprintf("the nested namespace whose root is uid %d of the restore target", s.RootID)
	case ScopeNamespaces:
	}
	live := strings.Join(s.Strings(), ", ")
	switch {
	case s.InContainer && len(s.Namespaces) == 0:
		return containerScopeText(s) + " (none live)"
	case s.InContainer:
		return containerScopeText(s) + ": " + live
	case len(s.Namespaces) == 0:
		return "no live namespace"
	}
	return live
}

// containerScopeText names the namespace of caps scoped inside a
// container, live or not.
func containerScopeText(s Scope) string {
	if s.ContainerRootID == 0 {
		return "the container's own namespace"
	}
	return fmt.Sprintf("the namespace whose root is container uid %d", s.ContainerRootID)
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
