package cli

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/nscap/nscap/backup"
)

type normalizeOptions struct {
	IO          *IOStreams
	Input       string // ARCHIVE, "-" for stdin
	Output      string // -o FILE, "-" for stdout
	Maps        mapFlags
	Owners      bool
	Compression backup.Compression
	JSON        bool
	Quiet       bool
}

const normalizeLong = `Rewrite a tar archive, such as an image layer, so that every file capability
in it is namespace-relative: what getxattr shows inside the container, as an
image layer must hold it, whatever uid map the runtime later unpacks it with.

The map (--uidmap, --pid or --oci-config) is that of the user namespace the
archive's values were read in, host ids outside: a layer diff made from a
rootless or userns-remapped container, or "tar --xattrs" of a container
rootfs run on the host. For each security.capability (SCHILY.xattr or
LIBARCHIVE.xattr records):

  revision 3 with rootid R, a host uid of the map:
      R is the container root      -> revision 2
      R is the container's uid N   -> revision 3 with rootid N (a nested root)
  revision 2, or a rootid that is a container uid already -> kept (relative)
  any other rootid, or a malformed value -> kept as it is, and reported

That is what container-libs does when it writes a layer diff since its pull
1126; layers built before it, or by other tools, hold host rootids, which
"nscap audit" reports as NSCAP009. With --owners, owners and groups that are
host ids of the maps become container ids too (others are kept).

Every other part of each member is copied; headers are written in PAX format
(GNU sparse members expanded). ARCHIVE may be plain, gzip or zstd ("-":
stdin); the output compression follows -o's suffix (.gz, .tgz: gzip; .zst,
.tzst: zstd) unless --compress says otherwise. With --json, one JSON line per
member with caps ({"type":"member","name","action","before","after"},
action rewritten, relative, foreign or malformed, values in hex) and a
summary.

(This is the "backup --oci-layer" of issue 16, as a command of its own: it
works on any tar, including one nscap did not write.)

EXIT STATUS
  0  every capability is namespace-relative
  1  some were left as they were (foreign rootid, malformed), or an error
  2  usage error`

func newNormalizeCmd(f *Factory, runF func(*normalizeOptions) error) *cobra.Command {
	opts := &normalizeOptions{IO: f.IO}
	var compress string
	cmd := &cobra.Command{
		Use:   "normalize --uidmap MAP -o OUT ARCHIVE",
		Short: "Make the capabilities of a tar archive (an image layer) namespace-relative",
		Long:  normalizeLong,
		Example: `  nscap normalize --uidmap 0:100000:65536 -o layer.norm.tar.gz layer.tar.gz
  podman image save ... ; nscap normalize --pid 4242 --owners -o - diff.tar | ...`,
		Args: rangeArgs(1, 1, "ARCHIVE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Input = args[0]
			opts.JSON, opts.Quiet = f.Global.JSON, f.Global.Quiet
			fl := cmd.Flags()
			if err := opts.Maps.validate(fl); err != nil {
				return err
			}
			if !opts.Maps.given() {
				return flagErrorf("missing --uidmap, --pid or --oci-config: the map the archive's values were read in")
			}
			if opts.Output == "" {
				return flagErrorf("missing -o FILE (or -o - for stdout)")
			}
			opts.Compression = backup.CompressionFor(opts.Output)
			if fl.Changed("compress") {
				var err error
				if opts.Compression, err = backup.ParseCompression(compress); err != nil {
					return flagErrorf("--compress: %w", err)
				}
			}
			if opts.Output == "-" && opts.JSON {
				return flagErrorf("--json writes on stdout: it needs -o FILE")
			}
			if opts.Output == "-" && f.IO.IsStdoutTTY {
				return flagErrorf("refusing to write an archive to a terminal (-o -)")
			}
			if runF != nil {
				return runF(opts)
			}
			return runNormalize(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	opts.Maps.register(fl, "the uid `MAP` the archive's values were read in (NS:HOST:COUNT,...)",
		"its gid `MAP`, for --owners (default: the uid map)", "take the maps of the user namespace of process `PID`",
		"take the maps of an OCI runtime config.json `FILE`")
	fl.StringVarP(&opts.Output, "output", "o", "", "write the archive to `FILE` (- for stdout)")
	fl.StringVar(&compress, "compress", "", "compression of the output: none, gzip or zstd (default: from -o's suffix)")
	fl.BoolVar(&opts.Owners, "owners", false, "also make owners and groups that are host ids of the maps container ids")
	return cmd
}

// normalizeRecord is the --json form of one member with caps.
// A member that could not be rewritten is followed by an "error" record.
type normalizeRecord struct {
	Type   string `json:"type"` // "member"
	Name   string `json:"name"`
	Action string `json:"action"`
	Before string `json:"before"`
	After  string `json:"after"`
}

// normalizeSummary is the last --json record of normalize.
type normalizeSummary struct {
	summaryHead
	backup.NormalizeStats
}

func runNormalize(ctx context.Context, opts *normalizeOptions) error {
	ios := opts.IO
	uid, gid, err := opts.Maps.resolve()
	if err != nil {
		return fmt.Errorf("normalize: %w", err)
	}
	if uid.IsZero() {
		return fmt.Errorf("normalize: %s has no uid map (it is the host's): nothing to translate", opts.Maps.describe())
	}
	in := ios.In
	if opts.Input != "-" {
		f, err := os.Open(opts.Input)
		if err != nil {
			return fmt.Errorf("normalize: %w", err)
		}
		defer f.Close()
		in = f
	}
	var itemErr error
	nopts := backup.NormalizeOptions{
		UIDMap: uid, GIDMap: gid, Owners: opts.Owners, Compression: opts.Compression,
		Item: func(name string, a backup.NormalizeAction, before, after []byte, err error) {
			if opts.JSON {
				r := normalizeRecord{Type: recMember, Name: name, Action: string(a), Before: hex.EncodeToString(before), After: hex.EncodeToString(after)}
				werr := writeJSON(ios.Out, r)
				if err != nil && werr == nil {
					werr = writeItem(ios.Out, recError, name, fmt.Sprintf("%s, kept as it was: %v", a, err))
				}
				if werr != nil && itemErr == nil {
					itemErr = werr
				}
			}
			if err != nil {
				fmt.Fprintf(ios.ErrOut, "nscap: normalize %s: %s, kept as it was: %v\n", name, a, err)
			}
		},
	}
	var st backup.NormalizeStats
	write := func(w io.Writer) error {
		var err error
		st, err = backup.Normalize(ctx, in, w, nopts)
		if errors.Is(err, backup.ErrNotNormalized) {
			return nil // the archive is complete; reported below
		}
		return err
	}
	if opts.Output == "-" {
		err = write(ios.Out)
	} else {
		err = writeFileAtomic(opts.Output, write)
	}
	if err != nil {
		return fmt.Errorf("normalize %s: %w", opts.Input, err)
	}
	if itemErr != nil {
		return itemErr
	}
	if opts.JSON {
		if err := writeJSON(ios.Out, normalizeSummary{newSummaryHead("normalize"), st}); err != nil {
			return err
		}
	} else if !opts.Quiet {
		fmt.Fprintf(ios.ErrOut, "nscap: normalize: %d members, %d with capabilities: %d rewritten, %d relative already, %d foreign, %d malformed",
			st.Members, st.WithCaps, st.Rewritten, st.Relative, st.Foreign, st.Malformed)
		if opts.Owners {
			fmt.Fprintf(ios.ErrOut, "; %d owners translated", st.Owners)
		}
		fmt.Fprintln(ios.ErrOut)
	}
	if st.Foreign > 0 || st.Malformed > 0 {
		return errSilent
	}
	return nil
}
