package cli

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

func TestNewAuditCmd(t *testing.T) {
	m, _ := userns.ParseMap("0:100000:65536")
	high := fcaps.SeverityHigh
	tests := []struct {
		argv    string
		want    *auditOptions
		wantErr string
	}{
		{argv: "", wantErr: "missing PATH"},
		{argv: "--explain NSCAP001", want: &auditOptions{Paths: []string{}, Explain: "NSCAP001", SubUIDFile: "/etc/subuid"}},
		{argv: "--explain NSCAP001 x", wantErr: "--explain takes no PATH"},
		{argv: "--json --sarif x", wantErr: "--json and --sarif exclude each other"},
		{argv: "--fail-on severe x", wantErr: `--fail-on: fcaps: unknown severity "severe" (want one of info, low, medium, high, critical)`},
		{argv: "--min-severity x y", wantErr: `--min-severity: fcaps: unknown severity "x" (want one of info, low, medium, high, critical)`},
		{argv: "--uidmap 0:1 x", wantErr: "--uidmap: "},
		{
			argv: "--fail-on HIGH --min-severity medium --uidmap 0:100000:65536 --sarif --xdev --baseline b --write-baseline w --subuid s a b.tar",
			want: &auditOptions{
				Paths: []string{"a", "b.tar"}, FailOn: &high, MinSeverity: fcaps.SeverityMedium, UIDMap: m,
				SARIF: true, XDev: true, Baseline: "b", WriteBaseline: "w", SubUIDFile: "s",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.argv, func(t *testing.T) {
			got, err := parseCmd(t, newAuditCmd, tc.argv)
			if tc.wantErr != "" {
				var fe *FlagError
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) || !errors.As(err, &fe) {
					t.Fatalf("audit %s: error %v, want a FlagError starting %q", tc.argv, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("audit %s: %v", tc.argv, err)
			}
			got.IO, got.Version, got.Namespaces, got.Binfmt = nil, "", nil, nil
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("audit %s options (-want +got):\n%s", tc.argv, diff)
			}
		})
	}
}

func TestAuditExplain(t *testing.T) {
	res := nscap(t, "", "audit", "--explain", "host-scoped-in-container")
	if res.Code != ExitOK || !strings.HasPrefix(res.Stdout, "NSCAP001 host-scoped-in-container (critical)\n") ||
		!strings.Contains(res.Stdout, "nscap set --uidmap") {
		t.Errorf("--explain: %+v", res)
	}
	res = nscap(t, "", "audit", "--explain", "all")
	for _, r := range fcaps.Rules() {
		if !strings.Contains(res.Stdout, r.ID+" "+r.Name+" ("+r.Severity.String()+")\n") {
			t.Errorf("--explain all lacks %s", r.ID)
		}
	}
	res = nscap(t, "", "audit", "--explain", "NSCAP999")
	if res.Code != ExitUsage || !strings.Contains(res.Stderr, `unknown rule "NSCAP999"`) {
		t.Errorf("--explain NSCAP999: %+v", res)
	}
}

// buildAuditCorpus creates the audit corpus of fcaps/testdata/audit under
// corpus in rfs (see that file): create, chown, chmod, caps last. The
// empty value, which setxattr refuses on recent kernels, is planted raw.
func buildAuditCorpus(tb testing.TB, rfs *testutil.RawFS) string {
	tb.Helper()
	dir := rfs.Dir
	raw := map[string][]byte{}
	f, err := os.Open("../../fcaps/testdata/audit/corpus.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	root := filepath.Join(dir, "corpus")
	if err := os.Mkdir(root, 0o755); err != nil {
		tb.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		if len(w) == 0 || strings.HasPrefix(w[0], "#") {
			continue
		}
		p := filepath.Join(root, w[0])
		mode, _ := strconv.ParseUint(w[2], 8, 32)
		uid, _ := strconv.Atoi(w[3])
		gid, _ := strconv.Atoi(w[4])
		if w[1] == "dir" {
			err = os.Mkdir(p, 0o700)
		} else {
			err = os.WriteFile(p, []byte("#!/bin/sh\n"), 0o600)
		}
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			tb.Fatal(err)
		}
		// syscall.Chmod takes the raw st_mode bits (setuid, sticky).
		if err := syscall.Chmod(p, uint32(mode)); err != nil {
			tb.Fatal(err)
		}
		if w[5] == "-" {
			continue
		}
		if w[5] == "empty" {
			raw[p] = []byte{}
			continue
		}
		text, rootid, ns := strings.Cut(w[5], "@")
		c, err := xattrfmt.ParseFileText(text)
		if err != nil {
			tb.Fatal(err)
		}
		if ns {
			id, _ := strconv.ParseUint(rootid, 10, 32)
			c.Revision, c.RootID = xattrfmt.Revision3, uint32(id)
		}
		val, err := xattrfmt.Encode(c)
		if err != nil {
			tb.Fatal(err)
		}
		if err := syscall.Setxattr(p, "security.capability", val, 0); err != nil {
			tb.Fatal(err)
		}
	}
	testutil.NoErr(tb, rfs.Plant(testutil.CapAttr, raw))
	return root
}

// fakeNamespaces is a fixed live-namespace list: the caller's and one
// container whose root is 300000, so that output is stable.
func fakeNamespaces() ([]*userns.Node, error) {
	ctr := &userns.Node{NSRef: userns.NSRef{Inode: 4026532999, Dev: 4}, RootID: 300000, RootVisible: true, PIDs: []int{42}}
	root := &userns.Node{NSRef: userns.NSRef{Inode: 4026531837, Dev: 4}, Self: true, RootVisible: true, Children: []*userns.Node{ctr}}
	ctr.Parent = root
	return []*userns.Node{root}, nil
}

func runAuditT(tb testing.TB, opts *auditOptions) (result, error) {
	tb.Helper()
	ios, _, out, errOut := Test()
	opts.IO = ios
	if opts.Version == "" {
		opts.Version = "test"
	}
	if opts.SubUIDFile == "" {
		opts.SubUIDFile = "testdata/audit_subuid"
	}
	if opts.Namespaces == nil {
		opts.Namespaces = fakeNamespaces
	}
	err := runAudit(context.Background(), opts)
	return result{Code: exitCodeFor(err), Stdout: out.String(), Stderr: errOut.String()}, err
}

// TestRunAuditGolden audits the corpus (relative path, stable order) and
// compares the three output formats with golden files.
func TestRunAuditGolden(t *testing.T) {
	testutil.RequireRoot(t)
	rfs := testutil.NewRawFS(t)
	dir := rfs.Dir
	buildAuditCorpus(t, rfs)
	abs, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	subuid := filepath.Join(abs, "audit_subuid")

	for _, tc := range []struct {
		golden string
		opts   auditOptions
	}{
		{"audit_table", auditOptions{}},
		{"audit_json", auditOptions{JSON: true}},
		{"audit_sarif", auditOptions{SARIF: true}},
		{"audit_table_medium", auditOptions{MinSeverity: fcaps.SeverityMedium}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			tc.opts.Paths, tc.opts.SubUIDFile = []string{"corpus"}, subuid
			res, err := runAuditT(t, &tc.opts)
			if err != nil {
				t.Fatalf("runAudit: %v\n%s", err, res.Stderr)
			}
			t.Chdir(abs + "/..")
			golden(t, tc.golden, res.Stdout)
		})
	}

	// JSON Lines: every line is an object with the documented fields.
	res, _ := runAuditT(t, &auditOptions{Paths: []string{"corpus"}, JSON: true, SubUIDFile: subuid})
	for line := range strings.Lines(res.Stdout) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		if m["type"] == "finding" {
			for _, k := range []string{"rule", "severity", "path", "message", "honoured_in"} {
				if _, ok := m[k]; !ok {
					t.Errorf("JSON finding lacks %q: %s", k, line)
				}
			}
		}
	}
	// SARIF: valid JSON with version 2.1.0 and one result per finding.
	res, _ = runAuditT(t, &auditOptions{Paths: []string{"corpus"}, SARIF: true, SubUIDFile: subuid})
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Results []struct {
				RuleID string `json:"ruleId"`
				Level  string `json:"level"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &log); err != nil || log.Version != "2.1.0" || len(log.Runs) != 1 || len(log.Runs[0].Results) == 0 {
		t.Errorf("SARIF log: %v %+v", err, log)
	}
}

func TestRunAuditExitAndBaseline(t *testing.T) {
	testutil.RequireRoot(t)
	rfs := testutil.NewRawFS(t)
	dir := rfs.Dir
	root := buildAuditCorpus(t, rfs)
	high, crit := fcaps.SeverityHigh, fcaps.SeverityCritical

	res, err := runAuditT(t, &auditOptions{Paths: []string{root}, FailOn: &high})
	if res.Code != ExitFindings {
		t.Errorf("--fail-on high on the corpus: exit %d (%v), want 3", res.Code, err)
	}
	benign := filepath.Join(root, "bin", "ping")
	res, err = runAuditT(t, &auditOptions{Paths: []string{benign}, FailOn: &crit})
	if res.Code != ExitOK || !strings.Contains(res.Stdout, "NSCAP000") {
		t.Errorf("--fail-on critical on a benign file: exit %d (%v), stdout %q", res.Code, err, res.Stdout)
	}
	res, _ = runAuditT(t, &auditOptions{Paths: []string{filepath.Join(dir, "missing")}})
	if res.Code != ExitError || !strings.Contains(res.Stderr, "nscap: audit "+filepath.Join(dir, "missing")+": ") {
		t.Errorf("missing path: %+v", res)
	}

	// Baseline: write, change the tree, compare.
	bl := filepath.Join(dir, "baseline.json")
	if res, err := runAuditT(t, &auditOptions{Paths: []string{root}, WriteBaseline: bl}); err != nil {
		t.Fatalf("--write-baseline: %v %+v", err, res)
	}
	data, err := os.ReadFile(bl)
	if err != nil || !bytes.Contains(data, []byte(`"rootid": 300000`)) || !bytes.Contains(data, []byte(`"state": "unreadable"`)) {
		t.Errorf("baseline file: %v\n%s", err, data)
	}
	if err := syscall.Removexattr(benign, "security.capability"); err != nil {
		t.Fatal(err)
	}
	added := filepath.Join(root, "bin", "plain")
	if err := syscall.Setxattr(added, "security.capability", []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0); err != nil {
		t.Fatal(err)
	}
	med := fcaps.SeverityMedium
	res, _ = runAuditT(t, &auditOptions{Paths: []string{root}, Baseline: bl, JSON: true, MinSeverity: fcaps.SeverityLow, FailOn: &med})
	var got []string
	for line := range strings.Lines(res.Stdout) {
		var r auditRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(r.Rule, "NSCAP1") {
			got = append(got, r.Rule+" "+strings.TrimPrefix(r.Path, root+"/"))
		}
	}
	if diff := cmp.Diff([]string{"NSCAP102 bin/ping", "NSCAP101 bin/plain"}, got); diff != "" || res.Code != ExitFindings {
		t.Errorf("--baseline findings (-want +got), exit %d:\n%s", res.Code, diff)
	}
}

// truncatedArchive writes a tar archive of n files with caps
// cap_net_raw=ep and non-zero content, cut in the data of the member
// keep (0-based): members 0..keep are readable, later ones are lost.
func truncatedArchive(t *testing.T, path string, n, keep int) {
	t.Helper()
	v2 := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	cut := 0
	for i := range n {
		h := &tar.Header{
			Name: fmt.Sprintf("./bin/f%d", i), Mode: 0o755, Size: 3000, Format: tar.FormatPAX,
			PAXRecords: map[string]string{"SCHILY.xattr.security.capability": string(v2)},
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if i == keep {
			_ = tw.Flush() // "missed writing" before the data: a no-op; the header is in buf already
			cut = buf.Len() + 1000
		}
		testutil.WriteOK(t)(tw.Write(bytes.Repeat([]byte{'x'}, 3000)))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes()[:cut], 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRunAuditTruncatedArchive: the findings of the members read before
// the damage are reported; exit 1 for the error, 3 when a finding is at
// or above --fail-on (which wins).
func TestRunAuditTruncatedArchive(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "trunc.tar")
	truncatedArchive(t, p, 6, 2)
	info := fcaps.SeverityInfo
	high := fcaps.SeverityHigh
	for _, tc := range []struct {
		failOn *fcaps.Severity
		code   ExitCode
	}{{nil, ExitError}, {&high, ExitError}, {&info, ExitFindings}} {
		res, _ := runAuditT(t, &auditOptions{Paths: []string{p}, FailOn: tc.failOn})
		var got []string
		for l := range strings.Lines(res.Stdout) {
			if f := strings.Fields(l); len(f) > 2 && f[1] == "NSCAP000" {
				got = append(got, f[2])
			}
		}
		want := []string{p + ":bin/f0", p + ":bin/f1", p + ":bin/f2"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("--fail-on %v: findings (-want +got):\n%s", tc.failOn, diff)
		}
		if res.Code != tc.code {
			t.Errorf("--fail-on %v: exit %d, want %d", tc.failOn, res.Code, tc.code)
		}
		if !strings.Contains(res.Stderr, "nscap: audit "+p+": ") || !strings.Contains(res.Stderr, "malformed archive: unexpected EOF") ||
			!strings.Contains(res.Stderr, "nscap: audit: 3 findings (3 info) in 3 files with capabilities") {
			t.Errorf("--fail-on %v: stderr %q", tc.failOn, res.Stderr)
		}
	}
}

// TestRunAuditBaselineSpellings: a baseline written for a tree compares
// equal with the tree however it is spelt and with a tar archive of it.
func TestRunAuditBaselineSpellings(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "tar")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	root := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	v2 := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	for _, n := range []string{"ping", "arping"} {
		p := filepath.Join(root, "bin", n)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Setxattr(p, "security.capability", v2, 0); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	if out, err := exec.Command("tar", "--xattrs", "--xattrs-include=*", "-cf", "rootfs.tar", "-C", "rootfs", ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	if res, err := runAuditT(t, &auditOptions{Paths: []string{"rootfs"}, WriteBaseline: "base.json"}); err != nil {
		t.Fatalf("--write-baseline: %v %+v", err, res)
	}
	data, err := os.ReadFile("base.json")
	if err != nil || !bytes.Contains(data, []byte(`"bin/ping": {`)) || !bytes.Contains(data, []byte(`"version": 2`)) || !bytes.Contains(data, []byte(`"path": "rootfs"`)) {
		t.Errorf("baseline file: %v\n%s", err, data)
	}
	low := fcaps.SeverityLow
	for _, spelt := range []string{"rootfs", "./rootfs", root, "rootfs/", "rootfs.tar"} {
		res, err := runAuditT(t, &auditOptions{Paths: []string{spelt}, Baseline: "base.json", MinSeverity: low, FailOn: &low})
		if err != nil || strings.Contains(res.Stdout, "NSCAP10") {
			t.Errorf("--baseline base.json %s: exit %d (%v), want no NSCAP10x:\n%s%s", spelt, res.Code, err, res.Stdout, res.Stderr)
		}
	}
	// A change is still seen, named as the current audit names the file.
	if err := syscall.Removexattr(filepath.Join(root, "bin", "arping"), "security.capability"); err != nil {
		t.Fatal(err)
	}
	res, _ := runAuditT(t, &auditOptions{Paths: []string{"./rootfs/"}, Baseline: "base.json", MinSeverity: low, FailOn: &low})
	if res.Code != ExitFindings || !strings.Contains(res.Stdout, "NSCAP102  ./rootfs/bin/arping ") {
		t.Errorf("removed caps against the baseline: exit %d\n%s", res.Code, res.Stdout)
	}
}

// TestRunAuditImage audits a generated OCI layout and docker save
// tarball: findings name their layer, the summary says the image needs no
// map, and the whiteout-deleted capped file is not reported.
func TestRunAuditImage(t *testing.T) {
	dir := t.TempDir()
	v2 := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	v3 := []byte{1, 0, 0, 3, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa0, 0x86, 0x01, 0}
	layers := []testutil.Layer{
		{Compression: "gzip", Files: []testutil.LayerFile{
			{Name: "bin", Dir: true, Mode: 0o755},
			{Name: "bin/ping", Mode: 0o755, Cap: v2},
			{Name: "bin/gone", Mode: 0o755, Cap: v2},
		}},
		{Compression: "zstd", Files: []testutil.LayerFile{{Name: "bin/.wh.gone"}}},
		{Files: []testutil.LayerFile{{Name: "bin/built-in-userns", Mode: 0o755, Cap: v3}}},
	}
	layout := filepath.Join(dir, "layout")
	built := testutil.WriteOCILayout(t, layout, "x:1", layers)
	medium := fcaps.SeverityMedium
	res, err := runAuditT(t, &auditOptions{Paths: []string{layout}, JSON: true, FailOn: &medium})
	if res.Code != ExitFindings {
		t.Fatalf("exit %d (%v), want 3 (NSCAP009 is medium)\n%s%s", res.Code, err, res.Stdout, res.Stderr)
	}
	var got []string
	var sum auditSummary
	for line := range strings.Lines(res.Stdout) {
		var r auditRecord
		testutil.NoErr(t, json.Unmarshal([]byte(line), &r))
		if r.Type == "summary" {
			testutil.NoErr(t, json.Unmarshal([]byte(line), &sum))
			continue
		}
		got = append(got, r.Rule+" "+strings.TrimPrefix(r.Path, layout+":")+" "+r.Layer)
	}
	want := []string{
		"NSCAP000 bin/built-in-userns " + built[2].Digest,
		"NSCAP009 bin/built-in-userns " + built[2].Digest,
		"NSCAP000 bin/ping " + built[0].Digest,
	}
	slices.Sort(got)
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	if len(sum.Maps) != 1 || sum.Maps[0].Source != fcaps.MapImage {
		t.Errorf("summary maps %+v, want one of source image", sum.Maps)
	}

	tarball := filepath.Join(dir, "saved.tar")
	saved := testutil.WriteDockerArchive(t, tarball, "x:1", layers)
	res, _ = runAuditT(t, &auditOptions{Paths: []string{tarball}, MinSeverity: fcaps.SeverityMedium})
	if !strings.Contains(res.Stdout, "NSCAP009  "+tarball+":bin/built-in-userns") || !strings.Contains(res.Stdout, saved[2].DiffID) ||
		strings.Contains(res.Stdout, "gone") {
		t.Errorf("docker archive table:\n%s", res.Stdout)
	}
}

// TestRunAuditBinfmt: with --pid, the binfmt_misc instance of that
// process's namespaces is read (a test user namespace mounting its own,
// Linux 6.7), and the JSON records say how a capped foreign binary runs.
func TestRunAuditBinfmt(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	interp := filepath.Join(dir, "interp")
	testutil.NoErr(t, os.WriteFile(interp, []byte("#!/bin/sh\n"), 0o755))
	magic, mask := testutil.BinfmtMagic(uint16(elf.EM_RISCV))
	pid := testutil.BinfmtNS(t, 3500000, []string{fmt.Sprintf(":nscap-cli-test:M::%s:%s:%s:C", magic, mask, interp)})
	tree := filepath.Join(dir, "tree")
	testutil.NoErr(t, os.Mkdir(tree, 0o755))
	p := filepath.Join(tree, "rvping")
	testutil.NoErr(t, os.WriteFile(p, testutil.ELFHeader(uint16(elf.EM_RISCV)), 0o755))
	testutil.NoErr(t, syscall.Setxattr(p, "security.capability", []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0))

	res, err := runAuditT(t, &auditOptions{Paths: []string{tree}, PID: pid, JSON: true, Binfmt: fcaps.ReadBinfmt})
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Stderr)
	}
	var found bool
	var sum auditSummary
	for line := range strings.Lines(res.Stdout) {
		var r auditRecord
		testutil.NoErr(t, json.Unmarshal([]byte(line), &r))
		if r.Type == "summary" {
			testutil.NoErr(t, json.Unmarshal([]byte(line), &sum))
		}
		if r.Rule == fcaps.RuleForeignArch {
			found = true
			if r.Binfmt == nil || !r.Binfmt.Honoured || r.Binfmt.Entry != "nscap-cli-test" || r.Binfmt.Interpreter != interp || r.Severity != "info" {
				t.Errorf("NSCAP010 record: %s", line)
			}
		}
	}
	if !found {
		t.Errorf("no NSCAP010 record:\n%s", res.Stdout)
	}
	if sum.Binfmt == nil || sum.Binfmt.Dir != fmt.Sprintf("/proc/%d/root/proc/sys/fs/binfmt_misc", pid) || len(sum.Binfmt.Entries) != 1 {
		t.Errorf("summary binfmt %+v", sum.Binfmt)
	}
	if len(sum.Maps) != 1 || sum.Maps[0].UIDMap.String() != "0:3500000:65536" {
		t.Errorf("summary maps %+v, want the map of pid %d", sum.Maps, pid)
	}
}
