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

func TestUserTextEOF(t *testing.T) {
	t.Parallel()
	const told = "truncated archive: it ends inside a member (unexpected EOF)"
	for _, tc := range []struct{ in, want string }{
		{"nscap: restore a.tar: read archive: unexpected EOF\n", "nscap: restore a.tar: read archive: " + told + "\n"},
		{"nscap: verify a.tar: read archive: ./bin/ls: unexpected EOF\n", "nscap: verify a.tar: read archive: ./bin/ls: " + told + "\n"},
		// Said already, or not an archive: left alone.
		{"nscap: list a.tar.gz: read archive: compressed stream cut short: unexpected EOF\n", "nscap: list a.tar.gz: read archive: compressed stream cut short: unexpected EOF\n"},
		{"nscap: audit a.tar: read a.tar: fcaps: malformed archive: unexpected EOF\n", "nscap: audit a.tar: read a.tar: malformed archive: unexpected EOF\n"},
		{"nscap: audit: read baseline b: fcaps: malformed baseline: unexpected EOF\n", "nscap: audit: read baseline b: malformed baseline: unexpected EOF\n"},
	} {
		if got := userText(tc.in); got != tc.want {
			t.Errorf("userText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestJSONText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		// A record's message starts with the library's words.
		{"backup: id outside the map", "id outside the map"},
		{"entry \"../f\": backup: insecure path in archive", "entry \"../f\": insecure path in archive"},
		{"read a.tar: fcaps: malformed archive: tarfmt: truncated archive: no end-of-archive block", "read a.tar: malformed archive: truncated archive: no end-of-archive block"},
		{"restore a.tar: read archive: unexpected EOF", "restore a.tar: read archive: truncated archive: it ends inside a member (unexpected EOF)"},
		{"verify: a differs", "verify: a differs"},
		{"", ""},
	} {
		if got := jsonText(tc.in); got != tc.want {
			t.Errorf("jsonText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
