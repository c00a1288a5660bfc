package cli

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nscap/nscap/backup"
	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/testutil"
)

func TestNewRestoreCmd(t *testing.T) {
	t.Parallel()
	ignore := cmpopts.IgnoreFields(restoreOptions{}, "IO")
	ignoreMaps := cmpopts.IgnoreUnexported(targetMapFlags{}, mapFlags{})
	tests := []struct {
		argv    string
		want    restoreOptions
		wantErr string
	}{
		{argv: "a.tar d", want: restoreOptions{Archive: "a.tar", Dest: "d", Helper: fcaps.HelperAuto, Overwrite: backup.OverwriteAlways}},
		{
			argv: "--uidmap 0:200000:65536 --uidmap 65536:1:1 --source-uidmap 0:100000:65536 --overwrite never --helper never - d",
			want: restoreOptions{
				Archive: "-", Dest: "d", Helper: fcaps.HelperNever, Overwrite: backup.OverwriteNever,
				Maps: targetMapFlags{Target: mapFlags{UIDMap: "0:200000:65536,65536:1:1"}, SourceUIDMap: "0:100000:65536"},
			},
		},
		{argv: "--host-scope --json a d", want: restoreOptions{
			Archive: "a", Dest: "d", Helper: fcaps.HelperAuto, Overwrite: backup.OverwriteAlways,
			JSON: true, Maps: targetMapFlags{HostScope: true},
		}},
		{argv: "--helper always --pid 7 a d", want: restoreOptions{
			Archive: "a", Dest: "d", Helper: fcaps.HelperAlways, Overwrite: backup.OverwriteAlways,
			Maps: targetMapFlags{Target: mapFlags{PID: 7}},
		}},
		{argv: "--helper always a d", wantErr: "--helper always needs target maps (--uidmap, --pid or --oci-config)"},
		{argv: "a", wantErr: "missing ARCHIVE and DEST"},
		{argv: "a b c ./d/e", want: restoreOptions{Archive: "a", Dest: "b", Paths: []string{"c", "./d/e"}, Helper: fcaps.HelperAuto, Overwrite: backup.OverwriteAlways}},
		{argv: "-n a b", want: restoreOptions{Archive: "a", Dest: "b", DryRun: true, Helper: fcaps.HelperAuto, Overwrite: backup.OverwriteAlways}},
		{argv: "a b c/../d", wantErr: `PATH "c/../d": want a member name without ".."`},
		{argv: "--uidmap 0:1:1 --pid 3 a d", wantErr: "--uidmap, --pid and --oci-config exclude each other"},
		{argv: "--gidmap 0:1:1 a d", wantErr: "--gidmap needs --uidmap"},
		{argv: "--helper sometimes a d", wantErr: `invalid argument "sometimes" for "--helper" flag: want auto, always or never`},
		{argv: "--overwrite maybe a d", wantErr: `--overwrite "maybe": want always, if-changed or never`},
		{argv: "--uidmap 0:1 a d", wantErr: "--uidmap 0:1: "},
		{argv: "--source-gidmap 0:1:1 a d", wantErr: "--source-gidmap needs --source-uidmap"},
		{argv: "--source-uidmap 0:1 a d", wantErr: "--source-uidmap 0:1: "},
		{argv: "--workers -1 a d", wantErr: "--workers -1: want 0 (automatic) or a positive number"},
		{argv: "--foreign-caps keep a d", wantErr: `--foreign-caps: foreign caps policy "keep": want fail, skip or host`},
	}
	for _, tc := range tests {
		t.Run(tc.argv, func(t *testing.T) {
			t.Parallel()
			got, err := parseCmd(t, newRestoreCmd, tc.argv)
			if tc.wantErr != "" && strings.HasSuffix(tc.wantErr, ": ") {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("restore %s: error %q, want prefix %q", tc.argv, errString(err), tc.wantErr)
				}
				return
			}
			if errString(err) != tc.wantErr {
				t.Fatalf("restore %s: error %q, want %q", tc.argv, errString(err), tc.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tc.want, *got, ignore, ignoreMaps); diff != "" {
				t.Errorf("restore %s: options mismatch (-want +got):\n%s", tc.argv, diff)
			}
		})
	}
}

// testArchive is a namespace-relative archive with a container-root cap.
func testArchive(tb testing.TB) string {
	tb.Helper()
	caps := make([]byte, 20)
	binary.LittleEndian.PutUint32(caps, 0x02000001)
	binary.LittleEndian.PutUint32(caps[4:], 1<<13)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	testutil.NoErr(tb, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "g", PAXRecords: map[string]string{"comment": "nscap-backup/1 uidmap=0:100000:65536 gidmap=0:100000:65536"}}))
	mt := time.Unix(1700000000, 0)
	testutil.NoErr(tb, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "bin/", Mode: 0o755, ModTime: mt}))
	testutil.NoErr(tb, tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: "bin/ping", Mode: 0o755, Size: 4, ModTime: mt, Format: tar.FormatPAX,
		PAXRecords: map[string]string{"SCHILY.xattr.security.capability": string(caps)},
	}))
	testutil.WriteOK(tb)(tw.Write([]byte("ping")))
	testutil.NoErr(tb, tw.Close())
	p := filepath.Join(tb.TempDir(), "a.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestRunRestoreVerify(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "getcap")
	a := testArchive(t)
	dest := testutil.TempDir(t)

	r := nscap(t, "", "restore", a, dest)
	if r.Code != ExitError || !strings.Contains(r.Stderr, "namespace-relative") {
		t.Errorf("restore without a map = %+v, want a refusal", r)
	}
	r = nscap(t, "", "restore", "-q", "--uidmap", "0:200000:65536", a, dest)
	if diff := cmp.Diff(result{}, r); diff != "" {
		t.Fatalf("restore (-want +got):\n%s", diff)
	}
	if got := runTool(t, "getcap", "-n", filepath.Join(dest, "bin/ping")); !strings.Contains(got, "cap_net_raw=ep [rootid=200000]") {
		t.Errorf("getcap -n = %q", got)
	}
	r = nscap(t, "", "-q", "verify", "--uidmap", "0:200000:65536", a, dest)
	if diff := cmp.Diff(result{}, r); diff != "" {
		t.Fatalf("verify (-want +got):\n%s", diff)
	}
	testutil.NoErr(t, os.WriteFile(filepath.Join(dest, "bin/ping"), []byte("pong"), 0o755)) // the kernel drops the caps too
	r = nscap(t, "", "verify", "--uidmap", "0:200000:65536", a, dest)
	r.Stdout = strings.ReplaceAll(r.Stdout, dest, "$DEST")
	// The hashes depend only on the contents; the lines are checked by shape.
	if !strings.HasPrefix(r.Stdout, "$DEST/bin/ping: content: want sha256 ") ||
		!strings.HasSuffix(r.Stdout, "\n$DEST/bin/ping: caps: want cap_net_raw=ep [rootid=200000], got none\n") || r.Code != ExitError {
		t.Errorf("verify after a change = %+v", r)
	}
	r = nscap(t, "", "--json", "verify", "--uidmap", "0:200000:65536", a, dest)
	if !strings.Contains(r.Stdout, `"kind":"caps"`) || r.Code != ExitError {
		t.Errorf("verify --json = %+v", r)
	}
}

func TestNewVerifyCmdHelper(t *testing.T) {
	t.Parallel()
	for argv, want := range map[string]string{
		"a d":                                "",
		"--helper never a d":                 "",
		"--helper always --uidmap 0:1:1 a d": "",
		"--helper always a d":                "--helper always needs target maps (--uidmap, --pid or --oci-config)",
		"--helper maybe a d":                 `invalid argument "maybe" for "--helper" flag: want auto, always or never`,
	} {
		_, err := parseCmd(t, newVerifyCmd, argv)
		if got := errString(err); got != want {
			t.Errorf("verify %s: error %q, want %q", argv, got, want)
		}
	}
}

// nscapAs runs the test binary as nscap (testscript.Main runs the
// command named by argv[0]) with the credentials of u, from /, with stdin
// when not nil.
func nscapAs(tb testing.TB, u *testutil.TestUser, stdin *os.File, args ...string) result {
	tb.Helper()
	cmd := u.Command("/proc/self/exe", args...)
	cmd.Args[0] = "nscap"
	cmd.Dir = "/"
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		tb.Fatalf("nscap %q as %s: %v", args, u.Name, err)
	}
	return result{Code: ExitCode(cmd.ProcessState.ExitCode()), Stdout: stdout.String(), Stderr: stderr.String()}
}

// TestRestoreRootlessCLI backs up a rootfs mapped at 0:100000:65536,
// restores it as root under 0:BASE:65536 and as an unprivileged user
// owning the subordinate range at BASE (through the helper), and compares
// the trees with getcap, getfacl and stat.
func TestRestoreRootlessCLI(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTool(t, "getcap", "setcap", "getfacl", "setfacl")
	const base = 470000
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	testutil.Traversable(t, dir)
	p := func(n string) string { return filepath.Join(dir, n) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	tool := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %q: %v: %s", name, args, err, out)
		}
	}

	// The container's rootfs, as its runtime (map 0:100000:65536) left it.
	rootfs := p("rootfs")
	for _, d := range []string{"bin", "etc", "usr/lib", "home/user"} {
		must(os.MkdirAll(filepath.Join(rootfs, d), 0o755))
	}
	must(os.WriteFile(filepath.Join(rootfs, "bin/ping"), []byte("ping binary"), 0o755))
	must(os.WriteFile(filepath.Join(rootfs, "bin/nested"), []byte("nested"), 0o750))
	must(os.WriteFile(filepath.Join(rootfs, "etc/acl"), []byte("acl"), 0o640))
	must(os.WriteFile(filepath.Join(rootfs, "home/user/secret"), []byte("secret"), 0o600))
	must(os.Symlink("usr/lib", filepath.Join(rootfs, "lib")))
	must(filepath.Walk(rootfs, func(q string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(q, 100000, 100000)
	}))
	for _, n := range []string{"home/user", "home/user/secret", "bin/nested"} {
		must(os.Chown(filepath.Join(rootfs, n), 101000, 101001))
	}
	must(os.Chmod(filepath.Join(rootfs, "home/user"), 0o700))
	must(os.Link(filepath.Join(rootfs, "bin/ping"), filepath.Join(rootfs, "bin/ping6")))
	tool("setcap", "-n", "100000", "cap_net_raw=ep", filepath.Join(rootfs, "bin/ping"))
	tool("setcap", "-n", "101000", "cap_net_admin,cap_net_raw=ep", filepath.Join(rootfs, "bin/nested"))
	tool("setfacl", "-m", "u:101000:rw,g:101001:r", filepath.Join(rootfs, "etc/acl"))

	if r := nscap(t, "", "backup", "-q", "--uidmap", "0:100000:65536", "-o", p("ct.tar"), rootfs); r.Code != ExitOK {
		t.Fatalf("backup = %+v", r)
	}
	u := testutil.User(t, testutil.UserOptions{Prefix: "clr", SubStart: base, SubCount: 65536})
	// The archive is the user's, readable by it only; so are the dests.
	must(os.Chown(p("ct.tar"), u.UID, u.GID))
	must(os.Chmod(p("ct.tar"), 0o600))
	// A GNU tar archive of the rootfs: raw host ids, no source map.
	tool("tar", "-C", rootfs, "-cf", p("raw.tar"), ".")
	must(os.Chown(p("raw.tar"), u.UID, u.GID))
	for _, d := range []string{"dest1", "dest2", "dest3", "dest4", "dest5", "dest6"} {
		must(os.Mkdir(p(d), 0o700))
		must(os.Chown(p(d), u.UID, u.GID))
	}
	target := fmt.Sprintf("0:%d:65536", base)
	if r := nscap(t, "", "restore", "-q", "--uidmap", target, p("ct.tar"), p("dest1")); r.Code != ExitOK {
		t.Fatalf("restore as root = %+v", r)
	}

	res := map[string]result{}
	res["restore"] = nscapAs(t, u, nil, "restore", "--uidmap", target, p("ct.tar"), p("dest2"))
	res["verify"] = nscapAs(t, u, nil, "verify", "--uidmap", target, p("ct.tar"), p("dest2"))
	res["outside"] = nscapAs(t, u, nil, "restore", "--uidmap", fmt.Sprintf("0:%d0:65536", base), p("ct.tar"), p("dest3"))
	res["never"] = nscapAs(t, u, nil, "restore", "--helper", "never", "--uidmap", target, p("ct.tar"), p("dest4"))
	// The archive on stdin: the helper inherits the descriptor.
	f, err := os.Open(p("ct.tar"))
	must(err)
	defer f.Close()
	res["stdin"] = nscapAs(t, u, f, "--json", "restore", "--helper", "always", "--uidmap", target, "-", p("dest5"))
	res["raw"] = nscapAs(t, u, nil, "restore", "--uidmap", target, p("raw.tar"), p("dest6"))
	for k, r := range res {
		t.Logf("%s: %+v", k, r)
	}

	if r := res["restore"]; r.Code != ExitOK || !strings.Contains(r.Stderr, "restored 4 files, 7 directories, 2 links") || !strings.Contains(r.Stderr, "2 caps") {
		t.Errorf("restore as %s = %+v, want success, 4 files, 2 links and 2 caps", u.Name, r)
	}
	if r := res["verify"]; r.Code != ExitOK || r.Stdout != "" {
		t.Errorf("verify as %s (through the helper) = %+v, want clean", u.Name, r)
	}
	if r := res["outside"]; r.Code != ExitError || !strings.Contains(r.Stderr, "target map outside the caller's own id and subordinate ids") ||
		!strings.Contains(r.Stderr, "/etc/subuid") {
		t.Errorf("restore outside the user's range = %+v, want a refusal naming /etc/subuid", r)
	}
	if ents, err := os.ReadDir(p("dest3")); err != nil || len(ents) > 0 {
		t.Errorf("the refused restore wrote into dest3: %v, %v", ents, err)
	}
	if r := res["never"]; r.Code != ExitError || !strings.Contains(r.Stderr, "operation not permitted") ||
		!strings.Contains(r.Stderr, "needs CAP_CHOWN and CAP_SETFCAP") || !strings.Contains(r.Stderr, "--helper auto") {
		t.Errorf("restore --helper never as %s = %+v, want EPERM explained", u.Name, r)
	}
	// One message, with the caller's target map (not the helper's view).
	wantRaw := "nscap: restore " + p("raw.tar") + ": the archive holds host ids, not container ids: its first member ./ is owned by 100000:100000, outside the target map " + target +
		", and the archive records no source map (tar run on the host makes such archives); give the map of the container it was made from, e.g. --source-uidmap 0:100000:65536 when 100000 is that container's root\n"
	if r := res["raw"]; r.Code != ExitError || r.Stderr != wantRaw {
		t.Errorf("restore of a raw archive as %s = %+v, want the one message %q", u.Name, r, wantRaw)
	}
	if ents, err := os.ReadDir(p("dest6")); err != nil || len(ents) > 0 {
		t.Errorf("the refused restore wrote into dest6: %v, %v", ents, err)
	}
	if r := res["stdin"]; r.Code != ExitOK || !strings.Contains(r.Stdout, `"type":"summary"`) || !strings.Contains(r.Stdout, `"caps":2`) {
		t.Errorf("restore --json - as %s = %+v", u.Name, r)
	}

	// The trees: the same caps (rootids BASE and BASE+1000), owners, ACLs
	// and contents as root's restore.
	wantCaps := []string{
		fmt.Sprintf("bin/nested cap_net_admin,cap_net_raw=ep [rootid=%d]", base+1000),
		fmt.Sprintf("bin/ping cap_net_raw=ep [rootid=%d]", base),
		fmt.Sprintf("bin/ping6 cap_net_raw=ep [rootid=%d]", base),
	}
	for _, d := range []string{"dest1", "dest2", "dest5"} {
		if diff := cmp.Diff(wantCaps, getcapLines(t, p(d))); diff != "" {
			t.Errorf("getcap -r -n %s (-want +got):\n%s", d, diff)
		}
	}
	for _, d := range []string{"dest2", "dest5"} {
		if diff := cmp.Diff(statTree(t, p("dest1")), statTree(t, p(d))); diff != "" {
			t.Errorf("owners, modes and contents of %s differ from root's restore (-root +user):\n%s", d, diff)
		}
		if diff := cmp.Diff(facl(t, p("dest1")), facl(t, p(d))); diff != "" {
			t.Errorf("getfacl -R -n of %s differs from root's restore (-root +user):\n%s", d, diff)
		}
	}
	if got := facl(t, p("dest2")); !strings.Contains(got, fmt.Sprintf("user:%d:rw-", base+1000)) || !strings.Contains(got, fmt.Sprintf("group:%d:r--", base+1001)) {
		t.Errorf("getfacl -R -n dest2: want the ACL ids translated:\n%s", got)
	}
	if r := nscap(t, "", "verify", "--uidmap", target, p("ct.tar"), p("dest2")); r.Code != ExitOK || r.Stdout != "" {
		t.Errorf("verify as root = %+v, want clean", r)
	}
}

// getcapLines runs getcap -r -n on dir and returns its lines relative to
// dir, sorted.
func getcapLines(tb testing.TB, dir string) []string {
	tb.Helper()
	var lines []string
	for l := range strings.SplitSeq(strings.TrimSpace(runTool(tb, "getcap", "-r", "-n", dir)), "\n") {
		if l != "" {
			lines = append(lines, strings.TrimPrefix(l, dir+"/"))
		}
	}
	sort.Strings(lines)
	return lines
}

// statTree describes each entry under dir (but dir's own mtime, which the
// restore's marker file changes): mode, owner, link count, mtime, symlink
// target or content.
func statTree(tb testing.TB, dir string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(q string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(dir, q)
		desc := fmt.Sprintf("%o %d:%d n%d", st.Mode, st.Uid, st.Gid, st.Nlink)
		if rel != "." {
			desc += " " + fi.ModTime().UTC().String()
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(q)
			desc += " -> " + l
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(q)
			if err != nil {
				return err
			}
			desc += " " + string(b)
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// facl returns getfacl -R -n -p of dir with dir's path removed.
func facl(tb testing.TB, dir string) string {
	tb.Helper()
	return strings.ReplaceAll(runTool(tb, "getfacl", "-R", "-n", "-p", dir), dir, "$DEST")
}
