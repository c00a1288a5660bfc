package fcaps_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/sys"
	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

// corpusFile is one line of testdata/audit/corpus.txt.
type corpusFile struct {
	Path   string
	Dir    bool
	Mode   fs.FileMode
	UID    int
	GID    int
	Caps   string
	Expect []string
}

func readCorpus(tb testing.TB) []corpusFile {
	tb.Helper()
	f, err := os.Open("testdata/audit/corpus.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []corpusFile
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		if len(w) == 0 || strings.HasPrefix(w[0], "#") {
			continue
		}
		if len(w) != 7 {
			tb.Fatalf("corpus line %q: want 7 fields", sc.Text())
		}
		mode, err1 := strconv.ParseUint(w[2], 8, 32)
		uid, err2 := strconv.Atoi(w[3])
		gid, err3 := strconv.Atoi(w[4])
		if err1 != nil || err2 != nil || err3 != nil {
			tb.Fatalf("corpus line %q: bad number", sc.Text())
		}
		c := corpusFile{Path: w[0], Dir: w[1] == "dir", Mode: fs.FileMode(mode & 0o777), UID: uid, GID: gid, Caps: w[5]}
		if mode&0o4000 != 0 {
			c.Mode |= fs.ModeSetuid
		}
		if mode&0o1000 != 0 {
			c.Mode |= fs.ModeSticky
		}
		if w[6] != "-" {
			c.Expect = strings.Split(w[6], ",")
		}
		out = append(out, c)
	}
	return out
}

// corpusValue returns the raw security.capability of a corpus CAPS field.
func corpusValue(tb testing.TB, s string) []byte {
	tb.Helper()
	if s == "empty" {
		return []byte{}
	}
	text, root, ns := strings.Cut(s, "@")
	c, err := xattrfmt.ParseFileText(text)
	if err != nil {
		tb.Fatal(err)
	}
	if ns {
		id, err := strconv.ParseUint(root, 10, 32)
		if err != nil {
			tb.Fatal(err)
		}
		c.Revision, c.RootID = xattrfmt.Revision3, uint32(id)
	}
	b, err := xattrfmt.Encode(c)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// buildCorpus creates the corpus under dir, on rfs: create, chown, chmod,
// and set the capability last (chown clears it, and the setuid bit). The
// empty value, which setxattr refuses on recent kernels, is planted raw.
func buildCorpus(tb testing.TB, rfs *testutil.RawFS, dir string, files []corpusFile) {
	tb.Helper()
	raw := map[string][]byte{}
	for _, c := range files {
		p := filepath.Join(dir, c.Path)
		var err error
		if c.Dir {
			err = os.Mkdir(p, 0o700)
		} else {
			err = os.WriteFile(p, []byte("#!/bin/sh\n"), 0o600)
		}
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.Lchown(p, c.UID, c.GID); err != nil {
			tb.Fatal(err)
		}
		if err := os.Chmod(p, c.Mode); err != nil {
			tb.Fatal(err)
		}
		switch c.Caps {
		case "-":
		case "empty":
			raw[p] = corpusValue(tb, c.Caps)
		default:
			if err := syscall.Setxattr(p, fcaps.AttrName, corpusValue(tb, c.Caps), 0); err != nil {
				tb.Fatalf("plant caps on %s: %v", p, err)
			}
		}
	}
	testutil.NoErr(tb, rfs.Plant(fcaps.AttrName, raw))
}

// corpusOptions are the options the corpus is audited with.
func corpusOptions(tb testing.TB, errs *[]string) fcaps.AuditOptions {
	tb.Helper()
	ctr := &userns.Node{NSRef: userns.NSRef{Inode: 4026532999, Dev: 4}, RootID: 300000, RootVisible: true}
	root := &userns.Node{NSRef: userns.NSRef{Inode: 4026531837, Dev: 4}, Self: true, RootVisible: true, Children: []*userns.Node{ctr}}
	ctr.Parent = root
	return fcaps.AuditOptions{
		SubUIDs:    []userns.SubIDRange{{Start: 300000, Count: 65536}},
		Namespaces: []*userns.Node{root},
		Workers:    2,
		Error: func(path string, err error) error {
			*errs = append(*errs, fmt.Sprintf("%s: %v", path, err))
			return nil
		},
	}
}

// byFile groups findings by path relative to the audited root (prefix
// cut), as "RULE severity" strings, sorted.
func byFile(fs []fcaps.Finding, prefix string) map[string][]string {
	out := map[string][]string{}
	for _, f := range fs {
		p := strings.TrimPrefix(f.Path, prefix)
		out[p] = append(out[p], f.Rule.ID+" "+f.Severity().String()+" "+strings.Join(f.Scope.Strings(), ","))
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out
}

// checkCorpus checks that each planted rule fires on its file with its
// severity and that benign files get nothing at medium or above.
func checkCorpus(t *testing.T, files []corpusFile, got map[string][]string) {
	t.Helper()
	for _, c := range files {
		var rules []string
		for _, s := range got[c.Path] {
			f := strings.Fields(s)
			sev, err := fcaps.ParseSeverity(f[1])
			if err != nil {
				t.Fatal(err)
			}
			rule, _ := fcaps.LookupRule(f[0])
			if rule.Severity != sev {
				t.Errorf("%s: finding %s has severity %s, its rule %s", c.Path, f[0], sev, rule.Severity)
			}
			if sev >= fcaps.SeverityLow {
				rules = append(rules, f[0])
			}
			if len(c.Expect) == 0 && sev >= fcaps.SeverityMedium {
				t.Errorf("benign %s: finding %s at %s", c.Path, f[0], sev)
			}
		}
		if diff := cmp.Diff(c.Expect, rules); diff != "" {
			t.Errorf("%s: rules at or above low (-want +got):\n%s\nall: %q", c.Path, diff, got[c.Path])
		}
		if c.Caps != "-" && len(got[c.Path]) == 0 {
			t.Errorf("%s carries caps but got no finding", c.Path)
		}
	}
}

func auditTree(t *testing.T, root string, opts fcaps.AuditOptions) []fcaps.Finding {
	t.Helper()
	var got []fcaps.Finding
	if err := fcaps.Audit(context.Background(), []string{root}, opts, func(f fcaps.Finding) error {
		got = append(got, f)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func auditArchiveBytes(t *testing.T, data []byte, opts fcaps.AuditOptions) []fcaps.Finding {
	t.Helper()
	var got []fcaps.Finding
	if err := fcaps.AuditArchive(context.Background(), bytes.NewReader(data), "x.tar", opts, func(f fcaps.Finding) error {
		got = append(got, f)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestAuditCorpus(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "tar", "bsdtar")
	rfs := testutil.NewRawFS(t)
	root := filepath.Join(rfs.Dir, "corpus")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	files := readCorpus(t)
	buildCorpus(t, rfs, root, files)

	var errs []string
	opts := corpusOptions(t, &errs)
	tree := byFile(auditTree(t, root, opts), root+"/")
	checkCorpus(t, files, tree)
	if len(errs) > 0 {
		t.Errorf("audit errors: %q", errs)
	}
	// Directories above the corpus are root-owned and not writable by
	// others (the RawFS mount point, and t.TempDir above it), so only
	// planted directories are blamed.

	// The same corpus as an archive gives the same findings. The archivers
	// read values with getxattr, which refuses the empty one, so that file
	// alone is left out of them (its archive form is tested with a
	// hand-made tar in TestAuditArchiveRecords).
	want := maps(tree)
	delete(want, "bin/empty")
	gnu := runOut(t, "tar", "--xattrs", "--xattrs-include=*", "--exclude=./bin/empty", "-cpf", "-", "-C", root, ".")
	bsd := runOut(t, "bsdtar", "--exclude", "./bin/empty", "-cf", "-", "-C", root, ".")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	testutil.WriteOK(t)(zw.Write(gnu))
	testutil.NoErr(t, zw.Close())
	var zs bytes.Buffer
	enc, err := zstd.NewWriter(&zs)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WriteOK(t)(enc.Write(bsd))
	testutil.NoErr(t, enc.Close())
	for name, data := range map[string][]byte{"gnu": gnu, "bsdtar": bsd, "gnu.gz": gz.Bytes(), "bsdtar.zst": zs.Bytes()} {
		t.Run(name, func(t *testing.T) {
			got := byFile(auditArchiveBytes(t, data, opts), "x.tar:")
			delete(got, "bin/empty")
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("archive findings differ from the tree's (-tree +archive):\n%s", diff)
			}
		})
	}
}

func maps(m map[string][]string) map[string][]string {
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

func runOut(tb testing.TB, name string, args ...string) []byte {
	tb.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("%s %q: %v: %s", name, args, err, stderr.String())
	}
	return out
}

func TestAuditNonRegular(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	v2 := corpusValue(t, "cap_net_raw+ep")
	link := filepath.Join(dir, "link")
	fifo := filepath.Join(dir, "fifo")
	if err := os.Symlink("/bin/true", link); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := sys.Setxattr(link, fcaps.AttrName, v2, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setxattr(fifo, fcaps.AttrName, v2, 0); err != nil {
		t.Fatal(err)
	}
	got := byFile(auditTree(t, dir, fcaps.AuditOptions{}), dir+"/")
	want := map[string][]string{
		"fifo": {"NSCAP000 info ", "NSCAP007 low "},
		"link": {"NSCAP000 info ", "NSCAP007 low "},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}

// startNS starts sleep in a new user namespace with uid map m (written by
// the Go runtime as root) and returns its namespace.
func startNS(t *testing.T, m string) userns.NSRef {
	t.Helper()
	mp, err := userns.ParseMap(m)
	if err != nil {
		t.Fatal(err)
	}
	var ids []syscall.SysProcIDMap
	for _, e := range mp.Extents() {
		ids = append(ids, syscall.SysProcIDMap{ContainerID: int(e.NsID), HostID: int(e.HostID), Size: int(e.Count)})
	}
	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: ids, GidMappings: ids, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // it may have exited already
		_ = cmd.Wait()         // killed: the status is the kill
	})
	var st syscall.Stat_t
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid), &st); err != nil {
			t.Fatal(err)
		}
		if st.Ino != 4026531837 || time.Now().After(deadline) {
			break
		}
	}
	return userns.NSRef{Inode: st.Ino, Dev: st.Dev}
}

// TestAuditHonouredInLive checks "honoured in" against real namespaces
// from userns.Tree: the namespace whose root is the rootid is listed, one
// that maps the rootid to a non-zero uid is not, and a rootid no namespace
// has is orphaned.
func TestAuditHonouredInLive(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	// Ids unlikely to be used by other tests running at the same time.
	owner := startNS(t, "0:3100000:65536")
	mapsIt := startNS(t, "0:3000000:200000") // maps 3100000 as uid 100000
	for name, v := range map[string]string{"live": "cap_net_raw+ep@3100000", "dead": "cap_net_raw+ep@3900000"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Setxattr(p, fcaps.AttrName, corpusValue(t, v), 0); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := userns.Tree()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]fcaps.Finding{}
	for _, f := range auditTree(t, dir, fcaps.AuditOptions{Namespaces: tree}) {
		got[filepath.Base(f.Path)+" "+f.Rule.ID] = f
	}
	live, ok := got["live NSCAP000"]
	if !ok {
		t.Fatalf("no inventory finding for live: %v", got)
	}
	if !slices.ContainsFunc(live.Scope.Namespaces, func(n userns.NSRef) bool { return n.Inode == owner.Inode && n.Dev == owner.Dev }) {
		t.Errorf("honoured in %v, want it to list %v", live.Scope.Strings(), owner)
	}
	for _, n := range live.Scope.Namespaces {
		if n.Inode == mapsIt.Inode {
			t.Errorf("honoured in %v lists %v, which maps the rootid to uid 100000", live.Scope.Strings(), mapsIt)
		}
	}
	if _, ok := got["live NSCAP004"]; ok {
		t.Error("live rootid reported as orphaned")
	}
	if _, ok := got["dead NSCAP004"]; !ok {
		t.Errorf("dead rootid not reported as orphaned: %v", got)
	}
}

// TestAuditBaselineLive: a baseline written from a live tree compares
// equal with the same tree spelt otherwise, and with GNU tar and bsdtar
// archives of it; a truncated GNU tar archive still yields the findings
// of the members read before the cut.
func TestAuditBaselineLive(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "tar", "bsdtar")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	root := filepath.Join(dir, "rootfs")
	v2 := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	for _, d := range []string{"", "bin", "sbin/deep"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for i := range 12 {
		name := fmt.Sprintf("bin/f%02d", i)
		if i%3 == 0 {
			name = fmt.Sprintf("sbin/deep/g%02d", i)
		}
		p := filepath.Join(root, name)
		// Non-zero content: a cut at a block boundary is then told
		// from the end-of-archive zero blocks.
		if err := os.WriteFile(p, bytes.Repeat([]byte{'x'}, 3000), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Setxattr(p, fcaps.AttrName, v2, 0); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	t.Chdir(dir)

	audit := func(paths ...string) *fcaps.Baseline {
		t.Helper()
		var roots []fcaps.BaselineRoot
		var fs []fcaps.Finding
		collect := func(f fcaps.Finding) error { fs = append(fs, f); return nil }
		for _, p := range paths {
			archive, err := fcaps.IsArchive(p)
			if err != nil {
				t.Fatal(err)
			}
			roots = append(roots, fcaps.BaselineRoot{Path: p, Archive: archive})
			if archive {
				f, err := os.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				err = fcaps.AuditArchive(context.Background(), f, p, fcaps.AuditOptions{}, collect)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
			} else if err := fcaps.Audit(context.Background(), []string{p}, fcaps.AuditOptions{Workers: 2}, collect); err != nil {
				t.Fatal(err)
			}
		}
		b := fcaps.NewBaseline(roots...)
		for _, f := range fs {
			b.Add(f)
		}
		var buf bytes.Buffer
		if _, err := b.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		r, err := fcaps.ReadBaseline(&buf)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	base := audit("rootfs")
	var keys []string
	for k := range base.Files {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if diff := cmp.Diff(names, keys); diff != "" {
		t.Fatalf("baseline keys (-want +got):\n%s", diff)
	}
	runOut(t, "tar", "--xattrs", "--xattrs-include=*", "-cf", "gnu.tar", "-C", "rootfs", ".")
	runOut(t, "bsdtar", "-czf", "bsd.tar.gz", "-C", root, ".")
	runOut(t, "tar", "--xattrs", "--xattrs-include=*", "-cf", "noprefix.tar", "-C", "rootfs", "bin", "sbin")
	for _, spelt := range []string{"rootfs", "./rootfs", "rootfs/", root, "./rootfs/", "../" + filepath.Base(dir) + "/rootfs", "gnu.tar", "bsd.tar.gz", "noprefix.tar"} {
		cur := audit(spelt)
		if got := cur.Diff(base); len(got) != 0 {
			var s []string
			for _, f := range got {
				s = append(s, f.Rule.ID+" "+f.Path)
			}
			t.Errorf("%s against the baseline of rootfs: %q, want nothing", spelt, s)
		}
		// And the other way round.
		if got := base.Diff(cur); len(got) != 0 {
			t.Errorf("rootfs against the baseline of %s: %d findings, want none", spelt, len(got))
		}
	}

	// Truncated: the findings before the cut, then ErrBadArchive.
	data, err := os.ReadFile("gnu.tar")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, cut := range []int{20000, 20480, len(data) / 2} {
		cmd := exec.Command("tar", "-tf", "-")
		cmd.Stdin = bytes.NewReader(data[:cut])
		out, _ := cmd.Output() // tar fails on the cut, after listing
		var got []string
		err := fcaps.AuditArchive(context.Background(), bytes.NewReader(data[:cut]), "cut.tar", fcaps.AuditOptions{}, func(f fcaps.Finding) error {
			if f.Rule.ID == fcaps.RuleCapabilities {
				got = append(got, f.Rel)
			}
			return nil
		})
		if !errors.Is(err, fcaps.ErrBadArchive) {
			t.Errorf("cut at %d: error %v, want ErrBadArchive", cut, err)
		}
		clear(listed)
		for l := range strings.Lines(string(out)) {
			listed[strings.TrimPrefix(strings.TrimSpace(l), "./")] = true
		}
		var want []string
		for _, n := range names {
			if listed[n] {
				want = append(want, n)
			}
		}
		slices.Sort(got)
		if len(want) == 0 || !cmp.Equal(want, got) {
			t.Errorf("cut at %d: findings for %v, want the files tar -t lists with caps %v", cut, got, want)
		}
	}
}

// TestIsArchiveByName: a file named like an archive is an archive even
// when its bytes are not (so the audit reports it damaged, not clean); a
// file named otherwise needs the bytes.
func TestIsArchiveByName(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	junk := bytes.Repeat([]byte{0x5a}, 3000)
	for name, want := range map[string]bool{"junk.tar": true, "junk.tar.zst": true, "junk.tgz": true, "junk.bin": false} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, junk, 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := fcaps.IsArchive(p); err != nil || got != want {
			t.Errorf("IsArchive(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
}
