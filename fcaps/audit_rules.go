package fcaps

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

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
