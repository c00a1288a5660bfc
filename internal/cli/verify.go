package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/nscap/nscap/backup"
	"github.com/nscap/nscap/fcaps"
)

type verifyOptions struct {
	IO      *IOStreams
	Archive string
	Dest    string
	Maps    targetMapFlags
	Helper  fcaps.HelperMode
	JSON    bool
	// Quiet (-q) and NoProgress (--no-progress): no progress line; -q
	// also no summary.
	Quiet, NoProgress bool
	// XattrsInclude is restore's --xattrs-include: what it left out is
	// not compared.
	XattrsInclude []string
}

func newVerifyCmd(f *Factory, runF func(*verifyOptions) error) *cobra.Command {
	opts := &verifyOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "verify [--uidmap MAP [--gidmap MAP] | --pid PID | --oci-config FILE] [--source-uidmap MAP] [--foreign-caps fail|skip|host] [--helper auto|always|never] ARCHIVE|- DEST",
		Short: "List every difference between an archive and a restored tree",
		Long: `Compare the tree under DEST with ARCHIVE as "nscap restore" with the same
map flags would have made it, and print every difference, one per line:
missing and extra entries, type, owner, mode, size, content (sha256),
symlink targets and hardlinks, xattrs, and capabilities (compared as
capabilities and shown with their rootids). Nothing is followed or changed.

Caps the target cannot hold (kept host-scoped by the backup, or of a rootid
the target maps do not cover) are judged by --foreign-caps as restore judged
them: under fail (the default) a cap of the archive that the tree lacks is a
difference, so a restore that could not write caps is never clean.

Lines are "PATH: KIND [NAME]: want W, got G"; with --json each difference is
an object with "path", "kind", "name", "want" and "got".

An unprivileged user who restored a tree through a helper user namespace
(see "nscap restore --help") verifies it the same way: --helper auto (the
default) checks the tree from inside such a helper when target maps are
given and the caller lacks CAP_CHOWN or CAP_SETFCAP; always uses it, never
reads the tree directly. Through the helper, owners, ACL ids and rootids in
the "want" and "got" of differences are shown as the helper namespace sees
them (the caller's own id is 0, the target's host ids follow), not as host
ids.

EXIT STATUS
  0  the tree matches the archive
  1  differences were found, or the verification failed
  2  usage error: bad flags or arguments, nothing was done`,
		Example: `  nscap verify --uidmap 0:200000:65536 ct.tar.zst /var/lib/ct2/rootfs`,
		Args:    rangeArgs(2, 2, "ARCHIVE and DEST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Archive, opts.Dest = args[0], args[1]
			opts.JSON = f.Global.JSON
			opts.Quiet, opts.NoProgress = f.Global.Quiet, f.Global.NoProgress
			if err := opts.Maps.validate(cmd.Flags(), opts.Helper); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runVerify(cmd.Context(), opts)
		},
	}
	opts.Maps.register(cmd.Flags())
	addHelperFlag(cmd.Flags(), &opts.Helper, "read the tree from a helper user namespace")
	cmd.Flags().StringArrayVar(&opts.XattrsInclude, "xattrs-include", nil, "the --xattrs-include `PATTERN`s the restore was given (default user.*; ACLs and caps always)")
	return cmd
}

func runVerify(ctx context.Context, opts *verifyOptions) error {
	in, err := openArchive(opts.IO, opts.Archive, &opts.Maps)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }() // read only
	progress, r := newArchiveProgress(opts.IO, "verify", in.R, opts.Quiet || opts.NoProgress || opts.JSON)
	start := time.Now()
	vo := backup.VerifyOptions{
		UIDMap: in.UID, GIDMap: in.GID, SourceUIDMap: in.SrcUID, SourceGIDMap: in.SrcGID, HostScope: opts.Maps.HostScope, ForeignCaps: opts.Maps.ForeignCaps,
		XattrsInclude: opts.XattrsInclude,
		Reporter:      &itemReporter{io: opts.IO, verb: "verify", json: opts.JSON, quiet: opts.Quiet, progress: progress},
		Difference: func(d backup.Difference) error {
			progress.Clear() // stdout may be the same terminal
			if opts.JSON {
				return writeJSON(opts.IO.Out, diffRecord{Type: recDifference, Difference: d})
			}
			_, err := fmt.Fprintln(opts.IO.Out, d.String())
			return err
		},
	}
	var diffs []backup.Difference
	if useHelper(opts.Helper, in.UID) {
		diffs, err = backup.VerifyRootless(ctx, r, opts.Dest, vo, backup.RootlessOptions{Stderr: progress.Writer(opts.IO.ErrOut)})
	} else {
		diffs, err = backup.Verify(ctx, r, opts.Dest, vo)
	}
	progress.Done()
	if err != nil {
		return fmt.Errorf("verify %s: %w", opts.Archive, err)
	}
	if opts.JSON {
		if err := writeJSON(opts.IO.Out, verifySummary{newSummaryHead("verify"), len(diffs)}); err != nil {
			return err
		}
	}
	if len(diffs) > 0 {
		return errSilent
	}
	if !opts.Quiet && !opts.JSON {
		fmt.Fprintf(opts.IO.ErrOut, "verify: %s matches %s: no differences (%.2fs)\n", opts.Dest, opts.Archive, time.Since(start).Seconds())
	}
	return nil
}

// diffRecord is the --json form of one difference.
type diffRecord struct {
	Type string `json:"type"` // "difference"
	backup.Difference
}

// verifySummary is the --json summary of verify.
type verifySummary struct {
	summaryHead
	Differences int `json:"differences"`
}
