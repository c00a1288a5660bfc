package cli

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nscap/nscap/xattrfmt"
)

func TestNewDecodeCmd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		argv    string
		want    decodeOptions
		wantErr string
	}{
		{argv: "", want: decodeOptions{}},
		{argv: "-", want: decodeOptions{Hex: "-"}},
		{argv: "0x0100", want: decodeOptions{Hex: "0x0100"}},
		{argv: "01000002 00200000", want: decodeOptions{Hex: "0100000200200000"}},
		{argv: "--json 00", want: decodeOptions{Hex: "00", JSON: true}},
		{argv: "00 -", wantErr: `"-" must be the only argument`},
	}
	for _, tc := range tests {
		t.Run(tc.argv, func(t *testing.T) {
			t.Parallel()
			got, err := parseCmd(t, newDecodeCmd, tc.argv)
			if errString(err) != tc.wantErr {
				t.Fatalf("decode %s: error %q, want %q", tc.argv, errString(err), tc.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tc.want, *got, cmpopts.IgnoreFields(decodeOptions{}, "IO")); diff != "" {
				t.Errorf("decode %s: options mismatch (-want +got):\n%s", tc.argv, diff)
			}
		})
	}
}

func TestRunDecode(t *testing.T) {
	t.Parallel()
	v2 := "0x0100000200200000000000000000000000000000"
	v3 := "0x0100000300200000000000000000000000000000a0860100"
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  result
	}{
		{
			name: "v2 arg",
			args: []string{"decode", v2},
			want: result{Stdout: "hex: " + v2 + "\nrevision: 2\neffective: true\npermitted: cap_net_raw\ninheritable: (none)\ntext: cap_net_raw=ep\n"},
		},
		{
			name: "v3 spaced words",
			args: []string{"decode", "01000003", "00200000", "00000000", "00000000", "00000000", "a0860100"},
			want: result{Stdout: "hex: " + v3 + "\nrevision: 3\neffective: true\npermitted: cap_net_raw\ninheritable: (none)\nrootid: 100000\ntext: cap_net_raw=ep\n"},
		},
		{
			name:  "stdin hex",
			args:  []string{"decode"},
			stdin: "  0X" + strings.ToUpper(v2[2:]) + "\n",
			want:  result{Stdout: "hex: " + v2 + "\nrevision: 2\neffective: true\npermitted: cap_net_raw\ninheritable: (none)\ntext: cap_net_raw=ep\n"},
		},
		{
			name:  "stdin raw",
			args:  []string{"decode", "-"},
			stdin: "\x00\x00\x00\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00",
			want:  result{Stdout: "hex: 0x0000000201000000000000000002000000000000\nrevision: 2\neffective: false\npermitted: cap_chown,41\ninheritable: (none)\ntext: cap_chown=p 41+p\n"},
		},
		{
			name: "not hex",
			args: []string{"decode", "0x01zz"},
			want: result{Code: ExitError, Stderr: "nscap: decode: not hex: invalid byte: U+007A 'z'\n"},
		},
		{
			name: "empty stdin",
			args: []string{"decode"},
			want: result{Code: ExitError, Stderr: "nscap: decode: " + decodeErr([]byte{}) + "\n"},
		},
		{
			name: "truncated",
			args: []string{"decode", v2[:20]},
			want: result{Code: ExitError, Stderr: "nscap: decode: " + decodeErr(mustHex(v2[:20])) + "\n"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := nscap(t, tc.stdin, tc.args...)
			if diff := cmp.Diff(tc.want, r); diff != "" {
				t.Errorf("nscap %q mismatch (-want +got):\n%s", tc.args, diff)
			}
		})
	}
}

func decodeErr(b []byte) string {
	_, err := xattrfmt.Decode(b)
	if err == nil {
		return ""
	}
	return strings.TrimPrefix(err.Error(), "xattrfmt: ") // as the user reads it
}

func mustHex(s string) []byte {
	b, err := parseHex(s)
	if err != nil {
		panic(err)
	}
	return b
}

// malformedBlobs returns values of every size 0..32 under each revision
// byte (valid and not), with and without stray flags, and trailing data.
func malformedBlobs() [][]byte {
	var blobs [][]byte
	for _, rev := range []byte{0, 1, 2, 3, 4, 0x7f, 0xff} {
		for _, flags := range []uint32{0, 1, 2, 0x100, 0x800000, 0xffffff} {
			for size := 0; size <= 32; size++ {
				b := make([]byte, size)
				var hdr [4]byte
				binary.LittleEndian.PutUint32(hdr[:], uint32(rev)<<24|flags)
				copy(b, hdr[:])
				for i := 4; i < size; i++ {
					b[i] = byte(i * 37)
				}
				blobs = append(blobs, b)
			}
		}
	}
	return blobs
}

// decode of malformed values fails with exactly the xattrfmt error, and
// of well-formed ones succeeds; nothing panics.
func TestDecodeMalformed(t *testing.T) {
	t.Parallel()
	nbad := 0
	for _, b := range malformedBlobs() {
		hexArg := fmt.Sprintf("0x%x", b)
		if len(b) == 0 {
			hexArg = ""
		}
		r := nscap(t, "", "decode", hexArg)
		if len(b) == 0 {
			r = nscap(t, "", "decode")
		}
		_, derr := xattrfmt.Decode(b)
		if derr == nil {
			// Sizes other than 12, 20 and 24 are never valid.
			if n := len(b); n != 12 && n != 20 && n != 24 {
				t.Errorf("decode %s: size %d accepted", hexArg, n)
			}
			if r.Code != ExitOK {
				t.Errorf("decode %s: exit %d (%q), want 0", hexArg, r.Code, r.Stderr)
			}
			continue
		}
		nbad++
		want := result{Code: ExitError, Stderr: "nscap: decode: " + strings.TrimPrefix(derr.Error(), "xattrfmt: ") + "\n"}
		if diff := cmp.Diff(want, r); diff != "" {
			t.Errorf("decode %s mismatch (-want +got):\n%s", hexArg, diff)
		}
	}
	if nbad < 1000 {
		t.Errorf("only %d malformed blobs", nbad)
	}
}

func TestDecodeJSONGolden(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	for _, h := range []string{
		"0x0100000200200000000000000000000000000000",
		"0x0100000300200000000000000000000000000000a0860100",
		"0x0000000300000000000000000000000000000000005ed0b2",
		"0x0100000201300000003000000000000000000000",
		"0x01000002ffffffffffffffffffffffffffffffff",
		"0x010000010020000000000000",
		"0x0000000200000000000000000000000000000000",
	} {
		r := nscap(t, "", "--json", "decode", h)
		if r.Code != ExitOK {
			t.Errorf("decode %s: exit %d: %s", h, r.Code, r.Stderr)
		}
		out.WriteString(r.Stdout)
	}
	golden(t, "decode-json", out.String())
}
