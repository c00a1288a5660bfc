package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/ui"
	"github.com/nscap/nscap/xattrfmt"
)

type getOptions struct {
	IO *IOStreams

	Paths     []string
	Recursive bool // -r
	RootID    bool // -n: print [rootid=N]
	Verbose   bool // -v: also list files without caps
	Sort      bool // --sort: sort by path (for -r)
	XDev      bool // --xdev: stay on one filesystem (for -r)

	JSON       bool
	Quiet      bool
	NoProgress bool
}

func newGetCmd(f *Factory, runF func(*getOptions) error) *cobra.Command {
	opts := &getOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "get [-r] [-n] [-v] [--sort] [--xdev] PATH...",
		Short: "Print the capabilities of files, like getcap",
		Long: `Print the file capabilities of each PATH, one line per file, as getcap does:

  PATH TEXT

where TEXT is the libcap text form (cap_net_raw=ep). With -n, a capability
of revision 3 (namespaced) gets " [rootid=N]" appended, N being the uid, in
the caller's user namespace, of the root of the namespace in which the
capabilities are honoured; N is printed unsigned (getcap prints ids of 2^31
and above as negative numbers).

Files without capabilities print nothing, unless -v is given: then they print
their path alone, and paths that are not regular files (directories,
symlinks, devices, fifos) print "PATH (Not a regular file)", as getcap -v
does. Symlinks are never followed.

With -r, directories are walked recursively, in parallel, without following
symlinks; the order of the lines is then not fixed unless --sort is given.
--xdev keeps the walk on the filesystem of each PATH. With -r, -v lists the
regular files without capabilities, but not the directories, symlinks and
other non-regular files of the walk, which getcap -r -v also prints.

A capability whose rootid the caller cannot see (the kernel answers
EOVERFLOW: it belongs to a user namespace outside the caller's) is listed as
"PATH (capabilities of another user namespace)" and is not a failure. A value
the kernel refuses to return (EINVAL: an empty, revision-1 or otherwise
malformed value) and any other error is reported on stderr, and makes the
exit status 1; unlike getcap, which exits 0.

With --json, each file is one JSON object on stdout: "path", and for a file
with capabilities "caps" (the text), "revision", "effective", "permitted",
"inheritable" (lists of names) and, for revision 3, "rootid"; a capability
of another namespace has "foreign": true, a path that is not a regular file
"not_regular": true; a failure is an "error" record (also on stderr). File
names are bytes, JSON strings are UTF-8: a path that is not valid UTF-8 gets
U+FFFD in "path" for each bad byte, and "path_base64" with its exact bytes
(standard base64); decode that one to name the file.

Progress is drawn on stderr when it is a terminal, unless -q or
--no-progress.

EXIT STATUS
  0  success, including files without capabilities and capabilities of
     another user namespace
  1  a path could not be read (missing, unreadable, a value the kernel
     refuses); the other paths were still processed
  2  usage error: bad flags or arguments, nothing was done`,
		Example: `  nscap get /usr/bin/ping
  nscap get -n -r --sort /var/lib/containers/storage/overlay
  nscap get --json -r /usr/bin`,
		Args: minArgs(1, "PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Paths = args
			opts.JSON, opts.Quiet, opts.NoProgress = f.Global.JSON, f.Global.Quiet, f.Global.NoProgress
			if runF != nil {
				return runF(opts)
			}
			return runGet(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&opts.Recursive, "recursive", "r", false, "walk directories recursively")
	fl.BoolVarP(&opts.RootID, "rootid", "n", false, "append [rootid=N] to namespaced (revision 3) capabilities")
	fl.BoolVarP(&opts.Verbose, "verbose", "v", false, "also list files without capabilities")
	fl.BoolVar(&opts.Sort, "sort", false, "sort the output by path")
	fl.BoolVar(&opts.XDev, "xdev", false, "do not cross filesystem boundaries with -r")
	return cmd
}

// getRecord is one line of get's output. Its JSON form is a documented
// interface (see the command's help).
type getRecord struct {
	Type       string `json:"type"` // "file"
	Path       string `json:"path"`
	PathBase64 string `json:"path_base64,omitempty"` // when Path is not valid UTF-8
	*capsJSON
	Foreign    bool   `json:"foreign,omitempty"`
	NotRegular bool   `json:"not_regular,omitempty"`
	Error      string `json:"-"` // an "error" record in JSON

	err error // the error behind Error, for the stderr message
}

// text formats r as getcap does (without a trailing newline); showRootID
// is -n.
func (r getRecord) text(showRootID bool) string {
	switch {
	case r.Foreign:
		return r.Path + " (capabilities of another user namespace)"
	case r.NotRegular:
		return r.Path + " (Not a regular file)"
	case r.capsJSON == nil:
		return r.Path
	}
	s := r.Path + " " + r.Caps
	if showRootID && r.RootID != nil && *r.RootID != 0 {
		s += fmt.Sprintf(" [rootid=%d]", *r.RootID)
	}
	return s
}

// newGetRecord turns the result of reading path into a record; ok is false
// when nothing is to be printed for it (no caps, without -v).
func newGetRecord(path string, c xattrfmt.FileCaps, err error, verbose bool) (rec getRecord, ok bool) {
	rec.Type, rec.Path, rec.PathBase64 = recFile, path, pathBase64(path)
	switch {
	case err == nil:
		rec.capsJSON = newCapsJSON(c)
	case errors.Is(err, fcaps.ErrNotVisible):
		rec.Foreign = true
	case errors.Is(err, fcaps.ErrNoCaps):
		return rec, verbose
	case errors.Is(err, fcaps.ErrNotRegular):
		rec.NotRegular = true
		return rec, verbose
	default:
		rec.err = err
		rec.Error = reason(err, path)
	}
	return rec, true
}

func runGet(ctx context.Context, opts *getOptions) error {
	ios := opts.IO
	progress := ui.NewCounter(ios.ErrOut, "files", ui.Interval(opts.Quiet || opts.NoProgress, opts.JSON, ios.IsStderrTTY))
	defer progress.Done()

	failed := false
	sum := countSummary{summaryHead: newSummaryHead("get")}
	var sorted []getRecord
	emit := func(rec getRecord) error {
		if opts.Sort {
			sorted = append(sorted, rec)
			return nil
		}
		progress.Clear()
		return printGetRecord(opts, rec, &failed, &sum)
	}

	if opts.Recursive {
		err := fcaps.Scan(ctx, opts.Paths, fcaps.ScanOptions{XDev: opts.XDev, All: opts.Verbose},
			func(fd fcaps.Found) error {
				progress.Add(1)
				err := fd.Err
				if err == nil && fd.Type&fs.ModeType != 0 {
					err = fcaps.ErrNotRegular
				}
				rec, ok := newGetRecord(fd.Path, fd.Caps, err, opts.Verbose)
				if !ok {
					return nil
				}
				return emit(rec)
			})
		if err != nil {
			progress.Clear()
			return fmt.Errorf("get: %w", err)
		}
	} else {
		for _, p := range opts.Paths {
			if err := ctx.Err(); err != nil {
				return err
			}
			c, err := fcaps.Get(p)
			progress.Add(1)
			rec, ok := newGetRecord(p, c, err, opts.Verbose)
			if !ok {
				continue
			}
			if err := emit(rec); err != nil {
				return err
			}
		}
	}

	if opts.Sort {
		slices.SortStableFunc(sorted, func(a, b getRecord) int { return strings.Compare(a.Path, b.Path) })
		progress.Clear()
		for _, rec := range sorted {
			if err := printGetRecord(opts, rec, &failed, &sum); err != nil {
				return err
			}
		}
	}
	return endRun(opts.IO.Out, opts.JSON, sum, failed)
}

// printGetRecord prints rec on stdout (and its error on stderr), setting
// *failed for an error record and counting the --json records in sum.
func printGetRecord(opts *getOptions, rec getRecord, failed *bool, sum *countSummary) error {
	if rec.err != nil {
		*failed = true
		printPathError(opts.IO.ErrOut, "get", rec.Path, rec.err)
		if !opts.JSON {
			return nil
		}
		sum.Records++
		sum.Errors++
		return writeItem(opts.IO.Out, recError, rec.Path, rec.Error)
	}
	if opts.JSON {
		sum.Records++
		return writeJSON(opts.IO.Out, rec)
	}
	_, err := fmt.Fprintln(opts.IO.Out, rec.text(opts.RootID))
	return err
}
