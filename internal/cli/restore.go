package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nscap/nscap/backup"
	"github.com/nscap/nscap/fcaps"
)

type restoreOptions struct {
	IO        *IOStreams
	Archive   string // path, or "-" for stdin
	Dest      string
	Paths     []string // members to restore (nil: all)
	DryRun    bool
	Maps      targetMapFlags
	Helper    fcaps.HelperMode
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

const restoreLong = `Extract ARCHIVE (an nscap, GNU tar or bsdtar archive; plain, gzip,
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

` + exitStatusCommon

func newRestoreCmd(f *Factory, runF func(*restoreOptions) error) *cobra.Command {
	opts := &restoreOptions{IO: f.IO}
	var overwrite string
	cmd := &cobra.Command{
		Use:   "restore [--uidmap MAP [--gidmap MAP] | --pid PID | --oci-config FILE] [--source-uidmap MAP] [--foreign-caps fail|skip|host] [--helper auto|always|never] [--overwrite always|if-changed|never] [--dry-run] ARCHIVE|- DEST [PATH...]",
		Short: "Extract an archive safely under DEST, translating owners, ACLs and caps",
		Long:  restoreLong,
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
	addHelperFlag(fl, &opts.Helper, "use a helper user namespace")
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
	in, err := openArchive(opts.IO, opts.Archive, &opts.Maps)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }() // read only
	progress, r := newArchiveProgress(opts.IO, "restore", in.R, opts.Quiet || opts.NoProgress || opts.JSON)
	helper := useHelper(opts.Helper, in.UID)
	rep := &itemReporter{io: opts.IO, verb: "restore", json: opts.JSON, quiet: opts.Quiet, progress: progress}
	ro := backup.RestoreOptions{
		UIDMap: in.UID, GIDMap: in.GID, SourceUIDMap: in.SrcUID, SourceGIDMap: in.SrcGID,
		HostScope: opts.Maps.HostScope, ForeignCaps: opts.Maps.ForeignCaps, Paths: opts.Paths, Overwrite: opts.Overwrite, Direct: opts.Direct, Workers: opts.Workers, Sparse: opts.Sparse, XattrsInclude: opts.XattrsInclude,
		Reporter: rep,
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
		printRestoreSummary(opts.IO.ErrOut, sum, opts.XattrsInclude)
	}
	if rep.eperm > 0 {
		hint := epermHint(helper, rep.eperm)
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

// printRestoreSummary prints the summary of a restore and the xattrs of
// the archive it left out.
func printRestoreSummary(w io.Writer, sum backup.RestoreSummary, xattrsInclude []string) {
	fmt.Fprintf(w, "restored %d files, %d directories, %d links, %d others (%d caps, %s); %d kept, %d failed\n",
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
		if len(xattrsInclude) > 0 {
			why = "not matched by --xattrs-include; ACLs and caps are always restored"
		}
		fmt.Fprintf(w, "xattrs of the archive not restored (%s): %s\n", why, b.String())
	}
}

// runRestoreDryRun goes through the archive as the restore would, with
// the same maps, policies and PATHs, and writes nothing (DEST is not even
// created): the members that would be restored on stdout (their names, or
// JSON "member" records), the errors the restore would meet (translation,
// policy: not those of the filesystem) and a summary on stderr.
func runRestoreDryRun(ctx context.Context, opts *restoreOptions) error {
	in, err := openArchive(opts.IO, opts.Archive, &opts.Maps)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }() // read only
	var sum backup.RestoreSummary
	lo := in.listOptions()
	lo.Paths = opts.Paths
	err = backup.List(ctx, in.R, lo, func(e backup.ListEntry) error {
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
