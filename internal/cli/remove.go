package cli

import (
	"context"

	"github.com/nscap/nscap/fcaps"
	"github.com/spf13/cobra"
)

type removeOptions struct {
	IO    *IOStreams
	Paths []string
	JSON  bool
}

func newRemoveCmd(f *Factory, runF func(*removeOptions) error) *cobra.Command {
	opts := &removeOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:     "remove PATH...",
		Aliases: []string{"rm"},
		Short:   "Remove the capabilities of files, like setcap -r",
		Long: `Remove the security.capability extended attribute of each PATH, as
setcap -r does. Each PATH must be a regular file; symlinks are never
followed. A file without capabilities is an error, as with setcap -r.

With --json, each path is one JSON object on stdout: "path", and "error"
when it failed.

` + exitStatusCommon,
		Example: `  nscap remove /usr/bin/ping
  nscap remove rootfs/usr/bin/*`,
		Args: minArgs(1, "PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Paths = args
			opts.JSON = f.Global.JSON
			if runF != nil {
				return runF(opts)
			}
			return runRemove(cmd.Context(), opts)
		},
	}
	return cmd
}

// removeRecord is the JSON output of remove for one path.
type removeRecord struct {
	Path  string `json:"path"`
	Error string `json:"error,omitempty"`
}

func runRemove(ctx context.Context, opts *removeOptions) error {
	failed := false
	for _, p := range opts.Paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec := removeRecord{Path: p}
		if err := fcaps.Remove(p); err != nil {
			failed = true
			printPathError(opts.IO.ErrOut, "remove", p, err)
			rec.Error = reason(err, p)
		}
		if opts.JSON {
			if err := writeJSON(opts.IO.Out, rec); err != nil {
				return err
			}
		}
	}
	if failed {
		return errSilent
	}
	return nil
}
