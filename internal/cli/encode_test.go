package cli

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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
		{args: []string{"encode", "cap_net_raw+ep"}, want: result{Stdout: "hex: 0x0100000200200000000000000000000000000000\nrevision: 2\neffective: true\npermitted: cap_net_raw\ninheritable: (none)\ntext: cap_net_raw=ep\n"}},
		{args: []string{"encode", "--rootid", "0", "="}, want: result{Stdout: "hex: 0x000000030000000000000000000000000000000000000000\nrevision: 3\neffective: false\npermitted: (none)\ninheritable: (none)\nrootid: 0\ntext: =\n"}},
		{args: []string{"encode", "-"}, stdin: "cap_chown=i\n", want: result{Stdout: "hex: 0x0000000200000000010000000000000000000000\nrevision: 2\neffective: false\npermitted: (none)\ninheritable: cap_chown\ntext: cap_chown=i\n"}},
		{args: []string{"encode", "cap_net_raw"}, want: result{Code: ExitError, Stderr: "nscap: encode: caps \"cap_net_raw\": " + parseErr("cap_net_raw") + "\n"}},
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
