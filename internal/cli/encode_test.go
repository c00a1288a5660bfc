package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nscap/nscap/internal/testutil"
)

func TestNewEncodeCmd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		argv    string
		want    encodeOptions
		wantErr string
	}{
		{argv: "cap_chown+ep", want: encodeOptions{Caps: "cap_chown+ep", RootID: noRootID}},
		{argv: "--rootid 5 cap_chown+ep", want: encodeOptions{Caps: "cap_chown+ep", RootID: 5}},
		{argv: "--rootid 0 cap_chown+ep --json", want: encodeOptions{Caps: "cap_chown+ep", RootID: 0, JSON: true}},
		{argv: "", wantErr: "missing CAPS"},
		{argv: "a b", wantErr: `too many arguments: ["b"]`},
		{argv: "--rootid 4294967295 a", wantErr: "--rootid 4294967295: want a uid from 0 to 4294967294"},
		{argv: "--rootid -1 a", wantErr: "--rootid -1: want a uid from 0 to 4294967294"},
		{argv: "--rootid 0x10 a", want: encodeOptions{Caps: "a", RootID: 16}},
	}
	for _, tc := range tests {
		t.Run(tc.argv, func(t *testing.T) {
			t.Parallel()
			got, err := parseCmd(t, newEncodeCmd, tc.argv)
			if errString(err) != tc.wantErr {
				t.Fatalf("encode %s: error %q, want %q", tc.argv, errString(err), tc.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tc.want, *got, cmpopts.IgnoreFields(encodeOptions{}, "IO")); diff != "" {
				t.Errorf("encode %s: options mismatch (-want +got):\n%s", tc.argv, diff)
			}
		})
	}
}

func TestRunEncode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args  []string
		stdin string
		want  result
	}{
		// Only the hex, one line: $(nscap encode CAPS) is a setfattr -v argument.
		{args: []string{"encode", "cap_net_raw+ep"}, want: result{Stdout: "0x0100000200200000000000000000000000000000\n"}},
		{args: []string{"encode", "--rootid", "0", "="}, want: result{Stdout: "0x000000030000000000000000000000000000000000000000\n"}},
		{args: []string{"encode", "--rootid", "100000", "cap_net_raw+ep"}, want: result{Stdout: "0x0100000300200000000000000000000000000000a0860100\n"}},
		{args: []string{"encode", "-"}, stdin: "cap_chown=i\n", want: result{Stdout: "0x0000000200000000010000000000000000000000\n"}},
		{args: []string{"encode", "-"}, stdin: "=\n", want: result{Stdout: "0x0000000200000000000000000000000000000000\n"}},
		{args: []string{"encode", "cap_net_raw"}, want: result{Code: ExitError, Stderr: "nscap: encode: caps \"cap_net_raw\": " + parseErr("cap_net_raw") + "\n"}},
		// No text on stdin is refused, not encoded as an empty set.
		{args: []string{"encode", "-"}, stdin: "", want: result{Code: ExitError, Stderr: "nscap: encode: read caps from stdin: " + errNoStdinCaps.Error() + "\n"}},
		{args: []string{"encode", "-"}, stdin: "\n", want: result{Code: ExitError, Stderr: "nscap: encode: read caps from stdin: " + errNoStdinCaps.Error() + "\n"}},
		{args: []string{"encode", "-"}, stdin: "  \t\n\ncap_chown+p\n", want: result{Code: ExitError, Stderr: "nscap: encode: read caps from stdin: " + errNoStdinCaps.Error() + "\n"}},
		// Flag values: worded errors, one line and a pointer to the help.
		{args: []string{"encode", "--rootid", "abc", "="}, want: result{Code: ExitUsage, Stderr: "nscap: invalid --rootid \"abc\": not a number\nRun 'nscap encode --help' for usage.\n"}},
		{args: []string{"encode", "--rootid", "99999999999999999999", "="}, want: result{Code: ExitUsage, Stderr: "nscap: invalid --rootid \"99999999999999999999\": out of range\nRun 'nscap encode --help' for usage.\n"}},
		{args: []string{"encode", "--rootid", "-1", "="}, want: result{Code: ExitUsage, Stderr: "nscap: --rootid -1: want a uid from 0 to 4294967294\nRun 'nscap encode --help' for usage.\n"}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			r := nscap(t, tc.stdin, tc.args...)
			if diff := cmp.Diff(tc.want, r); diff != "" {
				t.Errorf("nscap %q mismatch (-want +got):\n%s", tc.args, diff)
			}
		})
	}
}

func TestEncodeJSONGolden(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	for _, args := range [][]string{
		{"cap_net_raw+ep"},
		{"--rootid", "100000", "cap_net_admin,cap_net_raw=eip"},
		{"--rootid", "3000000000", "all=p"},
		{"40,63=i"},
		{"="},
	} {
		r := nscap(t, "", append([]string{"encode", "--json"}, args...)...)
		if r.Code != ExitOK {
			t.Errorf("encode %q: exit %d: %s", args, r.Code, r.Stderr)
		}
		out.WriteString(r.Stdout)
	}
	golden(t, "encode-json", out.String())
}

// The example of the help works: the output of encode is what setfattr -v
// takes, and getcap reads back the caps.
func TestEncodeSetfattr(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "setfattr", "getcap")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	for _, tc := range []struct {
		args []string
		want string // getcap -n
	}{
		{[]string{"cap_chown+ep"}, "cap_chown=ep"},
		{[]string{"--rootid", "100000", "cap_net_raw,cap_chown=eip"}, "cap_chown,cap_net_raw=eip [rootid=100000]"},
	} {
		f := writeFile(t, filepath.Join(dir, "e"))
		r := nscap(t, "", append([]string{"encode"}, tc.args...)...)
		if r.Code != ExitOK || strings.Count(r.Stdout, "\n") != 1 {
			t.Fatalf("encode %q = %+v, want one line", tc.args, r)
		}
		runTool(t, "setfattr", "-n", "security.capability", "-v", strings.TrimSpace(r.Stdout), f)
		if got, want := runTool(t, "getcap", "-n", f), f+" "+tc.want+"\n"; got != want {
			t.Errorf("encode %q | setfattr; getcap -n = %q, want %q", tc.args, got, want)
		}
		if got := rawHex(t, f); got+"\n" != r.Stdout {
			t.Errorf("encode %q | setfattr: xattr %s, want %s", tc.args, got, r.Stdout)
		}
	}
}
