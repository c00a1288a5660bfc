package cli

import (
	"bytes"
	"testing"
)

func TestUserText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"nscap: --uidmap 0:1: userns: syntax error\n", "nscap: --uidmap 0:1: syntax error\n"},
		{"nscap: decode: xattrfmt: value truncated\n", "nscap: decode: value truncated\n"},
		{"nscap: restore a: backup: insecure path in archive\n", "nscap: restore a: insecure path in archive\n"},
		{"nscap: audit a: fcaps: malformed archive: tarfmt: short\n", "nscap: audit a: malformed archive: short\n"},
		{"nscap: x: backup: userns: id not mapped\n", "nscap: x: id not mapped\n"},
		{
			"nscap: restore f: a: backup: host-scoped capability not restored (it would be honoured on the host; allow it with --host-scope, RestoreOptions.HostScope)\n",
			"nscap: restore f: a: host-scoped capability not restored (it would be honoured on the host; allow it with --host-scope)\n",
		},
		// The CLI's own words stay: a command name that starts a line.
		{"backup: dry run, no archive written:\n", "backup: dry run, no archive written:\n"},
		{"\rbackup: 10 entries", "\rbackup: 10 entries"},
		{"nscap: userns tree: no /proc\n", "nscap: userns tree: no /proc\n"},
	} {
		if got := userText(tc.in); got != tc.want {
			t.Errorf("userText(%q) = %q, want %q", tc.in, got, tc.want)
		}
		var b bytes.Buffer
		n, err := userWriter{&b}.Write([]byte(tc.in))
		if err != nil || n != len(tc.in) || b.String() != tc.want {
			t.Errorf("userWriter.Write(%q) = %d, %v, wrote %q; want %d, nil, %q", tc.in, n, err, b.String(), len(tc.in), tc.want)
		}
	}
}
