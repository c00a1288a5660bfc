package cli

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nscap/nscap/xattrfmt"
)

// maxDecodeInput bounds what decode reads from stdin: a value is at most
// 24 bytes, so anything this long is garbage anyway.
const maxDecodeInput = 1 << 16

type decodeOptions struct {
	IO   *IOStreams
	Hex  string // the HEX argument; "" or "-" reads stdin
	JSON bool
}

func newDecodeCmd(f *Factory, runF func(*decodeOptions) error) *cobra.Command {
	opts := &decodeOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "decode [HEX|-]",
		Short: "Decode a raw security.capability value",
		Long: `Decode a raw security.capability value and print its fields: revision,
effective bit, permitted and inheritable capabilities, rootid (revision 3) and
the text getcap prints for it.

HEX is the value in hexadecimal, optionally prefixed with 0x and containing
white space, as "getfattr -n security.capability -e hex" prints it. Without
HEX, or with "-", the value is read from stdin: as hex text when stdin holds
only hex digits (with an optional 0x and white space), else as raw bytes
(for example "getfattr --only-values -n security.capability FILE | nscap
decode").

Values are accepted as the kernel's exec path accepts them: revision 1 (12
bytes), 2 (20 bytes) and 3 (24 bytes), with only the effective flag. Anything
else is reported with the rule it breaks.

With --json the value is one JSON object: "hex", "caps" (the text),
"revision", "effective", "permitted", "inheritable" (lists of names) and, for
revision 3, "rootid".

EXIT STATUS
  0  the value is well formed
  1  the value is malformed, not hex, or could not be read
  2  usage error`,
		Example: `  nscap decode 0x0100000200200000000000000000000000000000
  getfattr -n security.capability -e hex --only-values /usr/bin/ping | nscap decode
  nscap decode --json 01000003 00200000 00000000 00000000 00000000 a0860100`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Hex = strings.Join(args, "")
			if len(args) > 1 && slices.Contains(args, "-") {
				return flagErrorf("\"-\" must be the only argument")
			}
			opts.JSON = f.Global.JSON
			if runF != nil {
				return runF(opts)
			}
			return runDecode(cmd.Context(), opts)
		},
	}
	return cmd
}

// parseHex parses hex digits with an optional 0x prefix and any white
// space.
func parseHex(s string) ([]byte, error) {
	s = strings.Join(strings.Fields(s), "")
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s = s[2:]
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not hex: %w", err)
	}
	return b, nil
}

// readValue returns the value to decode.
func (opts *decodeOptions) readValue() ([]byte, error) {
	if opts.Hex != "" && opts.Hex != "-" {
		return parseHex(opts.Hex)
	}
	raw, err := io.ReadAll(io.LimitReader(opts.IO.In, maxDecodeInput+1))
	if err != nil {
		return nil, fmt.Errorf("read stdin: %w", err)
	}
	if len(raw) > maxDecodeInput {
		return nil, fmt.Errorf("read stdin: more than %d bytes", maxDecodeInput)
	}
	if b, err := parseHex(string(raw)); err == nil && len(strings.TrimSpace(string(raw))) > 0 {
		return b, nil
	}
	return raw, nil
}

// valueRecord is the JSON form of decode and encode output.
type valueRecord struct {
	Type string `json:"type"` // "value"
	Hex  string `json:"hex"`
	*capsJSON
}

func runDecode(_ context.Context, opts *decodeOptions) error {
	b, err := opts.readValue()
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	c, err := xattrfmt.Decode(b)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return printValue(opts.IO.Out, opts.JSON, "decode", b, c)
}

// printValue prints the value b (decoded as c) as decode and encode do.
// command names the command in the --json summary.
func printValue(w io.Writer, asJSON bool, command string, b []byte, c xattrfmt.FileCaps) error {
	rec := valueRecord{Type: recValue, Hex: "0x" + hex.EncodeToString(b), capsJSON: newCapsJSON(c)}
	if asJSON {
		if err := writeJSON(w, rec); err != nil {
			return err
		}
		return writeJSON(w, countSummary{summaryHead: newSummaryHead(command), Records: 1})
	}
	list := func(names []string) string {
		if len(names) == 0 {
			return "(none)"
		}
		return strings.Join(names, ",")
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "hex: %s\n", rec.Hex)
	fmt.Fprintf(&sb, "revision: %d\n", rec.Revision)
	fmt.Fprintf(&sb, "effective: %t\n", rec.Effective)
	fmt.Fprintf(&sb, "permitted: %s\n", list(rec.Permitted))
	fmt.Fprintf(&sb, "inheritable: %s\n", list(rec.Inheritable))
	if rec.RootID != nil {
		fmt.Fprintf(&sb, "rootid: %d\n", *rec.RootID)
	}
	fmt.Fprintf(&sb, "text: %s\n", rec.Caps)
	_, err := io.WriteString(w, sb.String())
	return err
}
