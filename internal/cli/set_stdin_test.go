package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/internal/testutil"
)

// setcapRC runs setcap with stdin and returns its exit status.
func setcapRC(tb testing.TB, stdin string, args ...string) int {
	tb.Helper()
	cmd := exec.Command("setcap", args...)
	cmd.Stdin = strings.NewReader(stdin)
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	tb.Fatalf("setcap %q: %v", args, err)
	return -1
}

// set - with no text on stdin is refused, as setcap refuses it, and the
// file keeps its caps; "=" on stdin or as CAPS still writes an empty set.
func TestSetStdinEmpty(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "setcap")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	const before = "0x0100000201000000000000000000000000000000" // cap_chown+ep
	tests := []struct {
		name  string
		stdin string
	}{
		{"empty", ""},
		{"newline", "\n"},
		{"crlf", "\r\n"},
		{"empty line first", "\ncap_net_raw+ep\n"},
		{"blanks", " \t\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := writeFile(t, filepath.Join(dir, "f"))
			runTool(t, "setcap", "cap_chown+ep", f)
			r := nscap(t, tc.stdin, "set", "-", f)
			want := result{Code: ExitError, Stderr: "nscap: set: read caps from stdin: " + errNoStdinCaps.Error() + "\n"}
			if diff := cmp.Diff(want, r); diff != "" {
				t.Errorf("set - <<< %q mismatch (-want +got):\n%s", tc.stdin, diff)
			}
			if got := rawHex(t, f); got != before {
				t.Errorf("set - <<< %q: xattr %s, want %s unchanged", tc.stdin, got, before)
			}
			// setcap refuses the same input with status 1 (a line of
			// blanks or a lone CR excepted: setcap writes an empty set,
			// nscap asks for "=").
			if tc.name != "blanks" && tc.name != "crlf" {
				if rc := setcapRC(t, tc.stdin, "-", f); rc != 1 {
					t.Errorf("setcap - <<< %q: exit %d, want 1", tc.stdin, rc)
				}
				if got := rawHex(t, f); got != before {
					t.Errorf("setcap - <<< %q: xattr %s, want %s unchanged", tc.stdin, got, before)
				}
			}
		})
	}
	// An explicit empty set is allowed, from stdin or as CAPS, as setcap.
	const empty = "0x0000000200000000000000000000000000000000"
	for _, tc := range []struct {
		stdin string
		args  []string
	}{
		{"=\n", []string{"set", "-"}},
		{"", []string{"set", "="}},
	} {
		f := writeFile(t, filepath.Join(dir, "f"))
		runTool(t, "setcap", "cap_chown+ep", f)
		if r := nscap(t, tc.stdin, append(tc.args, f)...); r != (result{}) {
			t.Errorf("nscap %q <<< %q = %+v, want success", tc.args, tc.stdin, r)
		}
		if got := rawHex(t, f); got != empty {
			t.Errorf("nscap %q <<< %q: xattr %s, want %s", tc.args, tc.stdin, got, empty)
		}
	}
}

// A --uidmap that does not map uid 0 (or --ns-uid U) is a usage error,
// found before anything is written.
func TestSetUnmappedIsUsage(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	f := writeFile(t, filepath.Join(dir, "f"))
	runTool(t, "setcap", "cap_chown+ep", f)
	const before = "0x0100000201000000000000000000000000000000"
	for _, args := range [][]string{
		{"--uidmap", "1:100000:5"},
		{"--uidmap", "0:100000:65536", "--ns-uid", "65536"},
		{"-v", "--uidmap", "1:100000:5"},
	} {
		r := nscap(t, "", append(append([]string{"set"}, args...), "cap_net_raw+p", f)...)
		if r.Code != ExitUsage || r.Stdout != "" || !strings.HasSuffix(r.Stderr, "\nRun 'nscap set --help' for usage.\n") || strings.Count(r.Stderr, "\n") != 2 {
			t.Errorf("set %q = %+v, want a usage error", args, r)
		}
		if got := rawHex(t, f); got != before {
			t.Errorf("set %q: xattr %s, want %s unchanged", args, got, before)
		}
	}
}

// --pid P --ns-uid U where the namespace of P does not map U: a usage
// error; a process that does not exist: exit 1.
func TestSetPidNsUIDUnmapped(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTool(t, "unshare")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	f := writeFile(t, filepath.Join(dir, "f"))

	// A namespace that maps only uid 0 (to host root).
	cmd := exec.Command("unshare", "--user", "--map-root-user", "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pid := itoa(cmd.Process.Pid)
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The map is written after unshare(2), before exec of sleep.
		b, _ := os.ReadFile("/proc/" + pid + "/uid_map")
		exe, _ := os.Readlink("/proc/" + pid + "/exe")
		if len(bytes.TrimSpace(b)) > 0 && strings.HasSuffix(exe, "sleep") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("unshare: no uid map after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	r := nscap(t, "", "set", "--pid", pid, "--ns-uid", "5", "cap_chown+p", f)
	if r.Code != ExitUsage || !strings.HasPrefix(r.Stderr, "nscap: set: uid 5 in the user namespace of pid "+pid+": namespace id 5 not mapped by 0:0:1\n") {
		t.Errorf("set --pid %s --ns-uid 5 = %+v, want a usage error", pid, r)
	}
	if got := rawHex(t, f); got != "" {
		t.Errorf("set --pid %s --ns-uid 5: wrote %s", pid, got)
	}
	// uid 0 is mapped, to host root: revision 2, honoured on the whole
	// host, so refused without --host (issue 14), written with it.
	if r := nscap(t, "", "set", "--pid", pid, "cap_chown+p", f); r.Code != ExitUsage || !strings.Contains(r.Stderr, "whose root is nscap's own root (uid 0)") || rawHex(t, f) != "" {
		t.Errorf("set --pid %s = %+v, want a refusal without --host", pid, r)
	}
	if r := nscap(t, "", "set", "--pid", pid, "--host", "cap_chown+p", f); r != (result{}) {
		t.Errorf("set --pid %s --host = %+v, want success", pid, r)
	}
	r = nscap(t, "", "set", "--pid", "2147483647", "cap_chown+p", f)
	if want := (result{Code: ExitError, Stderr: "nscap: set: pid 2147483647: no such process\n"}); r != want {
		t.Errorf("set --pid 2147483647 = %+v, want %+v", r, want)
	}
}

// set -v --json leaves out rootid_got when the caps could not be read.
func TestSetVerifyJSONUnknownRootID(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	f := writeFile(t, filepath.Join(dir, "f"))
	runTool(t, "setcap", "-n", "100000", "cap_chown+ep", f)
	missing := filepath.Join(dir, "missing")
	r := nscap(t, "", "--json", "set", "-v", "--rootid", "100000", "cap_chown+ep", f, missing)
	if r.Code != ExitError {
		t.Errorf("set -v: exit %d, want 1", r.Code)
	}
	lines := strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")
	want := []map[string]any{
		{"type": "check", "path": f, "ok": true, "rootid_got": 100000.0, "rootid_want": 100000.0},
		{"type": "error", "path": missing, "message": "no such file or directory"},
		{"type": "summary", "command": "set", "records": 2.0, "errors": 1.0},
	}
	var got []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		got = append(got, m)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("set -v --json mismatch (-want +got):\n%s", diff)
	}
}

// set and remove --json add path_base64 for a name that is not UTF-8.
func TestSetRemoveJSONNonUTF8(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	name := "caf\xe9\xff"
	f := writeFile(t, filepath.Join(dir, name))
	b64 := base64.StdEncoding.EncodeToString([]byte(f))
	for _, args := range [][]string{
		{"set", "cap_chown+p", f},
		{"set", "-v", "cap_chown+p", f},
		{"remove", f},
	} {
		r := nscap(t, "", append([]string{"--json"}, args...)...)
		if r.Code != ExitOK {
			t.Fatalf("nscap %q: %+v", args, r)
		}
		var rec struct {
			Path       string `json:"path"`
			PathBase64 string `json:"path_base64"`
		}
		if err := json.Unmarshal([]byte(firstLine(r.Stdout)), &rec); err != nil {
			t.Fatalf("nscap %q: %q: %v", args, r.Stdout, err)
		}
		if rec.PathBase64 != b64 || rec.Path != filepath.Join(dir, "caf\uFFFD\uFFFD") {
			t.Errorf("nscap --json %q = %s, want path_base64 %s", args, r.Stdout, b64)
		}
	}
	// A valid UTF-8 name has no path_base64.
	g := writeFile(t, filepath.Join(dir, "café"))
	if r := nscap(t, "", "--json", "set", "cap_chown+p", g); strings.Contains(r.Stdout, "path_base64") || r.Code != ExitOK {
		t.Errorf("set --json %s = %+v, want no path_base64", g, r)
	}
}
