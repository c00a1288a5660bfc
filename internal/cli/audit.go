package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/userns"
)

type auditOptions struct {
	IO      *IOStreams
	Version string

	Paths         []string
	Explain       string          // --explain RULE ("all": every rule)
	FailOn        *fcaps.Severity // --fail-on; nil: never exit 3
	MinSeverity   fcaps.Severity  // --min-severity
	SARIF         bool            // --sarif
	Baseline      string          // --baseline FILE
	WriteBaseline string          // --write-baseline FILE
	UIDMap        userns.Map      // --uidmap
	GIDMap        userns.Map      // --gidmap (defaults to UIDMap)
	SubUIDFile    string          // --subuid FILE
	OCIConfig     string          // --oci-config FILE
	PID           int             // --pid PID
	XDev          bool            // --xdev

	JSON       bool
	Quiet      bool
	NoProgress bool

	// Namespaces lists the live user namespaces (userns.Tree); tests
	// replace it to get stable output.
	Namespaces func() ([]*userns.Node, error)
	// Binfmt reads the binfmt_misc instance (fcaps.ReadBinfmt).
	Binfmt func(pid int) (*fcaps.Binfmt, error)
}

const auditLong = `Audit files, trees and archives for file capabilities and report findings,
each with a rule id, a severity (info, low, medium, high, critical), the path,
the capabilities, the user namespaces in which they are honoured and a message.

Each PATH is a file or a directory tree (walked in parallel, without following
symlinks, non-regular files included), or an archive: a tar file, plain, gzip
or zstd (an OCI image layer is one), audited without extracting from its
SCHILY.xattr.* and LIBARCHIVE.xattr.* records. Archive members are named
ARCHIVE:MEMBER.

A PATH may also be a container image: an OCI image layout directory
(index.json, blobs/), or an uncompressed archive of one (podman save --format
oci-archive), or a docker save / podman save tarball (manifest.json). Each
image's layers are read in order (gzip, zstd or plain, each checked against
its digest) and merged with their whiteouts (.wh.NAME, .wh..wh..opq), so a
file an upper layer deleted or replaced is not reported; a finding names the
layer that wrote the file (JSON "layer": its digest, or its diff id for a
docker archive). Files are named IMAGE:PATH (IMAGE@REF:PATH when the image
holds several manifests); owners and caps are the container's.

RULES (nscap audit --explain RULE for the details, --explain all for all)
  NSCAP000 file-capabilities                  info      inventory: every file with caps
  NSCAP001 host-scoped-in-container           critical  revision 2 (or rootid 0) in a container rootfs
  NSCAP002 writable-by-non-root               critical  a non-root user can modify or replace the file
  NSCAP003 root-equivalent-capability         high      cap_sys_admin, cap_setuid, cap_dac_override, ...
  NSCAP004 orphaned-rootid                    medium    rootid of no live namespace, outside --uidmap
  NSCAP005 capabilities-with-setid            medium    caps on a setuid or setgid file
  NSCAP006 malformed-capability               high      empty, revision 1, stray flags (EINVAL on read)
  NSCAP007 capabilities-on-non-regular-file   low       caps on a directory, symlink, device, ...
  NSCAP008 capability-not-visible             info      rootid not mapped here (EOVERFLOW)
  NSCAP009 host-rootid-in-image-layer         medium    rootid != 0 in an image layer: honoured nowhere
  NSCAP010 foreign-arch-capabilities          low       caps on another machine's ELF: binfmt_misc C flag?
  NSCAP011 binfmt-interpreter-unsafe          critical  its interpreter is writable or has caps
  NSCAP101 baseline-capability-added          medium    with --baseline
  NSCAP102 baseline-capability-removed        low       with --baseline
  NSCAP103 baseline-capability-changed        medium    with --baseline

A tree (or an archive of one) is a container rootfs with the uid map of
--uidmap (the container root's host ids then count as root), of --pid PID (its
user namespace's), or of --oci-config FILE (an OCI runtime config.json), else
with the map found the way a user would find it:
the config.json of the OCI bundle beside the tree, a live user namespace whose
root owns the tree's top directory, or, a guess, the owner of the top
directory when etc/passwd inside has the same owner (the map 0:OWNER:65536 or
more). A finding that depends on a guessed map is reported as low at most.
Without a map, a file owned in a subordinate range of --subuid (default
/etc/subuid) may lie in a container rootfs, whose root is the owner of the
outermost directory above it in the same range (a guess unless a live
namespace has that root); the range's first id alone never makes a root.
The summary says which map was used and why.

"Root" in NSCAP002 is uid (and gid) 0, the container root, and for namespaced
caps the root of the namespace where they are honoured (the rootid) and the
roots of the live namespaces above it: the only users who gain nothing by
rewriting the file. Owners and rootids inside a container are shown as the
container sees them, with the host's ids ("uid 1000 in the container (host
201000)"). "Honoured in" lists "all" for host-scoped caps, else every live
user namespace (user:[INODE]) whose root is the rootid, and their
descendants, "container-root" or "container-uid:N" for caps scoped to the
container's namespace or to a nested one whose root is its uid N when none is
live; for a namespace-relative nscap archive "restore-target".

FOREIGN BINARIES (binfmt_misc)
  A capped ELF file for another machine than the host's runs through the
  binfmt_misc entry matching it: its caps are honoured only with the C flag.
  The entries are read from the binfmt_misc instance of the container of
  --pid when it mounted its own (Linux 6.7), else from the host's
  /proc/sys/fs/binfmt_misc; interpreters are examined in the same root.
  NSCAP010 says how such a file runs (info: honoured; low: ignored or not
  runnable), NSCAP011 flags a writable interpreter (critical with C) or one
  with caps.

OUTPUT
  a table (SEVERITY RULE PATH CAPS HONOURED-IN MESSAGE) sorted by path; with
  --json, JSON Lines: {"type":"finding","rule","rule_name","severity",
  "path","message","honoured_in","caps","revision","rootid","owner_uid",
  "owner_container_uid","rootid_container","map_guessed","layer","binfmt"} per
  finding and a final {"type":"summary","command":"audit",...,"maps":[{"path","source",
  "uid_map","gid_map","guessed","reason"}],"binfmt":{"dir","instance",
  "mounted","enabled","host_machine","entries"}}; with --sarif, one SARIF 2.1.0 log for
  code-scanning tools. --min-severity hides findings below it (default info).

BASELINE
  --write-baseline FILE records the caps of every file seen (JSON, path ->
  caps, revision, rootid); --baseline FILE adds findings NSCAP101-103 for caps
  added, removed or changed since. Paths are recorded relative to the PATH
  audited (an archive's members by name, without "./"), so a baseline compares
  with the same tree however it is spelt (rootfs, ./rootfs, /abs/rootfs) and
  with an archive of it; with several PATHs each starts with its PATH's base
  name.

` + exitStatusCommon + `
  3  a finding at or above --fail-on SEV (it wins over status 1)`

func newAuditCmd(f *Factory, runF func(*auditOptions) error) *cobra.Command {
	opts := &auditOptions{IO: f.IO, Version: f.Version, Namespaces: userns.Tree, Binfmt: fcaps.ReadBinfmt}
	var failOn, minSev string
	var uidMaps, gidMaps []string
	cmd := &cobra.Command{
		Use:   "audit [--fail-on SEV] [--json | --sarif] [--baseline F] [--write-baseline F] [--uidmap MAP] PATH|ARCHIVE...",
		Short: "Find dangerous file capabilities in trees and archives",
		Long:  auditLong,
		Example: `  nscap audit /usr
  nscap audit --uidmap 0:100000:65536 --fail-on high /var/lib/containers/rootfs
  nscap audit --sarif layer.tar.gz > audit.sarif
  nscap audit --explain NSCAP001`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Paths = args
			opts.JSON, opts.Quiet, opts.NoProgress = f.Global.JSON, f.Global.Quiet, f.Global.NoProgress
			if opts.Explain != "" {
				if len(args) > 0 {
					return flagErrorf("--explain takes no PATH")
				}
			} else if len(args) == 0 {
				return flagErrorf("missing PATH")
			}
			if opts.JSON && opts.SARIF {
				return flagErrorf("--json and --sarif exclude each other")
			}
			if failOn != "" {
				s, err := fcaps.ParseSeverity(failOn)
				if err != nil {
					return flagErrorf("--fail-on: %v", err)
				}
				opts.FailOn = &s
			}
			s, err := fcaps.ParseSeverity(minSev)
			if err != nil {
				return flagErrorf("--min-severity: %v", err)
			}
			opts.MinSeverity = s
			if len(uidMaps) > 0 {
				if opts.UIDMap, err = userns.ParseMapFlags(uidMaps); err != nil {
					return flagErrorf("--uidmap: %v", err)
				}
			}
			if len(gidMaps) > 0 {
				if opts.GIDMap, err = userns.ParseMapFlags(gidMaps); err != nil {
					return flagErrorf("--gidmap: %v", err)
				}
			}
			if n := btoi(opts.OCIConfig != "") + btoi(!opts.UIDMap.IsZero()) + btoi(opts.PID != 0); n > 1 {
				return flagErrorf("--uidmap, --pid and --oci-config exclude each other")
			}
			if opts.PID < 0 {
				return flagErrorf("--pid %d: want a process id", opts.PID)
			}
			if runF != nil {
				return runF(opts)
			}
			return runAudit(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Explain, "explain", "", "print the explanation of `RULE` (id or name; all: every rule) and exit")
	fl.StringVar(&failOn, "fail-on", "", "exit with status 3 when a finding is at or above `SEV`")
	fl.StringVar(&minSev, "min-severity", "info", "report only findings at or above `SEV`")
	fl.BoolVar(&opts.SARIF, "sarif", false, "write a SARIF 2.1.0 log")
	fl.StringVar(&opts.Baseline, "baseline", "", "report capabilities added, removed or changed since the baseline `FILE`")
	fl.StringVar(&opts.WriteBaseline, "write-baseline", "", "write the capabilities seen to the baseline `FILE`")
	fl.StringArrayVar(&uidMaps, "uidmap", nil, "the trees are a container rootfs with this uid `MAP` (NS:HOST:COUNT,...)")
	fl.StringArrayVar(&gidMaps, "gidmap", nil, "its gid `MAP` (default: the uid map)")
	fl.StringVar(&opts.SubUIDFile, "subuid", "/etc/subuid", "subordinate uid ranges: a file below a directory owned in one may lie in a container rootfs (empty: none)")
	fl.IntVar(&opts.PID, "pid", 0, "the trees are the rootfs of the container of process `PID`: its uid map, and its binfmt_misc instance if it has one")
	fl.StringVar(&opts.OCIConfig, "oci-config", "", "take the trees' uid and gid maps from this OCI runtime config.json `FILE`")
	fl.BoolVar(&opts.XDev, "xdev", false, "do not cross filesystem boundaries")
	return cmd
}

// explainRule formats the --explain text of r.
func explainRule(r fcaps.Rule) string {
	return fmt.Sprintf("%s %s (%s)\n%s\n\n%s\n", r.ID, r.Name, r.Severity, r.Summary, r.Explanation)
}

func runAudit(ctx context.Context, opts *auditOptions) error {
	if opts.Explain != "" {
		return explainRules(opts.IO.Out, opts.Explain)
	}
	a, err := newAuditRun(opts)
	if err != nil {
		return err
	}
	for _, p := range opts.Paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := a.auditPath(ctx, p); err != nil {
			return err
		}
	}
	return a.finish()
}

// explainRules prints the --explain text of the rule name (id or name;
// "all": every rule).
func explainRules(w io.Writer, name string) error {
	if name == "all" {
		for i, r := range fcaps.Rules() {
			if i > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprint(w, explainRule(r))
		}
		return nil
	}
	r, ok := fcaps.LookupRule(name)
	if !ok {
		return flagErrorf("--explain: unknown rule %q (nscap audit --explain all lists them)", name)
	}
	_, err := fmt.Fprint(w, explainRule(r))
	return err
}

// auditRun is one audit of the PATHs: the options handed to fcaps, what
// was found and the paths that could not be audited.
type auditRun struct {
	opts       *auditOptions
	aopts      fcaps.AuditOptions
	failed     bool
	errRecords []itemRecord // --json "error" records, written before the findings
	findings   []fcaps.Finding
	roots      []fcaps.BaselineRoot
	choices    []auditMap
}

// newAuditRun reads what every PATH is audited against: the subordinate
// ranges, the live user namespaces and binfmt_misc.
func newAuditRun(opts *auditOptions) (*auditRun, error) {
	ios := opts.IO
	a := &auditRun{opts: opts}
	a.aopts = fcaps.AuditOptions{
		UIDMap: opts.UIDMap, GIDMap: opts.GIDMap, XDev: opts.XDev,
		Error: func(path string, err error) error {
			a.report(path, err)
			return nil
		},
	}
	subs, err := readAllSubIDs(opts.SubUIDFile)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	a.aopts.SubUIDs = subs
	if opts.Namespaces != nil {
		ns, err := opts.Namespaces()
		if err != nil {
			fmt.Fprintf(ios.ErrOut, "nscap: audit: list user namespaces: %v (orphaned rootids are not reported)\n", err)
		} else {
			a.aopts.Namespaces = ns
		}
	}

	if opts.Binfmt != nil {
		b, err := opts.Binfmt(opts.PID)
		if err != nil {
			fmt.Fprintf(ios.ErrOut, "nscap: audit: read binfmt_misc: %v (foreign binaries are not checked)\n", err)
		} else {
			a.aopts.Binfmt = b
		}
	}
	return a, nil
}

// report reports a path that could not be audited.
func (a *auditRun) report(path string, err error) {
	a.failed = true
	printPathError(a.opts.IO.ErrOut, "audit", path, err)
	a.errRecords = append(a.errRecords, newItemRecord(recError, path, reason(err, path)))
}

func (a *auditRun) collect(f fcaps.Finding) error { a.findings = append(a.findings, f); return nil }

// auditPath audits one PATH: a container image, an archive or a tree. Its
// failures are reported; the error returned ends the audit.
func (a *auditRun) auditPath(ctx context.Context, p string) error {
	// A container image: an OCI layout or an image archive.
	img, err := fcaps.OpenImage(p)
	switch {
	case err == nil:
		a.roots = append(a.roots, fcaps.BaselineRoot{Path: p, Archive: true})
		a.choices = append(a.choices, auditMap{Path: p, MapChoice: fcaps.MapChoice{
			Source: fcaps.MapImage, Reason: fmt.Sprintf("a container image (%s): owners and caps in its layers are the container's", img.Kind),
		}})
		err = fcaps.AuditImage(ctx, img, p, a.aopts, a.collect)
		_ = img.Close() // read only
		if err != nil {
			a.report(p, err)
		}
		return nil
	case errors.Is(err, fcaps.ErrBadArchive):
		a.report(p, err)
		return nil
	}
	// An error (a missing path, a symlink refused by O_NOFOLLOW) is
	// left to the tree walk, which reports it.
	archive, _ := fcaps.IsArchive(p)
	a.roots = append(a.roots, fcaps.BaselineRoot{Path: p, Archive: archive})
	if archive {
		a.auditArchivePath(ctx, p)
		return nil
	}
	choice, err := auditMapFor(p, a.opts, a.aopts.Namespaces)
	if err != nil {
		a.report(p, err)
		return nil
	}
	a.choices = append(a.choices, auditMap{Path: p, MapChoice: choice})
	if err := fcaps.Audit(ctx, []string{p}, choice.Apply(a.aopts), a.collect); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// auditArchivePath audits the archive p with the map the flags name, or
// the one its members show.
func (a *auditRun) auditArchivePath(ctx context.Context, p string) {
	opts := a.opts
	choice := auditMap{Path: p, MapChoice: fcaps.MapChoice{Source: fcaps.MapNone, Reason: "an archive whose top directory and etc/passwd show no container root"}}
	archOpts := a.aopts
	if !opts.UIDMap.IsZero() || opts.PID != 0 {
		c, err := auditMapFor(p, opts, nil)
		if err != nil {
			a.report(p, err)
			return
		}
		choice.MapChoice, archOpts = c, c.Apply(a.aopts)
	}
	archOpts.OnMap = func(c fcaps.MapChoice) { choice.MapChoice = c }
	// The findings of a truncated or corrupt archive's members
	// read before the damage are kept.
	err := auditArchive(ctx, p, archOpts, a.collect)
	a.choices = append(a.choices, choice)
	if err != nil {
		a.report(p, err)
	}
}

// finish compares with and writes the baselines, writes the findings and
// the summary, and returns the exit status.
func (a *auditRun) finish() error {
	opts, ios, findings := a.opts, a.opts.IO, a.findings
	cur := fcaps.NewBaseline(a.roots...)
	for _, f := range findings {
		cur.Add(f)
	}
	if opts.Baseline != "" {
		old, err := readBaselineFile(opts.Baseline)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		findings = append(findings, cur.Diff(old)...)
	}
	if opts.WriteBaseline != "" {
		if err := writeFileAtomic(opts.WriteBaseline, func(w io.Writer) error { _, err := cur.WriteTo(w); return err }); err != nil {
			return fmt.Errorf("audit: write baseline: %w", err)
		}
	}

	sortFindings(findings)
	fail := false
	var shown []fcaps.Finding
	for _, f := range findings {
		if opts.FailOn != nil && f.Severity() >= *opts.FailOn {
			fail = true
		}
		if f.Severity() >= opts.MinSeverity {
			shown = append(shown, f)
		}
	}
	var err error
	switch {
	case opts.SARIF:
		err = writeSARIF(ios.Out, opts.Version, shown)
	case opts.JSON:
		err = writeAuditJSON(ios.Out, a.errRecords, shown, len(cur.Files), a.choices, a.aopts.Binfmt)
	default:
		err = writeAuditTable(ios.Out, shown)
	}
	if err != nil {
		return err
	}
	if !opts.Quiet && !opts.JSON && !opts.SARIF {
		files := "files"
		if len(cur.Files) == 1 {
			files = "file"
		}
		for _, c := range a.choices {
			fmt.Fprintf(ios.ErrOut, "nscap: audit: %s: %s\n", c.Path, c.MapChoice)
		}
		fmt.Fprintf(ios.ErrOut, "nscap: audit: %s in %d %s with capabilities\n", countText(shown), len(cur.Files), files)
	}
	switch {
	case fail:
		return &exitError{code: ExitFindings}
	case a.failed:
		return errSilent
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// auditArchive audits the archive at path.
func auditArchive(ctx context.Context, path string, opts fcaps.AuditOptions, fn func(fcaps.Finding) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return fcaps.AuditArchive(ctx, f, path, opts, fn)
}
