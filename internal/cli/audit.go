package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

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
	ios := opts.IO
	if opts.Explain != "" {
		if opts.Explain == "all" {
			for i, r := range fcaps.Rules() {
				if i > 0 {
					fmt.Fprintln(ios.Out)
				}
				fmt.Fprint(ios.Out, explainRule(r))
			}
			return nil
		}
		r, ok := fcaps.LookupRule(opts.Explain)
		if !ok {
			return flagErrorf("--explain: unknown rule %q (nscap audit --explain all lists them)", opts.Explain)
		}
		_, err := fmt.Fprint(ios.Out, explainRule(r))
		return err
	}

	failed := false
	var errRecords []itemRecord // --json "error" records, written before the findings
	report := func(path string, err error) {
		failed = true
		printPathError(ios.ErrOut, "audit", path, err)
		errRecords = append(errRecords, itemRecord{Type: recError, Path: path, PathBase64: pathBase64(path), Message: reason(err, path)})
	}
	aopts := fcaps.AuditOptions{
		UIDMap: opts.UIDMap, GIDMap: opts.GIDMap, XDev: opts.XDev,
		Error: func(path string, err error) error {
			report(path, err)
			return nil
		},
	}
	subs, err := readAllSubIDs(opts.SubUIDFile)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	aopts.SubUIDs = subs
	if opts.Namespaces != nil {
		ns, err := opts.Namespaces()
		if err != nil {
			fmt.Fprintf(ios.ErrOut, "nscap: audit: list user namespaces: %v (orphaned rootids are not reported)\n", err)
		} else {
			aopts.Namespaces = ns
		}
	}

	if opts.Binfmt != nil {
		b, err := opts.Binfmt(opts.PID)
		if err != nil {
			fmt.Fprintf(ios.ErrOut, "nscap: audit: read binfmt_misc: %v (foreign binaries are not checked)\n", err)
		} else {
			aopts.Binfmt = b
		}
	}

	var findings []fcaps.Finding
	var roots []fcaps.BaselineRoot
	var choices []auditMap
	collect := func(f fcaps.Finding) error { findings = append(findings, f); return nil }
	for _, p := range opts.Paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		// A container image: an OCI layout or an image archive.
		img, err := fcaps.OpenImage(p)
		switch {
		case err == nil:
			roots = append(roots, fcaps.BaselineRoot{Path: p, Archive: true})
			choices = append(choices, auditMap{Path: p, MapChoice: fcaps.MapChoice{
				Source: fcaps.MapImage, Reason: fmt.Sprintf("a container image (%s): owners and caps in its layers are the container's", img.Kind),
			}})
			err = fcaps.AuditImage(ctx, img, p, aopts, collect)
			_ = img.Close() // read only
			if err != nil {
				report(p, err)
			}
			continue
		case errors.Is(err, fcaps.ErrBadArchive):
			report(p, err)
			continue
		}
		// An error (a missing path, a symlink refused by O_NOFOLLOW) is
		// left to the tree walk, which reports it.
		archive, _ := fcaps.IsArchive(p)
		roots = append(roots, fcaps.BaselineRoot{Path: p, Archive: archive})
		if archive {
			choice := auditMap{Path: p, MapChoice: fcaps.MapChoice{Source: fcaps.MapNone, Reason: "an archive whose top directory and etc/passwd show no container root"}}
			archOpts := aopts
			if !opts.UIDMap.IsZero() || opts.PID != 0 {
				c, err := auditMapFor(p, opts, nil)
				if err != nil {
					report(p, err)
					continue
				}
				choice.MapChoice, archOpts = c, c.Apply(aopts)
			}
			archOpts.OnMap = func(c fcaps.MapChoice) { choice.MapChoice = c }
			// The findings of a truncated or corrupt archive's members
			// read before the damage are kept.
			err := auditArchive(ctx, p, archOpts, collect)
			choices = append(choices, choice)
			if err != nil {
				report(p, err)
			}
			continue
		}
		choice, err := auditMapFor(p, opts, aopts.Namespaces)
		if err != nil {
			report(p, err)
			continue
		}
		choices = append(choices, auditMap{Path: p, MapChoice: choice})
		if err := fcaps.Audit(ctx, []string{p}, choice.Apply(aopts), collect); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
	}

	cur := fcaps.NewBaseline(roots...)
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
	switch {
	case opts.SARIF:
		err = writeSARIF(ios.Out, opts.Version, shown)
	case opts.JSON:
		err = writeAuditJSON(ios.Out, errRecords, shown, len(cur.Files), choices, aopts.Binfmt)
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
		for _, c := range choices {
			fmt.Fprintf(ios.ErrOut, "nscap: audit: %s: %s\n", c.Path, c.MapChoice)
		}
		fmt.Fprintf(ios.ErrOut, "nscap: audit: %s in %d %s with capabilities\n", countText(shown), len(cur.Files), files)
	}
	switch {
	case fail:
		return &exitError{code: ExitFindings}
	case failed:
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

// auditMap is the uid map a tree was audited with, and why: a record of
// the --json summary.
type auditMap struct {
	Path string `json:"path"`
	fcaps.MapChoice
}

// auditMapFor chooses the container uid map of the tree at p: --uidmap,
// else --oci-config, else what fcaps.InferMap finds.
func auditMapFor(p string, opts *auditOptions, ns []*userns.Node) (fcaps.MapChoice, error) {
	if !opts.UIDMap.IsZero() {
		gid := opts.GIDMap
		if gid.IsZero() {
			gid = opts.UIDMap
		}
		return fcaps.MapChoice{Source: fcaps.MapGiven, UIDMap: opts.UIDMap, GIDMap: gid, Reason: "given with --uidmap"}, nil
	}
	if opts.PID != 0 {
		same, err := sameUserNS(opts.PID)
		if err != nil {
			return fcaps.MapChoice{}, err
		}
		if same {
			return fcaps.MapChoice{Source: fcaps.MapGiven, Reason: fmt.Sprintf("pid %d is in the auditor's own user namespace", opts.PID)}, nil
		}
		uid, gid, err := userns.ReadMaps(opts.PID)
		if err != nil {
			return fcaps.MapChoice{}, pidError(opts.PID, err)
		}
		return fcaps.MapChoice{Source: fcaps.MapGiven, UIDMap: uid, GIDMap: gid, Reason: fmt.Sprintf("the user namespace of pid %d (--pid)", opts.PID)}, nil
	}
	return fcaps.InferMap(p, fcaps.InferOptions{OCIConfig: opts.OCIConfig, Namespaces: ns})
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

// sortFindings orders findings by path, the most severe first, then by
// rule: the stable order of every output format.
func sortFindings(fs []fcaps.Finding) {
	slices.SortStableFunc(fs, func(a, b fcaps.Finding) int {
		return cmp.Or(
			strings.Compare(a.Path, b.Path),
			cmp.Compare(b.Severity(), a.Severity()),
			strings.Compare(a.Rule.ID, b.Rule.ID))
	})
}

// countText summarises findings by severity: "3 findings (1 critical, 2 info)".
func countText(fs []fcaps.Finding) string {
	counts := map[fcaps.Severity]int{}
	for _, f := range fs {
		counts[f.Severity()]++
	}
	var parts []string
	for s := fcaps.SeverityCritical; ; s-- {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
		if s == fcaps.SeverityInfo {
			break
		}
	}
	noun := "findings"
	if len(fs) == 1 {
		noun = "finding"
	}
	if len(parts) == 0 {
		return "0 findings"
	}
	return fmt.Sprintf("%d %s (%s)", len(fs), noun, strings.Join(parts, ", "))
}

// readAllSubIDs reads every range of a subuid file, whoever owns it; a
// missing file (or an empty name) gives none.
func readAllSubIDs(path string) ([]userns.SubIDRange, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// Validate every line with the library's rules (no owner matches
	// this name), then take every line's range.
	if _, err := userns.ParseSubID(bytes.NewReader(b), "\x00", userns.InvalidID); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	owners := map[string]bool{}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		owner, _, _ := strings.Cut(line, ":")
		owners[owner] = true
	}
	var out []userns.SubIDRange
	for _, o := range slices.Sorted(func(yield func(string) bool) {
		for k := range owners {
			if !yield(k) {
				return
			}
		}
	}) {
		r, err := userns.ParseSubID(bytes.NewReader(b), o, userns.InvalidID)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, r...)
	}
	return out, nil
}

func readBaselineFile(path string) (*fcaps.Baseline, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := fcaps.ReadBaseline(f)
	if err != nil {
		return nil, fmt.Errorf("read baseline %s: %w", path, err)
	}
	return b, nil
}

// writeFileAtomic writes path through a temporary file in its directory,
// renamed over it once complete.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // after a failure; ENOENT after the rename
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// auditRecord is the --json form of one finding: a documented interface
// (fields may be added, never renamed).
type auditRecord struct {
	Type       string   `json:"type"` // "finding"
	Rule       string   `json:"rule"`
	RuleName   string   `json:"rule_name"`
	Severity   string   `json:"severity"`
	Path       string   `json:"path"`
	Message    string   `json:"message"`
	HonouredIn []string `json:"honoured_in"` // the spelling of the table's HONOURED-IN
	Caps       string   `json:"caps,omitempty"`
	Revision   int      `json:"revision,omitempty"`
	RootID     *uint32  `json:"rootid,omitempty"`
	// The owner uid as audited (host ids for a tree) and, when the file
	// lies in a container whose map is known, the owner and the rootid
	// as the container sees them.
	OwnerUID          uint32  `json:"owner_uid"`
	OwnerContainerUID *uint32 `json:"owner_container_uid,omitempty"`
	RootIDContainer   *uint32 `json:"rootid_container,omitempty"`
	// MapGuessed: the verdict depends on a guessed uid map; the severity
	// is capped at low.
	MapGuessed bool `json:"map_guessed,omitempty"`
	// Layer is the digest of the image layer that wrote the file.
	Layer string `json:"layer,omitempty"`
	// Binfmt says how binfmt_misc runs a foreign binary.
	Binfmt *fcaps.BinfmtMatch `json:"binfmt,omitempty"`
}

// auditSummary is the last --json record.
type auditSummary struct {
	summaryHead
	Findings   int            `json:"findings"`
	BySeverity map[string]int `json:"by_severity"`
	Files      int            `json:"files_with_caps"`
	Errors     int            `json:"errors"` // "error" records (paths that could not be audited)
	// Maps are the uid maps the trees were audited with, and why.
	Maps []auditMap `json:"maps"`
	// Binfmt is the binfmt_misc instance foreign binaries were checked
	// against.
	Binfmt *auditBinfmt `json:"binfmt,omitempty"`
}

// auditBinfmt is the binfmt_misc instance of the --json summary.
type auditBinfmt struct {
	Dir      string              `json:"dir"`
	Instance string              `json:"instance"`
	Mounted  bool                `json:"mounted"`
	Enabled  bool                `json:"enabled"`
	Host     string              `json:"host_machine"`
	Entries  []fcaps.BinfmtEntry `json:"entries"`
}

func newAuditRecord(f fcaps.Finding) auditRecord {
	r := auditRecord{
		Type: recFinding, Rule: f.Rule.ID, RuleName: f.Rule.Name, Severity: f.Severity().String(),
		Path: f.Path, Message: f.Message, HonouredIn: f.Scope.Strings(),
		OwnerUID: f.Owner, OwnerContainerUID: f.OwnerInContainer, RootIDContainer: f.RootIDInContainer, MapGuessed: f.MapGuessed,
		Layer: f.Layer, Binfmt: f.Binfmt,
	}
	if f.Caps != nil {
		r.Caps, r.Revision = f.Caps.String(), int(f.Caps.Revision)
		if f.Caps.HasRootID() {
			id := f.Caps.RootID
			r.RootID = &id
		}
	}
	return r
}

func writeAuditJSON(w io.Writer, errs []itemRecord, fs []fcaps.Finding, files int, maps []auditMap, b *fcaps.Binfmt) error {
	if maps == nil {
		maps = []auditMap{}
	}
	for _, e := range errs {
		if err := writeJSON(w, e); err != nil {
			return err
		}
	}
	sum := auditSummary{summaryHead: newSummaryHead("audit"), Findings: len(fs), BySeverity: map[string]int{}, Files: files, Maps: maps, Errors: len(errs)}
	if b != nil {
		sum.Binfmt = &auditBinfmt{Dir: b.Dir, Instance: b.Instance, Mounted: b.Mounted, Enabled: b.Enabled, Host: b.Host.String(), Entries: b.Entries}
		if sum.Binfmt.Entries == nil {
			sum.Binfmt.Entries = []fcaps.BinfmtEntry{}
		}
	}
	for _, f := range fs {
		sum.BySeverity[f.Severity().String()]++
		if err := writeJSON(w, newAuditRecord(f)); err != nil {
			return err
		}
	}
	return writeJSON(w, sum)
}

func writeAuditTable(w io.Writer, fs []fcaps.Finding) error {
	if len(fs) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SEVERITY\tRULE\tPATH\tCAPS\tHONOURED-IN\tMESSAGE")
	for _, f := range fs {
		caps := f.CapsText()
		if caps == "" {
			caps = "-"
		}
		in := strings.Join(f.Scope.Strings(), ",")
		if in == "" {
			in = "-"
		}
		msg := f.Message
		if f.Layer != "" && !strings.Contains(msg, f.Layer) {
			msg += " (layer " + shortDigest(f.Layer) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Severity(), f.Rule.ID, f.Path, caps, in, msg)
	}
	return tw.Flush()
}

// shortDigest shortens "sha256:HEX" to 12 hex digits, as docker prints
// image ids; other names are left as they are.
func shortDigest(d string) string {
	alg, hexs, ok := strings.Cut(d, ":")
	if !ok || len(hexs) <= 12 {
		return d
	}
	return alg + ":" + hexs[:12]
}

// SARIF 2.1.0 (https://docs.oasis-open.org/sarif/sarif/v2.1.0/), the
// subset code-scanning tools read.
type (
	sarifLog struct {
		Schema  string     `json:"$schema"`
		Version string     `json:"version"`
		Runs    []sarifRun `json:"runs"`
	}
	sarifRun struct {
		Tool    sarifTool     `json:"tool"`
		Results []sarifResult `json:"results"`
	}
	sarifTool struct {
		Driver sarifDriver `json:"driver"`
	}
	sarifDriver struct {
		Name           string      `json:"name"`
		Version        string      `json:"version,omitempty"`
		InformationURI string      `json:"informationUri"`
		Rules          []sarifRule `json:"rules"`
	}
	sarifText struct {
		Text string `json:"text"`
	}
	sarifRule struct {
		ID                   string            `json:"id"`
		Name                 string            `json:"name"`
		ShortDescription     sarifText         `json:"shortDescription"`
		FullDescription      sarifText         `json:"fullDescription"`
		Help                 sarifText         `json:"help"`
		DefaultConfiguration sarifRuleConfig   `json:"defaultConfiguration"`
		Properties           sarifRuleProperty `json:"properties"`
	}
	sarifRuleConfig struct {
		Level string `json:"level"`
	}
	sarifRuleProperty struct {
		SecuritySeverity string   `json:"security-severity"`
		Tags             []string `json:"tags"`
	}
	sarifResult struct {
		RuleID     string          `json:"ruleId"`
		RuleIndex  int             `json:"ruleIndex"`
		Level      string          `json:"level"`
		Message    sarifText       `json:"message"`
		Locations  []sarifLocation `json:"locations"`
		Properties sarifResultProp `json:"properties"`
	}
	sarifLocation struct {
		PhysicalLocation struct {
			ArtifactLocation struct {
				URI string `json:"uri"`
			} `json:"artifactLocation"`
		} `json:"physicalLocation"`
	}
	sarifResultProp struct {
		Severity   string   `json:"severity"`
		HonouredIn []string `json:"honoured_in"`
		Caps       string   `json:"caps,omitempty"`
		Layer      string   `json:"layer,omitempty"`
	}
)

// sarifLevel maps a severity to a SARIF level.
func sarifLevel(s fcaps.Severity) string {
	switch {
	case s >= fcaps.SeverityHigh:
		return "error"
	case s == fcaps.SeverityMedium:
		return "warning"
	}
	return "note"
}

// sarifScore is the security-severity score GitHub code scanning ranks
// by (critical >= 9.0, high >= 7.0, medium >= 4.0, low > 0).
var sarifScore = map[fcaps.Severity]string{
	fcaps.SeverityInfo: "0.0", fcaps.SeverityLow: "3.0", fcaps.SeverityMedium: "5.5",
	fcaps.SeverityHigh: "8.0", fcaps.SeverityCritical: "9.5",
}

func writeSARIF(w io.Writer, version string, fs []fcaps.Finding) error {
	rules := fcaps.Rules()
	index := map[string]int{}
	driver := sarifDriver{Name: "nscap", Version: version, InformationURI: "https://github.com/nscap/nscap"}
	for i, r := range rules {
		index[r.ID] = i
		driver.Rules = append(driver.Rules, sarifRule{
			ID: r.ID, Name: r.Name,
			ShortDescription:     sarifText{r.Summary},
			FullDescription:      sarifText{r.Summary},
			Help:                 sarifText{r.Explanation},
			DefaultConfiguration: sarifRuleConfig{Level: sarifLevel(r.Severity)},
			Properties:           sarifRuleProperty{SecuritySeverity: sarifScore[r.Severity], Tags: []string{"security", "capabilities"}},
		})
	}
	run := sarifRun{Tool: sarifTool{Driver: driver}, Results: []sarifResult{}}
	for _, f := range fs {
		res := sarifResult{
			RuleID: f.Rule.ID, RuleIndex: index[f.Rule.ID], Level: sarifLevel(f.Severity()),
			Message:    sarifText{f.Message},
			Properties: sarifResultProp{Severity: f.Severity().String(), HonouredIn: f.Scope.Strings(), Caps: f.CapsText(), Layer: f.Layer},
		}
		var loc sarifLocation
		loc.PhysicalLocation.ArtifactLocation.URI = (&url.URL{Path: f.Path}).String()
		res.Locations = []sarifLocation{loc}
		run.Results = append(run.Results, res)
	}
	log := sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}
