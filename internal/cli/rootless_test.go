package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nscap/nscap/internal/testutil"
)

// TestSetRemoveByCaller runs set, get and remove on a file the caller owns,
// as whoever runs the tests: root succeeds directly; an unprivileged caller
// (make unit-unpriv) gets exit 1 and a message naming CAP_SETFCAP where
// only a direct write is allowed, a clear refusal for host-wide caps (which
// no helper user namespace can write), and success through the helper for
// a rootid of its own. Never a panic nor a usage error.
func TestSetRemoveByCaller(t *testing.T) {
	root := testutil.IsRoot()
	if !root {
		testutil.RequireUserNS(t)
	}
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	testutil.Traversable(t, dir) // the helper's root is not host root
	writeFile(t, filepath.Join(dir, "f"))
	t.Chdir(dir)
	uid := fmt.Sprint(os.Geteuid())

	// Root writes and removes directly; a plain user is refused (exit 1,
	// one stderr line containing userErr) where userErr is set.
	own := "f cap_net_raw=ep [rootid=" + uid + "]\n"
	tests := []struct {
		args                   string
		rootStdout, userStdout string
		userErr                string
	}{
		{
			"set --helper never cap_net_raw+ep f", "", "",
			"nscap: set f: writing security.capability needs CAP_SETFCAP in a user namespace that maps the file's owner and group (operation not permitted)",
		},
		{"get f", "f cap_net_raw=ep\n", "", ""},
		{
			"set cap_net_raw+ep f", "", "",
			"nscap: set f: rootid 0 (revision 2: capabilities honoured by the host) is outside the uids the caller owns, ",
		},
		// Root's own uid is 0: revision 2.
		{"set --rootid " + uid + " cap_net_raw+ep f", "", "", ""},
		{"get -n f", "f cap_net_raw=ep\n", own, ""},
		{
			"remove --helper never f", "", "",
			"nscap: remove f: removing security.capability needs CAP_SETFCAP in a user namespace that maps the file's owner and group (operation not permitted)",
		},
		{"get -n f", "", own, ""},
		{"set --rootid " + uid + " cap_net_raw+ep f", "", "", ""},
		{"remove f", "", "", ""},
		{"get f", "", "", ""},
	}
	for _, tc := range tests {
		got := nscap(t, "", strings.Fields(tc.args)...)
		wantStdout, wantCode := tc.userStdout, ExitOK
		if root {
			wantStdout = tc.rootStdout
		} else if tc.userErr != "" {
			wantCode = ExitError
		}
		if got.Code != wantCode || got.Stdout != wantStdout {
			t.Errorf("nscap %s as uid %s: exit %d, stdout %q; want exit %d, stdout %q (stderr %q)",
				tc.args, uid, got.Code, got.Stdout, wantCode, wantStdout, got.Stderr)
		}
		switch {
		case wantCode == ExitOK && got.Stderr != "":
			t.Errorf("nscap %s as uid %s: stderr %q, want none", tc.args, uid, got.Stderr)
		case wantCode != ExitOK && (!strings.Contains(got.Stderr, tc.userErr) || strings.Count(got.Stderr, "\n") != 1):
			t.Errorf("nscap %s as uid %s: stderr %q, want one line containing %q", tc.args, uid, got.Stderr, tc.userErr)
		}
	}
}
