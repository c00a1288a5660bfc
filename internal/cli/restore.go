package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nscap/nscap/backup"
	"github.com/nscap/nscap/internal/sys"
	"github.com/nscap/nscap/internal/ui"
	"github.com/nscap/nscap/userns"
)

// targetMapFlags are the map flags restore and verify share: the target
// maps, the source maps of an archive of raw host ids, and --host-scope.
type targetMapFlags struct {
	Target       mapFlags
	SourceUIDMap string // --source-uidmap
	SourceGIDMap string // --source-gidmap
	HostScope    bool   // --host-scope
	ForeignCaps  backup.ForeignCaps

	foreign string // --foreign-caps

	srcUIDMaps, srcGIDMaps []string
	srcUID, srcGID         userns.Map // parsed by validateMaps
}

func (m *targetMapFlags) register(fl *pflag.FlagSet) {
	m.Target.register(fl,
		"uid map of the target container (`MAP`: INSIDE:OUTSIDE:COUNT,...)",
		"gid map of the target container (`MAP`; default: the uid map)",
		"the target container is the user namespace of process `PID` (its maps)",
		"read the target maps from the OCI runtime config `FILE`")
	fl.StringArrayVar(&m.srcUIDMaps, "source-uidmap", nil, "uid map of the container an archive of raw host ids was made from (`MAP`)")
	fl.StringArrayVar(&m.srcGIDMaps, "source-gidmap", nil, "gid map of that container (`MAP`; default: the source uid map)")
	fl.StringVar(&m.foreign, "foreign-caps", "fail", "caps the target cannot hold (host-scoped in the archive, or a rootid outside the target map): fail, skip or host")
	fl.BoolVar(&m.HostScope, "host-scope", false, "allow host-scoped caps: a namespace-relative archive without target maps (its caps become host-scoped), and caps the archive kept host-scoped, written verbatim")
}

// validate checks the map flags and --helper (usage errors only).
func (m *targetMapFlags) validate(fl *pflag.FlagSet, helper string) error {
	if err := m.validateMaps(fl); err != nil {
		return err
	}
	p, err := backup.ParseForeignCaps(m.foreign)
	if err != nil {
		return flagErrorf("--foreign-caps: %w", err)
	}
	m.ForeignCaps = p
	switch helper {
	case "auto", "never", "always":
	default:
		return flagErrorf("--helper %q: want auto, always or never", helper)
	}
	return m.validateHelper(fl, helper)
}

// validateMaps checks the map flags.
func (m *targetMapFlags) validateMaps(fl *pflag.FlagSet) error {
	if err := m.Target.validate(fl); err != nil {
		return err
	}
	if fl.Changed("source-gidmap") && !fl.Changed("source-uidmap") {
		return flagErrorf("--source-gidmap needs --source-uidmap")
	}
	m.SourceUIDMap, m.SourceGIDMap = strings.Join(m.srcUIDMaps, ","), strings.Join(m.srcGIDMaps, ",")
	var err error
	if m.srcUID, err = parseMapFlag("--source-uidmap", m.SourceUIDMap); err != nil {
		return err
	}
	m.srcGID, err = parseMapFlag("--source-gidmap", m.SourceGIDMap)
	return err
}

// validateHelper checks --helper against the map flags: a helper needs
// target maps.
func (m *targetMapFlags) validateHelper(_ *pflag.FlagSet, helper string) error {
	if helper == "always" && !m.Target.given() {
		return flagErrorf("--helper always needs target maps (--uidmap, --pid or --oci-config)")
	}
	return nil
}

// useHelper says whether a restore or verify with these target maps goes
// through a helper user namespace: always, or with auto when there are
// target maps and the caller lacks privilege over owners and caps.
func useHelper(mode string, uidMap userns.Map) bool {
	switch mode {
	case "always":
		return true
	case "auto":
		return !uidMap.IsZero() && !privileged()
	}
	return false
}

// privileged reports whether the caller may set any owner and write any
// capability: CAP_CHOWN and CAP_SETFCAP in its effective set (which root
// has unless it dropped them).
func privileged() bool {
	eff, ok := sys.EffectiveCaps()
	if !ok {
		return os.Geteuid() == 0
	}
	const want = sys.CapChown | sys.CapSetfcap
	return eff&want == want
}

// archiveReader returns the archive argument as the reader to pass to the
// engine: stdin as it is for "-" (a helper then inherits its descriptor),
// else the opened file.
func archiveReader(ios *IOStreams, name string) (io.Reader, func() error, error) {
	if name == "-" {
		return ios.In, func() error { return nil }, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}

// resolve returns the target and source maps.
func (m *targetMapFlags) resolve() (uid, gid, srcUID, srcGID userns.Map, err error) {
	uid, gid, err = m.Target.resolve()
	return uid, gid, m.srcUID, m.srcGID, err
}

type restoreOptions struct {
	IO        *IOStreams
	Archive   string // path, or "-" for stdin
	Dest      string
	Paths     []string // members to restore (nil: all)
	DryRun    bool
	Maps      targetMapFlags
	Helper    string // auto, always, never
	Overwrite backup.OverwritePolicy
	Direct    bool
	Workers   int
	Sparse    bool
	// XattrsInclude: --xattrs-include patterns (nil: user.*).
	XattrsInclude []string
	JSON          bool
	Quiet         bool
	NoProgress    bool // --no-progress
}

func newRestoreCmd(f *Factory, runF func(*restoreOptions) error) *cobra.Command {
	opts := &restoreOptions{IO: f.IO}
	var overwrite string
	cmd := &cobra.Command{
		Use:   "restore [--uidmap MAP [--gidmap MAP] | --pid PID | --oci-config FILE] [--source-uidmap MAP] [--foreign-caps fail|skip|host] [--helper auto|always|never] [--overwrite always|if-changed|never] [--dry-run] ARCHIVE|- DEST [PATH...]",
		Short: "Extract an archive safely under DEST, translating owners, ACLs and caps",
		Long: `Extract ARCHIVE (an nscap, GNU tar or bsdtar archive; plain, gzip,
zstd or xz, detected from the bytes; - for stdin) under the directory DEST. A
missing DEST is created (its parent must exist) and gets the owner, mode and
times of the archive's root entry, as restic and umoci do.

Nothing is ever written outside DEST: every path is resolved beneath DEST
without following symlinks, a leading "/" is stripped and a ".." component
is refused as GNU tar does, and hardlink targets must lie inside DEST.

Owners, POSIX ACL ids and security.capability are translated from the
archive's container view to the target container given by --uidmap/--gidmap,
--pid or --oci-config: a revision-2 cap (the container root) gets the rootid
of the target root, a revision-3 cap with rootid R the target's host id of
R. An archive of raw host ids (tar run on the host) is first brought into
its source container with --source-uidmap; without it, the first member
whose owner the target maps do not cover stops the restore (and verify)
with one message that shows the fix (when it is the archive's first member,
before DEST is created). An archive that records source
maps is refused without a target map unless --host-scope is given.

Into an empty DEST the tree is built in a hidden staging directory inside
DEST and its top-level entries are renamed into place at the end; into a
DEST that holds files, each file is written on an unnamed inode and linked
in. Either way a restore that is killed never leaves a partial file under a
final name, and running it again cleans up and completes it. --direct gives
that up (files are created under their final names in an empty DEST) and
saves only the final renames; it is refused (exit 2, nothing written) when
DEST holds files, unless it completes a --direct restore that was killed.
What a restore needs to clean up after itself
is kept outside DEST, where a container writing in DEST cannot forge it:
in /var/lib/nscap/restore for root, otherwise in
$XDG_STATE_HOME/nscap/restore or ~/.local/state/nscap/restore. A restore
removes only the staging directory and temporary names recorded there, never
a name planted in DEST; two restores into one DEST at a time are refused.

Each file gets its data, owner, mode, xattrs, caps (last: the kernel drops
caps on chown and writes) and times before it appears under its final
name; directories get their mode and times after their contents. A restore
over a partial one completes it (--overwrite always, the default).

Extended attributes: user.* xattrs, POSIX ACLs and security.capability are
restored (ACL ids and caps translated). Others in the archive (trusted.*,
such as overlayfs's redirect, which would steer lookups of a layer made from
DEST; security.* labels) are left out, as GNU tar leaves them out, and
listed after the summary; --xattrs-include PATTERN (repeatable, a shell glob
on the name, e.g. 'trusted.*' or '*') restores those that match instead of
user.*.

Members stored sparse (GNU tar -S, nscap backup of a sparse file) get their
holes back. --sparse makes a hole of every aligned 4 KiB block of zeros of
every file, as GNU tar -S and restic restore --sparse do.

HELPER USER NAMESPACE
Setting owners and capabilities needs CAP_CHOWN and CAP_SETFCAP. An
unprivileged user who owns the target ids as subordinate ranges
(/etc/subuid, /etc/subgid) restores through a helper user namespace: nscap
re-executes itself in a new user namespace that maps its own id and the host
ids of the target maps (written by newuidmap and newgidmap, which check the
ranges), and restores there, where the kernel translates owners, ACL ids and
capability rootids to the target's host ids. The tree is the same as root's
restore with the same maps, except what no user namespace may create (device
nodes, trusted.* xattrs, host-scoped caps), which fails per entry. A target
map outside the caller's ranges is refused before anything is written. DEST
must be owned by the caller or an id of the target maps, or be writable by
others. --helper auto (the default) uses the helper when target maps are
given and the caller lacks CAP_CHOWN or CAP_SETFCAP; always uses it (it needs
target maps); never restores directly.

SELECTED MEMBERS
PATH... limits the restore to those members, as tar -x NAME... does: a
member named PATH ("etc/passwd", "./etc/passwd" and "/etc/passwd" are the
same), everything below a PATH that is a directory, and the directories
above them (with their own owner, mode and times, not their other
contents). A PATH that no member matches is named after the others are
restored, and the exit status is 1.

--dry-run (-n) writes nothing, not even DEST: it reads the archive as the
restore would, with the same maps, policies and PATHs, lists the members
that would be restored on stdout, names the errors the restore would meet
(an owner outside the maps, a cap the policy refuses; not those of the
filesystem) and ends with a summary.

CAPS THE TARGET CANNOT HOLD
A cap the backup kept host-scoped (backup --foreign-caps host), or one whose
rootid the target maps do not cover, is handled by --foreign-caps, as backup
handles caps outside its map: fail (the default: the file is restored
without a host-scoped cap, an entry with a foreign cap is not restored, and
either is an error naming the file), skip (the file is restored without the
cap, with a warning) or host (the cap is written as the archive holds it,
host-scoped: honoured outside the container; with a warning). --host-scope
also writes the host-scoped caps verbatim. verify takes the same flag: under
fail it reports a cap of the archive that the tree lacks.

With --json, warnings, errors and the summary are JSON Lines on stdout with
a "type" of "warning", "error" or "summary" (see docs/json.md).

` + exitStatusCommon,
		Example: `  nscap restore --uidmap 0:200000:65536 ct.tar.zst /var/lib/ct2/rootfs
  nscap restore --uidmap 0:200000:65536 ct.tar.zst rootfs etc/passwd usr/bin
  nscap restore --dry-run --uidmap 0:200000:65536 ct.tar.zst rootfs
  nscap restore --pid 4242 - rootfs < ct.tar
  nscap restore --uidmap 0:200000:65536 --source-uidmap 0:100000:65536 gnu.tar rootfs`,
		Args: minArgs(2, "ARCHIVE and DEST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Archive, opts.Dest, opts.Paths = args[0], args[1], args[2:]
			if len(opts.Paths) == 0 {
				opts.Paths = nil
			}
			for _, p := range opts.Paths {
				if slices.Contains(strings.Split(p, "/"), "..") || p == "" {
					return flagErrorf("PATH %q: want a member name without \"..\"", p)
				}
			}
			opts.JSON, opts.Quiet = f.Global.JSON, f.Global.Quiet
			opts.NoProgress = f.Global.NoProgress
			if err := opts.Maps.validate(cmd.Flags(), opts.Helper); err != nil {
				return err
			}
			if opts.Workers < 0 {
				return flagErrorf("--workers %d: want 0 (automatic) or a positive number", opts.Workers)
			}
			switch p := backup.OverwritePolicy(overwrite); p {
			case backup.OverwriteAlways, backup.OverwriteIfChanged, backup.OverwriteNever:
				opts.Overwrite = p
			default:
				return flagErrorf("--overwrite %q: want always, if-changed or never", overwrite)
			}
			if runF != nil {
				return runF(opts)
			}
			return runRestore(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	opts.Maps.register(fl)
	fl.StringVar(&opts.Helper, "helper", "auto", "use a helper user namespace: auto, always or never")
	fl.StringVar(&overwrite, "overwrite", "always", "existing entries: always replace, if-changed (size or mtime differ), never")
	fl.StringArrayVar(&opts.XattrsInclude, "xattrs-include", nil, "restore the xattrs matching `PATTERN` (repeatable; default user.*; ACLs and caps always)")
	fl.BoolVar(&opts.Sparse, "sparse", false, "write every aligned 4 KiB run of zeros as a hole (members stored sparse always get their holes)")
	fl.BoolVar(&opts.Direct, "direct", false, "into an empty DEST, create files under their final names (saves only the final renames; a killed restore leaves partial files there until re-run)")
	fl.IntVar(&opts.Workers, "workers", 0, "goroutines writing files (0: automatic)")
	fl.BoolVarP(&opts.DryRun, "dry-run", "n", false, "write nothing: list the members that would be restored and the errors the restore would meet")
	return cmd
}

// restoreMember is a --json "member" record of restore --dry-run: one
// member that would be restored.
type restoreMember struct {
	Type string `json:"type"` // "member"
	Name string `json:"name"`
}

func runRestore(ctx context.Context, opts *restoreOptions) error {
	if opts.DryRun {
		return runRestoreDryRun(ctx, opts)
	}
	uid, gid, suid, sgid, err := opts.Maps.resolve()
	if err != nil {
		return err
	}
	r, closeArchive, err := archiveReader(opts.IO, opts.Archive)
	if err != nil {
		return err
	}
	defer func() { _ = closeArchive() }() // read only
	progress, r := newArchiveProgress(opts.IO, "restore", r, opts.Quiet || opts.NoProgress || opts.JSON)
	helper := useHelper(opts.Helper, uid)
	var mu sync.Mutex
	eperm := 0
	ro := backup.RestoreOptions{
		UIDMap: uid, GIDMap: gid, SourceUIDMap: suid, SourceGIDMap: sgid,
		HostScope: opts.Maps.HostScope, ForeignCaps: opts.Maps.ForeignCaps, Paths: opts.Paths, Overwrite: opts.Overwrite, Direct: opts.Direct, Workers: opts.Workers, Sparse: opts.Sparse, XattrsInclude: opts.XattrsInclude,
		Error: func(p string, err error) error {
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, syscall.EPERM) {
				eperm++
			}
			if opts.JSON {
				return writeItem(opts.IO.Out, recError, p, reason(err, p))
			}
			progress.Clear()
			printPathError(opts.IO.ErrOut, "restore", p, err)
			return nil
		},
		Warn: func(p string, err error) {
			mu.Lock()
			defer mu.Unlock()
			if opts.JSON {
				_ = writeItem(opts.IO.Out, recWarning, p, reason(err, p))
				return
			}
			if !opts.Quiet {
				progress.Clear()
				fmt.Fprintf(opts.IO.ErrOut, "nscap: warning: restore %s: %s\n", p, reason(err, p))
			}
		},
		Reporter: restoreProgress{progress},
	}
	var sum backup.RestoreSummary
	if helper {
		sum, err = backup.RestoreRootless(ctx, r, opts.Dest, ro, backup.RootlessOptions{Stderr: progress.Writer(opts.IO.ErrOut)})
	} else {
		sum, err = backup.Restore(ctx, r, opts.Dest, ro)
	}
	progress.Done()
	if errors.Is(err, backup.ErrDirectNotEmpty) {
		// Flags that do not fit DEST: nothing was written.
		return &FlagError{Err: fmt.Errorf("restore %s: %w", opts.Archive, err)}
	}
	if err != nil {
		return fmt.Errorf("restore %s: %w", opts.Archive, err)
	}
	switch {
	case opts.JSON:
		if err := writeJSON(opts.IO.Out, newRestoreSummary(sum, opts.Archive, opts.Dest, false)); err != nil {
			return err
		}
	case !opts.Quiet:
		fmt.Fprintf(opts.IO.ErrOut, "restored %d files, %d directories, %d links, %d others (%d caps, %s); %d kept, %d failed\n",
			sum.Files, sum.Dirs, sum.Links, sum.Others, sum.Caps, humanBytes(sum.Bytes), sum.Skipped, sum.Failures)
		if len(sum.XattrsSkipped) > 0 {
			names := slices.Sorted(maps.Keys(sum.XattrsSkipped))
			var b strings.Builder
			for i, n := range names {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%s (%d)", n, sum.XattrsSkipped[n])
			}
			why := "only user.*, ACLs and caps by default, as GNU tar; --xattrs-include PATTERN restores others"
			if len(opts.XattrsInclude) > 0 {
				why = "not matched by --xattrs-include; ACLs and caps are always restored"
			}
			fmt.Fprintf(opts.IO.ErrOut, "xattrs of the archive not restored (%s): %s\n", why, b.String())
		}
	}
	if eperm > 0 {
		hint := epermHint(helper, eperm)
		if opts.JSON {
			if err := writeItem(opts.IO.Out, recError, "", hint); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(opts.IO.ErrOut, "nscap: restore %s: %s\n", opts.Archive, hint)
		}
	}
	if sum.Failures > 0 {
		return errSilent
	}
	return nil
}

// restoreProgress counts the entries a restore puts in place on its
// progress line (the bytes are those of the archive, counted as read).
type restoreProgress struct{ p *ui.Progress }

func (r restoreProgress) CompleteItem(string, backup.Action, int64) { r.p.Add(1, 0) }
func (restoreProgress) Finish(backup.RestoreSummary)                {}

// newArchiveProgress returns the progress line of a command reading the
// archive through r (a file, or stdin), and the reader to use instead of r,
// which counts the bytes read. The total is the size of an archive that is
// a regular file (compressed as it is stored): percent and ETA are those
// of the archive read, as pv shows them. off (quiet, --no-progress,
// --json) or stderr not a terminal: nothing is drawn and r is returned.
func newArchiveProgress(ios *IOStreams, label string, r io.Reader, off bool) (*ui.Progress, io.Reader) {
	interval := time.Duration(0)
	if !off {
		interval = ui.Interval(false, false, ios.IsStderrTTY)
	}
	p := ui.NewProgress(ios.ErrOut, label, interval)
	if interval == 0 {
		return p, r
	}
	p.SetWidth(ui.Width(ios.ErrOut))
	p.SetBytesNoun("of archive")
	if f, ok := r.(*os.File); ok {
		// stdin too, when it is a file (nscap restore - DEST <ct.tar).
		fi, err := f.Stat()
		pos, perr := f.Seek(0, io.SeekCurrent)
		if err == nil && perr == nil && fi.Mode().IsRegular() && fi.Size() > pos {
			p.SetTotal(0, fi.Size()-pos, true)
		}
	}
	return p, &countingReader{r: r, p: p}
}

// countingReader adds the bytes read through it to a progress line.
type countingReader struct {
	r io.Reader
	p *ui.Progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.Add(0, int64(n))
	return n, err
}

// runRestoreDryRun goes through the archive as the restore would, with
// the same maps, policies and PATHs, and writes nothing (DEST is not even
// created): the members that would be restored on stdout (their names, or
// JSON "member" records), the errors the restore would meet (translation,
// policy: not those of the filesystem) and a summary on stderr.
func runRestoreDryRun(ctx context.Context, opts *restoreOptions) error {
	uid, gid, suid, sgid, err := opts.Maps.resolve()
	if err != nil {
		return err
	}
	r, closeArchive, err := archiveReader(opts.IO, opts.Archive)
	if err != nil {
		return err
	}
	defer func() { _ = closeArchive() }() // read only
	var sum backup.RestoreSummary
	lo := backup.ListOptions{
		UIDMap: uid, GIDMap: gid, SourceUIDMap: suid, SourceGIDMap: sgid,
		ForeignCaps: opts.Maps.ForeignCaps, HostScope: opts.Maps.HostScope, Paths: opts.Paths,
	}
	err = backup.List(ctx, r, lo, func(e backup.ListEntry) error {
		if e.Error != "" {
			sum.Failures++
			if opts.JSON {
				return writeItem(opts.IO.Out, recError, e.Name, e.Error)
			}
			fmt.Fprintf(opts.IO.ErrOut, "nscap: restore %s: %s\n", e.Name, e.Error)
			return nil
		}
		switch e.Type {
		case "file":
			sum.Files++
			sum.Bytes += e.Size
		case "dir":
			sum.Dirs++
		case "symlink", "hardlink":
			sum.Links++
		default:
			sum.Others++
		}
		if e.Caps != "" {
			sum.Caps++
		}
		if opts.JSON {
			return writeJSON(opts.IO.Out, restoreMember{Type: recMember, Name: e.Name})
		}
		_, err := fmt.Fprintln(opts.IO.Out, e.Name)
		return err
	})
	if err != nil {
		return fmt.Errorf("restore %s: %w", opts.Archive, err)
	}
	switch {
	case opts.JSON:
		if err := writeJSON(opts.IO.Out, newRestoreSummary(sum, opts.Archive, opts.Dest, true)); err != nil {
			return err
		}
	case !opts.Quiet:
		fmt.Fprintf(opts.IO.ErrOut, "dry run, nothing written: would restore %d files, %d directories, %d links, %d others (%d caps, %s) into %s; %d would fail\n",
			sum.Files, sum.Dirs, sum.Links, sum.Others, sum.Caps, humanBytes(sum.Bytes), opts.Dest, sum.Failures)
	}
	if sum.Failures > 0 {
		return errSilent
	}
	return nil
}

// epermHint explains why n entries failed with EPERM.
func epermHint(helper bool, n int) string {
	if helper {
		return fmt.Sprintf("%d entries failed with EPERM (operation not permitted): a user namespace cannot create device nodes, set trusted.* xattrs or write host-scoped capabilities, nor change an inode of DEST owned by an id outside its maps (named above)", n)
	}
	if privileged() {
		return fmt.Sprintf("%d entries failed with EPERM (operation not permitted)", n)
	}
	return fmt.Sprintf("%d entries failed with EPERM (operation not permitted): setting owners and capabilities needs CAP_CHOWN and CAP_SETFCAP; "+
		"a user owning the target ids as subordinate ranges (/etc/subuid, /etc/subgid) restores with --helper auto or always and target maps", n)
}
