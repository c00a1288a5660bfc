package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nscap/nscap/backup"
	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/ui"
)

type backupOptions struct {
	IO *IOStreams

	Root   string
	Output string // -o: a file name, or "-" for stdout

	Maps mapFlags // --uidmap, --gidmap, --pid, --oci-config

	ForeignCaps backup.ForeignCaps
	Compression backup.Compression
	Workers     int
	// Exclude are the --exclude patterns; OneFileSystem is
	// --one-file-system (--xdev).
	Exclude       []string
	OneFileSystem bool
	Verify        bool
	DryRun        bool             // --dry-run: read everything, write no archive
	Helper        fcaps.HelperMode // --helper
	CompressLevel int              // --compress-level; 0: the default

	JSON, Quiet, NoProgress bool
	Version                 string
}

const backupLong = `Write a POSIX pax tar archive of ROOTFS, streamed, to FILE (or stdout with
-o -). Every file type is archived (regular files, directories, symlinks,
hard links as tar links, fifos, devices); sockets are skipped with a warning.
Symlinks are never followed. Every extended attribute is stored as a
SCHILY.xattr.NAME record (what GNU tar --xattrs and bsdtar read), and mtimes
keep their nanoseconds.

With the container's id maps (--uidmap/--gidmap in podman's notation
INSIDE:OUTSIDE:COUNT[,...], the flags may repeat and --gidmap defaults to the
uid map; --pid PID reads /proc/PID/uid_map and gid_map; --oci-config FILE
reads linux.uidMappings/gidMappings) the archive is namespace-relative:
exactly what tar --xattrs run inside the container would store. Owners and
POSIX ACL ids are the container's; caps whose rootid is the container root are
stored as revision 2, caps of a nested namespace as revision 3 with the rootid
the container sees. An owner or ACL id outside the maps is an error.
A capability whose rootid is outside the map (host-scoped caps, or those of
another container) is handled by --foreign-caps: fail (the default: an error
naming the file), skip (dropped, with a warning) or host (kept host-scoped
and marked so in the archive, with a warning).

Without maps the archive is an identity backup: raw ids and caps, like
tar --xattrs run as root.

--exclude PATTERN (repeatable) leaves out the entries it matches, as GNU
tar's --exclude does by default: PATTERN is a shell glob ("*", "?",
"[...]", "\" quotes) in which "*" matches "/" too, matched against the
entry's archive name (./etc/shadow) and against every part of it that
follows a "/": "shadow", "etc/shadow", "./etc/shadow" and "*.log" match at
any depth, "etc/*" what is below an etc directory. An excluded directory is
left out with everything below it. A pattern ending in "/" matches nothing.
HELPER USER NAMESPACE
An unprivileged user backing up the rootfs of its rootless container (owned
by ids of its subordinate ranges, /etc/subuid and /etc/subgid) cannot read
the container's root-only files (etc/shadow, a 0700 home) itself. With
--helper auto (the default), when maps are given and the caller lacks
CAP_CHOWN or CAP_SETFCAP, nscap reads the tree from a helper user namespace
that maps its own id and the host ids of the maps (newuidmap and newgidmap
check the ranges), as restore writes one: the archive is the same as root's
with the same maps. A map outside the caller's ranges is refused before
anything is read. always uses the helper (it needs maps); never reads the
tree directly.

--dry-run (-n) reads the tree as the backup would (every file, its xattrs
and caps, under the maps and policies given) and reports its errors and
summary, but writes no archive; -o is then optional.
--one-file-system (or --xdev) stays on ROOTFS's filesystem, as GNU tar
--one-file-system: a mount point below it is archived (with a warning) but
not what is mounted on it.

-o FILE is written atomically: a temporary file in the same directory, synced
and renamed when the backup succeeded. A failed backup leaves no FILE. The
archive is created with mode 0600 (it holds every file of the rootfs).
--compress (none, gzip, zstd or xz) defaults to the suffix of FILE
(.gz/.tgz gzip, .zst/.tzst zstd, .xz/.txz xz, .tar or no suffix none); any
other suffix is refused unless --compress is given, so that a.tar.bz2 never
silently holds an uncompressed tar. --compress-level N sets the level as
gzip(1), zstd(1) and xz(1) number theirs. restore, verify, list and audit
detect the compression from the bytes.

--verify reads FILE back once written and compares every entry with ROOTFS
(content by sha256, type, owner, mode, link targets, xattrs, caps), as GNU
tar --verify does; a difference (a file changed during the backup, or an
unfaithful archive) is an error naming the path, and FILE is not kept. It
costs a second read of the archive and of every file of ROOTFS: about as
long again as the backup when the tree is in the page cache, more when it
must come from disk. It needs -o FILE.

Sparse files (fewer blocks allocated than their size) are stored with their
holes as GNU pax sparse members (format 1.0), which GNU tar, bsdtar and
nscap restore read: a 100 MiB file with 8 KiB of data takes 8.5 KiB.

A progress counter is drawn on stderr when it is a terminal; a summary (files,
bytes, caps, time, MB/s) ends the run unless -q. With --json, warnings, errors
and the summary are JSON Lines on stdout ("type" "warning", "error",
"summary"; see docs/json.md); --json needs -o FILE.

EXIT STATUS
  0  success
  1  the backup failed: a file could not be archived faithfully, or --verify
     found a difference (no FILE is written; the archive on stdout is
     incomplete)
  2  usage error: bad flags or arguments, nothing was done`

func newBackupCmd(f *Factory, runF func(*backupOptions) error) *cobra.Command {
	opts := &backupOptions{IO: f.IO}
	var foreign, compress string
	cmd := &cobra.Command{
		Use:   "backup [--uidmap MAP [--gidmap MAP] | --pid PID | --oci-config FILE] [--foreign-caps fail|skip|host] [--compress none|gzip|zstd|xz] [--compress-level N] [--exclude PATTERN]... [--one-file-system] [--dry-run] -o FILE|- ROOTFS",
		Short: "Archive a container rootfs namespace-relative",
		Long:  backupLong,
		Example: `  nscap backup --uidmap 0:100000:65536 -o ct.tar.zst /var/lib/ct/rootfs
  nscap backup --pid 4242 -o - /var/lib/ct/rootfs | ssh host nscap restore ...
  nscap backup --oci-config config.json --foreign-caps skip -o ct.tar rootfs`,
		Args: rangeArgs(1, 1, "ROOTFS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Root = args[0]
			opts.JSON, opts.Quiet, opts.NoProgress = f.Global.JSON, f.Global.Quiet, f.Global.NoProgress
			opts.Version = f.Version
			if err := opts.validate(cmd.Flags(), foreign, compress, f.IO.IsStdoutTTY); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runBackup(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	opts.Maps.register(fl,
		"uid map of the container owning ROOTFS (`MAP`: INSIDE:OUTSIDE:COUNT,...)",
		"gid map (`MAP`; default: the uid map)",
		"read the maps of the user namespace of process `PID`",
		"read the maps from the OCI runtime config `FILE`")
	fl.StringVar(&foreign, "foreign-caps", "fail", "caps whose rootid is outside the map: fail, skip or host")
	fl.StringVar(&compress, "compress", "", "compression: none, gzip, zstd or xz (default: by the suffix of FILE: .gz/.tgz, .zst/.tzst, .xz/.txz, .tar none)")
	fl.StringVarP(&opts.Output, "output", "o", "", "write the archive to `FILE` (- for stdout)")
	addHelperFlag(fl, &opts.Helper, "read the tree from a helper user namespace")
	fl.IntVar(&opts.CompressLevel, "compress-level", 0, "compression level `N` (gzip 1-9, zstd 1-19, xz 1-9; default: the tool's own, 6, 3 and 6)")
	fl.BoolVarP(&opts.DryRun, "dry-run", "n", false, "read the tree as the backup would and report its errors and summary; write no archive (-o optional)")
	fl.StringArrayVar(&opts.Exclude, "exclude", nil, "leave out entries matching `PATTERN` (repeatable; GNU tar's --exclude: a shell glob matched against the name and every part after a /)")
	fl.BoolVar(&opts.OneFileSystem, "one-file-system", false, "stay on the root's filesystem: archive mount points, not what is mounted on them (as tar --one-file-system)")
	fl.BoolVar(&opts.OneFileSystem, "xdev", false, "the same as --one-file-system (as get --xdev)")
	fl.IntVar(&opts.Workers, "workers", 0, "goroutines reading files ahead of the writer (0: automatic)")
	fl.BoolVar(&opts.Verify, "verify", false, "read FILE back and compare it with ROOTFS; keep no FILE on a difference")
	return cmd
}

// validate checks the flags (usage errors only) and sets the options
// they give: --foreign-caps, the compression of -o FILE.
func (opts *backupOptions) validate(fl *pflag.FlagSet, foreign, compress string, stdoutTTY bool) error {
	if err := opts.Maps.validate(fl); err != nil {
		return err
	}
	p, err := backup.ParseForeignCaps(foreign)
	if err != nil {
		return flagErrorf("--foreign-caps: %w", err)
	}
	opts.ForeignCaps = p
	if opts.DryRun && opts.Verify {
		return flagErrorf("--verify reads the archive back: --dry-run writes none")
	}
	if opts.DryRun && opts.Output == "" {
		opts.Output = "-" // nothing is written
	}
	if opts.Output == "" {
		return flagErrorf("missing -o FILE (or -o - for stdout)")
	}
	if opts.Helper == fcaps.HelperAlways && !opts.Maps.given() {
		return flagErrorf("--helper always needs the maps of the rootfs (--uidmap, --pid or --oci-config)")
	}
	if opts.Workers < 0 {
		return flagErrorf("--workers %d: want 0 (automatic) or a positive number", opts.Workers)
	}
	opts.Compression = backup.CompressionFor(opts.Output)
	if ext := unknownSuffix(opts.Output); ext != "" && !fl.Changed("compress") {
		return flagErrorf("-o %s: unknown suffix %s (nscap writes none of bzip2, lz4, lzma, lzop, compress); name it .tar, .tar.gz (.tgz), .tar.zst (.tzst) or .tar.xz (.txz), or give --compress to choose", opts.Output, ext)
	}
	if fl.Changed("compress") {
		if opts.Compression, err = backup.ParseCompression(compress); err != nil {
			return flagErrorf("--compress: %w", err)
		}
	}
	if fl.Changed("compress-level") {
		lo, hi, ok := opts.Compression.LevelRange()
		switch {
		case !ok:
			return flagErrorf("--compress-level needs compression: name -o FILE .tar.gz, .tar.zst or .tar.xz, or give --compress")
		case opts.CompressLevel < lo || opts.CompressLevel > hi:
			return flagErrorf("--compress-level %d: %s levels are %d to %d", opts.CompressLevel, opts.Compression, lo, hi)
		}
	}
	if opts.Output == "-" && opts.Verify {
		return flagErrorf("--verify reads the archive back: it needs -o FILE")
	}
	if opts.Output == "-" && opts.JSON && !opts.DryRun {
		return flagErrorf("--json writes on stdout: it needs -o FILE")
	}
	if opts.Output == "-" && stdoutTTY && !opts.DryRun {
		return flagErrorf("refusing to write an archive to a terminal (-o -)")
	}
	return nil
}

// knownSuffixes are the -o suffixes that name an archive nscap writes.
var knownSuffixes = []string{".tar", ".gz", ".tgz", ".zst", ".tzst", ".xz", ".txz"}

// unknownSuffix returns the suffix of name (".bz2", ".bak") when it is not
// one nscap writes, "" when it is or when name has none: an unknown suffix
// would otherwise give an uncompressed tar by surprise.
func unknownSuffix(name string) string {
	base := filepath.Base(name)
	i := strings.LastIndexByte(base, '.')
	if name == "-" || i <= 0 {
		return ""
	}
	if slices.Contains(knownSuffixes, base[i:]) {
		return ""
	}
	return base[i:]
}

func runBackup(ctx context.Context, opts *backupOptions) error {
	uid, gid, err := opts.Maps.resolve()
	if err != nil {
		return err
	}
	interval := time.Duration(0)
	if !opts.NoProgress && !opts.JSON {
		interval = ui.Interval(opts.Quiet, opts.JSON, opts.IO.IsStderrTTY)
	}
	rep := &itemReporter{
		io: opts.IO, verb: "backup", json: opts.JSON, quiet: opts.Quiet, sizes: true,
		progress: ui.NewProgress(opts.IO.ErrOut, "backup", interval),
		show:     func(name string) string { return filepath.Join(opts.Root, name) },
	}
	rep.progress.SetWidth(ui.Width(opts.IO.ErrOut))
	stopScan := startScan(ctx, opts, rep.progress, interval)
	defer stopScan()
	bopts := backup.Options{
		UIDMap:        uid,
		GIDMap:        gid,
		ForeignCaps:   opts.ForeignCaps,
		Compression:   opts.Compression,
		CompressLevel: opts.CompressLevel,
		Tool:          "nscap/" + opts.Version,
		Workers:       opts.Workers,
		Verify:        opts.Verify,
		Exclude:       opts.Exclude,
		OneFileSystem: opts.OneFileSystem,
		Reporter:      rep,
	}
	var sum backup.Summary
	if opts.DryRun {
		bopts.Compression = backup.CompressNone // nothing is kept
	}
	a := backup.New(bopts)
	if useHelper(opts.Helper, uid) {
		a = backup.NewRootless(bopts, backup.RootlessOptions{Stderr: rep.progress.Writer(opts.IO.ErrOut)})
	}
	switch {
	case opts.DryRun:
		sum, err = a.Write(ctx, io.Discard, opts.Root)
	case opts.Output == "-":
		sum, err = a.Write(ctx, opts.IO.Out, opts.Root)
	default:
		sum, err = a.WriteFile(ctx, opts.Output, opts.Root)
	}
	stopScan()
	if err == nil {
		// Done: the counts are the totals (whatever the scan saw).
		entries, size := rep.progress.Counts()
		rep.progress.SetTotal(entries, size, true)
	}
	rep.progress.Done()
	if reportBackupFailure(opts, err, sum, rep.warnings) {
		return errSilent
	}
	if err != nil {
		return fmt.Errorf("backup %s: %w", opts.Root, err)
	}
	if opts.JSON {
		archive := opts.Output
		if opts.DryRun {
			archive = ""
		}
		return writeJSON(opts.IO.Out, newBackupSummary(sum, archive, opts.Root, opts.DryRun, rep.warnings))
	}
	if !opts.Quiet {
		if opts.DryRun {
			fmt.Fprintln(opts.IO.ErrOut, "backup: dry run, no archive written:")
		}
		printBackupSummary(opts.IO.ErrOut, sum)
	}
	return nil
}

// reportBackupFailure reports a backup that failed item by item (each item
// already reported) or whose --verify found differences; it returns false
// for other errors.
func reportBackupFailure(opts *backupOptions, err error, sum backup.Summary, warnings int64) bool {
	var ie *backup.IncompleteError
	if errors.As(err, &ie) {
		// Each item was already reported.
		if opts.JSON {
			// Not written: no archive.
			_ = writeJSON(opts.IO.Out, newBackupSummary(sum, "", opts.Root, opts.DryRun, warnings))
		} else {
			what := "the archive on stdout is incomplete"
			switch {
			case opts.DryRun:
				what = "a backup would fail (dry run: nothing written)"
			case opts.Output != "-":
				what = opts.Output + " was not written"
			}
			fmt.Fprintf(opts.IO.ErrOut, "nscap: backup %s: %d item(s) could not be archived faithfully; %s\n", opts.Root, len(ie.Items), what)
		}
		return true
	}
	var vf *backup.VerifyFailedError
	if errors.As(err, &vf) {
		if opts.JSON {
			for _, d := range vf.Diffs {
				_ = writeItem(opts.IO.Out, recError, d.Path, "verify: "+d.String())
			}
		} else {
			for _, d := range vf.Diffs {
				fmt.Fprintf(opts.IO.ErrOut, "nscap: backup --verify: %s\n", d)
			}
			fmt.Fprintf(opts.IO.ErrOut, "nscap: backup %s: the archive differs from the tree in %d place(s); %s was not written\n", opts.Root, len(vf.Diffs), opts.Output)
		}
		return true
	}
	return false
}

// printBackupSummary prints the one-line summary of a backup.
func printBackupSummary(w io.Writer, s backup.Summary) {
	fmt.Fprintf(w, "backup: %d entries (%d files, %d dirs, %d symlinks, %d hard links, %d special), %s, %d sparse, %d caps, %d skipped, %.2fs, %.1f MB/s\n",
		s.Entries, s.Files, s.Dirs, s.Symlinks, s.Hardlinks, s.Specials, humanBytes(s.Bytes), s.Sparse, s.Caps, s.Skipped,
		s.Duration.Seconds(), s.MBps())
	if s.Excluded > 0 {
		fmt.Fprintf(w, "backup: %d entries excluded by --exclude (an excluded directory counts once)\n", s.Excluded)
	}
	if s.Verified > 0 {
		fmt.Fprintf(w, "backup: verified: the archive read back equals the tree (%.2fs)\n", s.Verified.Seconds())
	}
}

// humanBytes formats n with a binary unit.
func humanBytes(n int64) string { return ui.Bytes(n) }
