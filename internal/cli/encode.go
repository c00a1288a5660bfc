package cli

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"

	"github.com/spf13/cobra"

	"github.com/nscap/nscap/xattrfmt"
)

type encodeOptions struct {
	IO     *IOStreams
	Caps   string // capability text, or "-" to read it from stdin
	RootID int64  // noRootID when not given
	JSON   bool
}

func newEncodeCmd(f *Factory, runF func(*encodeOptions) error) *cobra.Command {
	opts := &encodeOptions{IO: f.IO, RootID: noRootID}
	cmd := &cobra.Command{
		Use:   "encode [--rootid N] CAPS",
		Short: "Encode capability text as a raw security.capability value",
		Long: `Encode the capability text CAPS (as nscap set takes it; "-" reads it from
stdin, lines up to the first empty line) as the raw security.capability
value setcap would write, and print it on one line in hex with a 0x prefix,
the form "getfattr -e hex" prints and "setfattr -v" accepts. The value is
revision 2 (20 bytes), or revision 3 (24 bytes) with --rootid N; --rootid 0
gives revision 3 with rootid 0. "nscap decode" shows the fields of a value.

With --json the value is one JSON object with the fields of nscap decode
--json: "hex", "caps", "revision", "effective", "permitted", "inheritable"
and, for revision 3, "rootid".

EXIT STATUS
  0  success
  1  CAPS is not valid text for a file (as with setcap), or "-" read no
     text
  2  usage error: bad flags or arguments`,
		Example: `  nscap encode cap_net_raw+ep
  nscap encode --rootid 100000 cap_net_raw+ep
  setfattr -n security.capability -v $(nscap encode cap_chown+ep) ./file`,
		Args: rangeArgs(1, 1, "CAPS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Caps = args[0]
			opts.JSON = f.Global.JSON
			if cmd.Flags().Changed("rootid") && (opts.RootID < 0 || opts.RootID >= math.MaxUint32) {
				return flagErrorf("--rootid %d: want a uid from 0 to %d", opts.RootID, uint32(math.MaxUint32-1))
			}
			if runF != nil {
				return runF(opts)
			}
			return runEncode(cmd.Context(), opts)
		},
	}
	cmd.Flags().Var(rootIDValue{&opts.RootID}, "rootid", "encode revision 3 with this rootid (`N`)")
	return cmd
}

func runEncode(_ context.Context, opts *encodeOptions) error {
	text := opts.Caps
	if text == "-" {
		var err error
		if text, err = readStdinCaps(opts.IO.In); err != nil {
			return fmt.Errorf("encode: read caps from stdin: %w", err)
		}
	}
	c, err := xattrfmt.ParseFileText(text)
	if err != nil {
		return fmt.Errorf("encode: caps %q: %w", text, err)
	}
	if opts.RootID != noRootID {
		c.Revision, c.RootID = xattrfmt.Revision3, uint32(opts.RootID)
	}
	b, err := xattrfmt.Encode(c)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if opts.JSON {
		return printValue(opts.IO.Out, true, "encode", b, c)
	}
	// Only the value, so that $(nscap encode CAPS) is an argument of
	// setfattr -v.
	_, err = fmt.Fprintf(opts.IO.Out, "0x%s\n", hex.EncodeToString(b))
	return err
}
