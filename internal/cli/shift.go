package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nscap/nscap/backup"
	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/ui"
	"github.com/nscap/nscap/userns"
)

// shiftSide is one side (source or target) of a shift: a map given as
// MAP or "host", or read from a process or an OCI config.
type shiftSide struct {
	name      string // "from" or "to"
	uidMaps   []string
	gidMaps   []string
	pid       int
	ociConfig string
	host      bool
	uid, gid  userns.Map
}

func (s *shiftSide) register(fl *pflag.FlagSet, what string) {
	fl.StringArrayVar(&s.uidMaps, s.name, nil, "uid `MAP` (INSIDE:OUTSIDE:COUNT,...) the tree is "+what+", or host (raw host ids: the identity over the other side's container ids)")
	fl.StringArrayVar(&s.gidMaps, "gidmap-"+s.name, nil, "gid `MAP` the tree is "+what+" (default: the uid map)")
	fl.IntVar(&s.pid, s.name+"-pid", 0, "--"+s.name+" and --gidmap-"+s.name+" are the maps of the user namespace of process `PID`")
	fl.StringVar(&s.ociConfig, s.name+"-oci-config", "", "--"+s.name+" and --gidmap-"+s.name+" are the maps of the OCI runtime config `FILE`")
}

// validate checks the flags of the side (usage errors only) and parses
// its maps; resolve reads a process's or a config's.
func (s *shiftSide) validate(fl *pflag.FlagSet) error {
	n := 0
	for _, f := range []string{s.name, s.name + "-pid", s.name + "-oci-config"} {
		if fl.Changed(f) {
			n++
		}
	}
	switch {
	case n == 0:
		return flagErrorf("missing --%s MAP (or --%s-pid, --%s-oci-config, --%s host)", s.name, s.name, s.name, s.name)
	case n > 1:
		return flagErrorf("--%s, --%s-pid and --%s-oci-config exclude each other", s.name, s.name, s.name)
	case fl.Changed("gidmap-"+s.name) && !fl.Changed(s.name):
		return flagErrorf("--gidmap-%s needs --%s", s.name, s.name)
	case fl.Changed(s.name+"-pid") && s.pid <= 0:
		return flagErrorf("--%s-pid %d: want a positive process id", s.name, s.pid)
	}
	text := strings.Join(s.uidMaps, ",")
	if text == "host" {
		s.host = true
		if len(s.gidMaps) > 0 {
			return flagErrorf("--gidmap-%s: --%s host takes no gid map", s.name, s.name)
		}
		return nil
	}
	var err error
	if s.uid, err = parseMapFlag("--"+s.name, text); err != nil {
		return err
	}
	s.gid = s.uid
	if len(s.gidMaps) > 0 {
		s.gid, err = parseMapFlag("--gidmap-"+s.name, strings.Join(s.gidMaps, ","))
	}
	return err
}

func (s *shiftSide) resolve() error {
	var err error
	switch {
	case s.pid != 0:
		if s.uid, s.gid, err = userns.ReadMaps(s.pid); err != nil {
			return pidError(s.pid, err)
		}
	case s.ociConfig != "":
		s.uid, s.gid, err = readOCIMaps(s.ociConfig)
	}
	return err
}

type shiftOptions struct {
	IO          *IOStreams
	Root        string
	From, To    shiftSide
	ForeignCaps backup.ForeignCaps
	OneFS       bool
	DryRun      bool
	Workers     int
	Helper      fcaps.HelperMode
	JSON, Quiet bool
	NoProgress  bool
}

const shiftLong = `Move the tree under ROOTFS from one user namespace's id range to another's, in
place: every owner, POSIX ACL entry (access and default ACLs) and file
capability rootid goes from its container id under --from to the same
container id under --to. Use it to make a privileged container unprivileged
(--from host), to move a container to another subordinate range, or to adopt
a rootfs untarred by hand.

Unlike chown -R, no capability is lost: the kernel clears
security.capability and the setuid/setgid bits of every file it chowns, and
shift writes them back, translated: a revision-2 cap (the container root's)
stays the container root's (revision 3 with the new root's host uid), and a
nested namespace's revision-3 cap moves to the nested root's new host uid.
Hardlinked inodes are shifted once; symlinks are lchown'ed, never followed;
other file systems mounted below ROOTFS are left alone unless
--one-file-system=false.

An id outside --from is left as it is: silently when it is inside --to
(already shifted), else reported as an error. A capability whose rootid is
outside --from (a host-scoped cap, another container's) follows
--foreign-caps: fail (the default) reports the file and leaves it as it is,
skip drops the cap, host keeps it as it is.

Crash safety: a shift that is killed can be run again with the same maps and
completes to the same result. Before chowning a file whose caps or setuid
bits the kernel clears, shift records what to put back in a journal
(/var/lib/nscap/shift for root; $XDG_STATE_HOME/nscap/shift, else
~/.local/state/nscap/shift, for others: run the next shift with the same
environment), and the next shift of the tree, in either direction,
completes those files first. This needs the --from and --to host
ranges to be disjoint: overlapping ranges are refused (ids in both could be
moved or not, and nothing on disk tells which); shift through a free range
instead (A to C, then C to B). The reverse shift (--from B --to A) gives the
original tree back.

--dry-run lists what would change and changes nothing.

An unprivileged user shifts between two ranges it owns (in /etc/subuid and
/etc/subgid) through a helper user namespace: --helper auto (the default)
uses one when the caller lacks CAP_CHOWN or CAP_SETFCAP.

EXIT STATUS
  0  the tree is shifted (or, with --dry-run, was listed)
  1  some ids or files were left as they were (each is reported), or the
     shift failed
  2  usage error: bad flags or arguments, nothing was done`

func newShiftCmd(f *Factory, runF func(*shiftOptions) error) *cobra.Command {
	opts := &shiftOptions{IO: f.IO, From: shiftSide{name: "from"}, To: shiftSide{name: "to"}}
	var foreign string
	cmd := &cobra.Command{
		Use:   "shift --from MAP|host --to MAP|host [--gidmap-from MAP] [--gidmap-to MAP] [--dry-run] ROOTFS",
		Short: "Re-own a rootfs in place for another id range, caps and ACLs included",
		Long:  shiftLong,
		Example: `  nscap shift --from 0:100000:65536 --to 0:200000:65536 /var/lib/ct/rootfs
  nscap shift --from host --to 0:100000:65536 /srv/privileged/rootfs
  nscap shift --from-oci-config old/config.json --to-oci-config new/config.json rootfs
  nscap shift --dry-run --from 0:100000:65536 --to 0:200000:65536 rootfs`,
		Args: rangeArgs(1, 1, "ROOTFS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Root = args[0]
			if opts.Root == "" {
				return flagErrorf("ROOTFS: empty path")
			}
			opts.JSON, opts.Quiet, opts.NoProgress = f.Global.JSON, f.Global.Quiet, f.Global.NoProgress
			fl := cmd.Flags()
			if err := opts.From.validate(fl); err != nil {
				return err
			}
			if err := opts.To.validate(fl); err != nil {
				return err
			}
			if opts.From.host && opts.To.host {
				return flagErrorf("--from host and --to host: nothing to shift")
			}
			p, err := backup.ParseForeignCaps(foreign)
			if err != nil {
				return flagErrorf("--foreign-caps: %w", err)
			}
			opts.ForeignCaps = p
			if opts.Workers < 0 {
				return flagErrorf("--workers %d: want 0 (automatic) or more", opts.Workers)
			}
			if runF != nil {
				return runF(opts)
			}
			return runShift(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	opts.From.register(fl, "owned under now")
	opts.To.register(fl, "to be owned under")
	fl.StringVar(&foreign, "foreign-caps", "fail", "caps whose rootid is outside --from: fail, skip or host")
	fl.BoolVar(&opts.OneFS, "one-file-system", true, "leave file systems mounted below ROOTFS alone (--one-file-system=false shifts them too)")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "list what would change; change nothing")
	fl.IntVar(&opts.Workers, "workers", 0, "goroutines walking directories (0: automatic)")
	addHelperFlag(fl, &opts.Helper, "shift from a helper user namespace")
	return cmd
}

// shiftJSON is one JSON Lines record of shift.
type shiftJSON struct {
	Type       string     `json:"type"` // "change"
	Path       string     `json:"path"`
	PathBase64 string     `json:"path_base64,omitempty"` // when Path is not valid UTF-8
	UID        *[2]uint32 `json:"uid,omitempty"`         // old, new
	GID        *[2]uint32 `json:"gid,omitempty"`         // old, new
	RootID     *[2]uint32 `json:"rootid,omitempty"`      // old, new
	ACLs       int        `json:"acls,omitempty"`
}

// shiftReporter renders the engine's events.
type shiftReporter struct {
	opts    *shiftOptions
	counter *ui.Counter
	mu      sync.Mutex
}

func (r *shiftReporter) path(rel string) string {
	if rel == "." {
		return r.opts.Root
	}
	return strings.TrimSuffix(r.opts.Root, "/") + "/" + rel
}

func (r *shiftReporter) Change(rel string, c backup.ShiftChange) {
	if !r.opts.DryRun {
		r.counter.Add(1)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.opts.JSON {
		rec := shiftJSON{Type: recChange, Path: r.path(rel), PathBase64: pathBase64(r.path(rel)), ACLs: c.ACLs}
		if c.OldUID != c.NewUID {
			rec.UID = &[2]uint32{c.OldUID, c.NewUID}
		}
		if c.OldGID != c.NewGID {
			rec.GID = &[2]uint32{c.OldGID, c.NewGID}
		}
		if c.Caps {
			rec.RootID = &[2]uint32{c.OldRootID, c.NewRootID}
		}
		_ = writeJSON(r.opts.IO.Out, rec)
		return
	}
	fmt.Fprintf(r.opts.IO.Out, "%s: %s\n", r.path(rel), describeShiftChange(c))
}

// describeShiftChange is the text of a change: "uid 100000->200000, gid
// 100000->200000, caps rootid 100000->200000, 1 acl".
func describeShiftChange(c backup.ShiftChange) string {
	var parts []string
	if c.OldUID != c.NewUID {
		parts = append(parts, fmt.Sprintf("uid %d->%d", c.OldUID, c.NewUID))
	}
	if c.OldGID != c.NewGID {
		parts = append(parts, fmt.Sprintf("gid %d->%d", c.OldGID, c.NewGID))
	}
	if c.Caps {
		if c.OldRootID == c.NewRootID {
			parts = append(parts, "caps dropped")
		} else {
			parts = append(parts, fmt.Sprintf("caps rootid %d->%d", c.OldRootID, c.NewRootID))
		}
	}
	if c.ACLs > 0 {
		parts = append(parts, fmt.Sprintf("%d acl", c.ACLs))
	}
	return strings.Join(parts, ", ")
}

func (r *shiftReporter) Warn(rel string, err error) {
	r.event("warning", rel, err)
}

func (r *shiftReporter) Error(rel string, err error) error {
	r.event("error", rel, err)
	return nil
}

func (r *shiftReporter) event(kind, rel string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.opts.JSON {
		_ = writeItem(r.opts.IO.Out, kind, r.path(rel), err.Error())
		return
	}
	if kind == "warning" && r.opts.Quiet {
		return
	}
	r.counter.Clear()
	prefix := "nscap: shift "
	if kind == "warning" {
		prefix = "nscap: warning: shift "
	}
	fmt.Fprintf(r.opts.IO.ErrOut, "%s%s: %s\n", prefix, r.path(rel), strings.ReplaceAll(reason(err, rel), "\n", "; "))
}

func (r *shiftReporter) Finish(backup.ShiftSummary) {}

func runShift(ctx context.Context, opts *shiftOptions) error {
	if err := opts.From.resolve(); err != nil {
		return err
	}
	if err := opts.To.resolve(); err != nil {
		return err
	}
	switch {
	case opts.From.host:
		opts.From.uid, opts.From.gid = backup.IdentityLike(opts.To.uid), backup.IdentityLike(opts.To.gid)
	case opts.To.host:
		opts.To.uid, opts.To.gid = backup.IdentityLike(opts.From.uid), backup.IdentityLike(opts.From.gid)
	}
	interval := time.Duration(0)
	if !opts.NoProgress && !opts.DryRun {
		interval = ui.Interval(opts.Quiet, opts.JSON, opts.IO.IsStderrTTY)
	}
	rep := &shiftReporter{opts: opts, counter: ui.NewCounter(opts.IO.ErrOut, "shift: changed", interval)}
	sopts := backup.ShiftOptions{
		FromUID: opts.From.uid, FromGID: opts.From.gid,
		ToUID: opts.To.uid, ToGID: opts.To.gid,
		ForeignCaps: opts.ForeignCaps,
		CrossMounts: !opts.OneFS,
		DryRun:      opts.DryRun,
		Workers:     opts.Workers,
		Reporter:    rep,
	}
	var sum backup.ShiftSummary
	var err error
	if useShiftHelper(opts.Helper) {
		sum, err = backup.ShiftRootless(ctx, opts.Root, sopts, backup.RootlessOptions{})
	} else {
		sum, err = backup.Shift(ctx, opts.Root, sopts)
	}
	rep.counter.Done()
	var fe *backup.ShiftFailedError
	if errors.Is(err, backup.ErrShiftOverlap) {
		return &FlagError{Err: fmt.Errorf("--from and --to: %w", err)} // nothing was done
	}
	if err != nil && !errors.As(err, &fe) {
		return fmt.Errorf("shift %s: %w", opts.Root, err)
	}
	if opts.JSON {
		if werr := writeJSON(opts.IO.Out, shiftSummary{
			summaryHead: newSummaryHead("shift"), Root: opts.Root, DryRun: opts.DryRun,
			Entries: sum.Entries, Changed: sum.Changed, Caps: sum.Caps, ACLs: sum.ACLs, Mounts: sum.Mounts,
			Replayed: sum.Replayed, Errors: sum.Failures, Warnings: sum.Warnings,
		}); werr != nil {
			return werr
		}
	} else if !opts.Quiet {
		printShiftSummary(opts.IO.ErrOut, sum)
	}
	if fe != nil {
		if !opts.JSON {
			fmt.Fprintf(opts.IO.ErrOut, "nscap: shift %s: %s\n", opts.Root, fe)
		}
		return errSilent
	}
	return nil
}

// useShiftHelper says whether the shift goes through a helper user
// namespace.
func useShiftHelper(mode fcaps.HelperMode) bool {
	return mode == fcaps.HelperAlways || (mode == fcaps.HelperAuto && !privileged())
}

func printShiftSummary(w io.Writer, s backup.ShiftSummary) {
	verb := "changed"
	if s.DryRun {
		verb = "to change (dry run)"
	}
	fmt.Fprintf(w, "shift: %d entries, %d %s, %d caps, %d acls, %d mount points left alone, %d completed from the journal, %d failures\n",
		s.Entries, s.Changed, verb, s.Caps, s.ACLs, s.Mounts, s.Replayed, s.Failures)
}
