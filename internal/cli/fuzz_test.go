package cli

import (
	"context"
	"strings"
	"testing"
)

// FuzzDecodeCmd feeds arbitrary stdin to nscap decode: it never panics,
// exits 0 or 1, and on 1 prints exactly one "nscap: decode: " line.
func FuzzDecodeCmd(f *testing.F) {
	for _, s := range []string{
		"", "0x", "0x0100000200200000000000000000000000000000", "01000003 00200000 00000000 00000000 00000000 a0860100",
		"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", "zz", "0x0", " \n\t",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		ios, stdin, out, errOut := Test()
		stdin.WriteString(in)
		code := Main(context.Background(), []string{"decode"}, ios)
		switch code {
		case ExitOK:
			if errOut.Len() != 0 || !strings.HasPrefix(out.String(), "hex: 0x") {
				t.Fatalf("decode %q: exit 0 with stdout %q stderr %q", in, out, errOut)
			}
		case ExitError:
			e := errOut.String()
			if out.Len() != 0 || !strings.HasPrefix(e, "nscap: decode: ") || strings.Count(e, "\n") != 1 {
				t.Fatalf("decode %q: exit 1 with stdout %q stderr %q", in, out, errOut)
			}
		default:
			t.Fatalf("decode %q: exit %d", in, code)
		}
	})
}
