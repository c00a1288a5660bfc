package fcaps_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

// fakeTree is a live-namespace tree for the pure tests:
//
//	init (self, root 0)
//	├── A  user:[100] root 100000
//	│   ├── A1 user:[101] root 101000 (nested)
//	│   └── A2 user:[102] root 100000 (same root as A)
//	├── B  user:[200] root 50000, maps 100000 as 50000 (not honoured)
//	└── C  user:[300] root 100000 (another namespace with A's root)
func fakeTree() []*userns.Node {
	node := func(ino uint64, root uint32, kids ...*userns.Node) *userns.Node {
		n := &userns.Node{NSRef: userns.NSRef{Inode: ino, Dev: 4}, RootID: root, RootVisible: true, Children: kids}
		for _, k := range kids {
			k.Parent = n
		}
		return n
	}
	mapB, _ := userns.ParseMap("0:50000:100000")
	b := node(200, 50000)
	b.UIDMap = mapB
	initNS := node(4026531837, 0,
		node(100, 100000, node(101, 101000), node(102, 100000)),
		b,
		node(300, 100000))
	initNS.Self = true
	return []*userns.Node{initNS}
}

func caps(tb testing.TB, text string, rev xattrfmt.Revision, rootid uint32) xattrfmt.FileCaps {
	tb.Helper()
	c, err := xattrfmt.ParseFileText(text)
	if err != nil {
		tb.Fatal(err)
	}
	c.Revision, c.RootID = rev, rootid
	return c
}

// summary is a finding reduced to what the rule tests check.
type summary struct {
	Rule     string
	Severity string
	In       string
}

func summarise(fs []fcaps.Finding) []summary {
	out := []summary{}
	for _, f := range fs {
		out = append(out, summary{f.Rule.ID, f.Severity().String(), strings.Join(f.Scope.Strings(), ",")})
	}
	return out
}

func TestAuditorCheck(t *testing.T) {
	t.Parallel()
	rootDirs := []fcaps.DirInfo{{Path: "/usr/bin", Mode: fs.ModeDir | 0o755}, {Path: "/", Mode: fs.ModeDir | 0o755}}
	m, _ := userns.ParseMap("0:100000:65536")
	netRaw := caps(t, "cap_net_raw+ep", 2, 0)
	ns := func(rootid uint32) xattrfmt.FileCaps { return caps(t, "cap_net_raw+ep", 3, rootid) }
	tests := []struct {
		name string
		opts fcaps.AuditOptions
		e    fcaps.Entry
		want []summary
	}{
		{
			"benign-host",
			fcaps.AuditOptions{},
			fcaps.Entry{Mode: 0o755, Caps: netRaw, Dirs: rootDirs},
			[]summary{{"NSCAP000", "info", "all"}},
		},
		{
			"honoured-in-root-and-descendants",
			fcaps.AuditOptions{Namespaces: fakeTree()},
			fcaps.Entry{Mode: 0o755, Caps: ns(100000), Dirs: rootDirs},
			// A, A1 (child), A2 and C; not B, which maps 100000 as 50000.
			[]summary{{"NSCAP000", "info", "user:[100],user:[101],user:[102],user:[300]"}},
		},
		{
			"honoured-in-nested-only",
			fcaps.AuditOptions{Namespaces: fakeTree()},
			fcaps.Entry{Mode: 0o755, Caps: ns(101000), Dirs: rootDirs},
			[]summary{{"NSCAP000", "info", "user:[101]"}},
		},
		{
			"rootid-0-is-host-scoped",
			fcaps.AuditOptions{UIDMap: m},
			fcaps.Entry{Mode: 0o755, UID: 100000, GID: 100000, Caps: ns(0)},
			[]summary{{"NSCAP001", "critical", "all"}, {"NSCAP000", "info", "all"}},
		},
		{
			"container-root-owner-ok",
			fcaps.AuditOptions{UIDMap: m, Namespaces: fakeTree()},
			fcaps.Entry{Mode: 0o755, UID: 100000, GID: 100000, Caps: ns(100000), Dirs: []fcaps.DirInfo{{Mode: fs.ModeDir | 0o755, UID: 100000, GID: 100000}}},
			[]summary{{"NSCAP000", "info", "user:[100],user:[101],user:[102],user:[300]"}},
		},
		{
			"container-non-root-owner",
			fcaps.AuditOptions{UIDMap: m},
			fcaps.Entry{Mode: 0o755, UID: 100033, GID: 100000, Caps: ns(100000)},
			[]summary{{"NSCAP002", "critical", "container-root"}, {"NSCAP000", "info", "container-root"}},
		},
		{
			// Only the root of the nested scope, container uid 1000,
			// could rewrite the file: no escalation.
			"nested-scope-root-owner",
			fcaps.AuditOptions{UIDMap: m},
			fcaps.Entry{Mode: 0o775, UID: 101000, GID: 101000, Caps: ns(101000), Dirs: []fcaps.DirInfo{{Mode: fs.ModeDir | 0o755, UID: 101000, GID: 101000}, {Mode: fs.ModeDir | 0o755, UID: 100000}}},
			[]summary{{"NSCAP000", "info", "container-uid:1000"}},
		},
		{
			"nested-scope-root-owner-live",
			fcaps.AuditOptions{UIDMap: m, Namespaces: fakeTree()},
			fcaps.Entry{Mode: 0o755, UID: 101000, GID: 101000, Caps: ns(101000), Dirs: []fcaps.DirInfo{{Mode: fs.ModeDir | 0o755, UID: 100000}}},
			[]summary{{"NSCAP000", "info", "user:[101]"}},
		},
		{
			"nested-scope-other-owner",
			fcaps.AuditOptions{UIDMap: m},
			fcaps.Entry{Mode: 0o755, UID: 101001, GID: 101000, Caps: ns(101000)},
			[]summary{{"NSCAP002", "critical", "container-uid:1000"}, {"NSCAP000", "info", "container-uid:1000"}},
		},
		{
			// Host-scoped caps: the nested root is no root for them.
			"host-scoped-nested-owner",
			fcaps.AuditOptions{UIDMap: m},
			fcaps.Entry{Mode: 0o755, UID: 101000, GID: 100000, Caps: ns(0)},
			[]summary{{"NSCAP001", "critical", "all"}, {"NSCAP002", "critical", "all"}, {"NSCAP000", "info", "all"}},
		},
		{
			"guessed-map-owner-capped",
			fcaps.AuditOptions{UIDMap: m, MapGuessed: true},
			fcaps.Entry{Mode: 0o755, UID: 100033, GID: 100000, Caps: ns(100000)},
			[]summary{{"NSCAP002", "low", "container-root"}, {"NSCAP000", "info", "container-root"}},
		},
		{
			"guessed-map-world-writable-not-capped",
			fcaps.AuditOptions{UIDMap: m, MapGuessed: true},
			fcaps.Entry{Mode: 0o757, UID: 100000, GID: 100000, Caps: ns(100000)},
			[]summary{{"NSCAP002", "critical", "container-root"}, {"NSCAP000", "info", "container-root"}},
		},
		{
			"guessed-map-host-scoped-capped",
			fcaps.AuditOptions{UIDMap: m, MapGuessed: true},
			fcaps.Entry{Mode: 0o755, UID: 100000, GID: 100000, Caps: netRaw},
			[]summary{{"NSCAP001", "low", "all"}, {"NSCAP000", "info", "all"}},
		},
		{
			// Without a live namespace with its root, a subordinate
			// range makes a guess only: capped at low.
			"subuid-owner-host-scoped",
			fcaps.AuditOptions{SubUIDs: []userns.SubIDRange{{Start: 300000, Count: 65536}}},
			fcaps.Entry{Mode: 0o755, UID: 300000, GID: 300000, Caps: netRaw},
			[]summary{{"NSCAP001", "low", "all"}, {"NSCAP000", "info", "all"}},
		},
		{
			// root:100000:1000000 (LXD, Incus): a rootfs at 200000 has
			// root 200000 (its top directory's owner), not 100000.
			"subuid-lxd-range-rootfs-at-200000",
			fcaps.AuditOptions{SubUIDs: []userns.SubIDRange{{Start: 100000, Count: 1000000}}, Namespaces: fakeTree()},
			fcaps.Entry{
				Mode: 0o755, UID: 200000, GID: 200000, Caps: ns(200000),
				Dirs: []fcaps.DirInfo{{Mode: fs.ModeDir | 0o755, UID: 200000, GID: 200000}, {Mode: fs.ModeDir | 0o755, UID: 200000, GID: 200000}, {Mode: fs.ModeDir | 0o755}},
			},
			[]summary{{"NSCAP000", "info", "container-root"}},
		},
		{
			"orphan-outside-map",
			fcaps.AuditOptions{UIDMap: m, Namespaces: fakeTree()},
			fcaps.Entry{Mode: 0o755, UID: 100000, GID: 100000, Caps: ns(200000)},
			[]summary{{"NSCAP004", "medium", ""}, {"NSCAP000", "info", ""}},
		},
		{
			"dead-but-inside-map-not-orphan",
			fcaps.AuditOptions{UIDMap: m, Namespaces: fakeTree()},
			fcaps.Entry{Mode: 0o755, UID: 100000, GID: 100000, Caps: ns(102000)},
			[]summary{{"NSCAP000", "info", "container-uid:2000"}},
		},
		{
			"orphan-unknown-without-namespaces",
			fcaps.AuditOptions{},
			fcaps.Entry{Mode: 0o755, Caps: ns(4000000)},
			[]summary{{"NSCAP000", "info", "unknown"}},
		},
		{
			"root-equivalent",
			fcaps.AuditOptions{},
			fcaps.Entry{Mode: 0o755, Caps: caps(t, "cap_bpf,cap_net_raw+p", 2, 0)},
			[]summary{{"NSCAP003", "high", "all"}, {"NSCAP000", "info", "all"}},
		},
		{
			"setgid",
			fcaps.AuditOptions{},
			fcaps.Entry{Mode: fs.ModeSetgid | 0o755, Caps: netRaw},
			[]summary{{"NSCAP005", "medium", "all"}, {"NSCAP000", "info", "all"}},
		},
		{
			"group-writable-root-group",
			fcaps.AuditOptions{},
			fcaps.Entry{Mode: 0o775, Caps: netRaw},
			[]summary{{"NSCAP000", "info", "all"}},
		},
		{
			"dir-sticky-owned-by-user",
			fcaps.AuditOptions{},
			fcaps.Entry{Mode: 0o755, Caps: netRaw, Dirs: []fcaps.DirInfo{{Mode: fs.ModeDir | fs.ModeSticky | 0o1777, UID: 1000}}},
			[]summary{{"NSCAP002", "critical", "all"}, {"NSCAP000", "info", "all"}},
		},
		{
			"dir-group-writable",
			fcaps.AuditOptions{},
			fcaps.Entry{Mode: 0o755, Caps: netRaw, Dirs: []fcaps.DirInfo{{Mode: fs.ModeDir | 0o755}, {Mode: fs.ModeDir | 0o775, GID: 50}}},
			[]summary{{"NSCAP002", "critical", "all"}, {"NSCAP000", "info", "all"}},
		},
		{
			"unreadable-live",
			fcaps.AuditOptions{},
			fcaps.Entry{Mode: 0o755, CapsErr: &fs.PathError{Op: "getxattr", Path: "x", Err: &fcaps.Error{Kind: fcaps.ErrUnreadable}}},
			[]summary{{"NSCAP006", "high", "unknown"}},
		},
		{
			"not-visible",
			fcaps.AuditOptions{},
			fcaps.Entry{Mode: 0o755, CapsErr: &fs.PathError{Op: "getxattr", Path: "x", Err: &fcaps.Error{Kind: fcaps.ErrNotVisible}}},
			[]summary{{"NSCAP008", "info", "unknown"}},
		},
		{
			"raw-empty",
			fcaps.AuditOptions{},
			fcaps.Entry{Mode: 0o755, Raw: []byte{}},
			[]summary{{"NSCAP006", "high", ""}},
		},
		{
			"raw-v1-still-honoured",
			fcaps.AuditOptions{},
			fcaps.Entry{Mode: 0o755, Raw: []byte{1, 0, 0, 1, 0, 0x20, 0, 0, 0, 0, 0, 0}},
			[]summary{{"NSCAP006", "high", "all"}, {"NSCAP000", "info", "all"}},
		},
		{
			"raw-stray-flags",
			fcaps.AuditOptions{},
			fcaps.Entry{Mode: 0o755, Raw: []byte{1, 1, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
			[]summary{{"NSCAP006", "high", "unknown"}},
		},
		{
			"symlink",
			fcaps.AuditOptions{},
			fcaps.Entry{Mode: fs.ModeSymlink | 0o777, UID: 1000, Caps: caps(t, "cap_sys_admin+ep", 2, 0)},
			[]summary{{"NSCAP007", "low", ""}, {"NSCAP000", "info", ""}},
		},
		{
			"relative-archive-v2",
			fcaps.AuditOptions{},
			fcaps.Entry{Mode: 0o755, Caps: netRaw, Relative: true, RelMap: m},
			[]summary{{"NSCAP000", "info", "restore-target"}},
		},
		{
			"relative-archive-nested-unmapped",
			fcaps.AuditOptions{},
			fcaps.Entry{Mode: 0o755, Caps: ns(70000), Relative: true, RelMap: m},
			[]summary{{"NSCAP004", "medium", "restore-target-uid:70000"}, {"NSCAP000", "info", "restore-target-uid:70000"}},
		},
		{
			"archive-marked-host-scoped",
			fcaps.AuditOptions{},
			fcaps.Entry{Mode: 0o755, Caps: netRaw, Container: "in an nscap archive"},
			[]summary{{"NSCAP001", "critical", "all"}, {"NSCAP000", "info", "all"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.e.Path = "f"
			got := summarise(fcaps.NewAuditor(tc.opts).Check(tc.e))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Check(%+v) mismatch (-want +got):\n%s", tc.e, diff)
			}
		})
	}
}

func TestSeverityAndRules(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"info", "low", "medium", "high", "critical", "HIGH"} {
		s, err := fcaps.ParseSeverity(name)
		if err != nil || s.String() != strings.ToLower(name) {
			t.Errorf("ParseSeverity(%q) = %v, %v", name, s, err)
		}
	}
	if _, err := fcaps.ParseSeverity("severe"); !errors.Is(err, fcaps.ErrBadSeverity) {
		t.Errorf("ParseSeverity(severe) error = %v, want ErrBadSeverity", err)
	}
	if fcaps.SeverityInfo >= fcaps.SeverityLow || fcaps.SeverityHigh >= fcaps.SeverityCritical {
		t.Error("severities are not ordered")
	}
	rules := fcaps.Rules()
	ids := map[string]bool{}
	for _, r := range rules {
		if ids[r.ID] || r.Name == "" || r.Summary == "" || len(r.Explanation) < 100 {
			t.Errorf("rule %s: duplicate or incomplete: %+v", r.ID, r)
		}
		ids[r.ID] = true
		if got, ok := fcaps.LookupRule(r.Name); !ok || got.ID != r.ID {
			t.Errorf("LookupRule(%q) = %v, %v", r.Name, got.ID, ok)
		}
	}
	if !slices.IsSortedFunc(rules, func(a, b fcaps.Rule) int { return strings.Compare(a.ID, b.ID) }) {
		t.Error("Rules() not sorted by ID")
	}
	if r, ok := fcaps.LookupRule("nscap001"); !ok || r.Severity != fcaps.SeverityCritical {
		t.Errorf("LookupRule(nscap001) = %+v, %v", r, ok)
	}
	want := "cap_chown,cap_dac_override,cap_dac_read_search,cap_fowner,cap_setgid,cap_setuid,cap_setpcap,cap_sys_module,cap_sys_rawio,cap_sys_ptrace,cap_sys_admin,cap_sys_boot,cap_mknod,cap_setfcap,cap_mac_override,cap_mac_admin,cap_bpf"
	if got := fcaps.RootEquivalentCaps.String(); got != want {
		t.Errorf("RootEquivalentCaps = %s, want %s", got, want)
	}
}

func TestBaseline(t *testing.T) {
	t.Parallel()
	a := fcaps.NewAuditor(fcaps.AuditOptions{})
	audit := func(entries ...fcaps.Entry) *fcaps.Baseline {
		b := fcaps.NewBaseline()
		for _, e := range entries {
			for _, f := range a.Check(e) {
				b.Add(f)
			}
		}
		return b
	}
	v2 := caps(t, "cap_net_raw+ep", 2, 0)
	old := audit(
		fcaps.Entry{Path: "same", Mode: 0o755, Caps: v2},
		fcaps.Entry{Path: "gone", Mode: 0o755, Caps: v2},
		fcaps.Entry{Path: "rescoped", Mode: 0o755, Caps: caps(t, "cap_net_raw+ep", 3, 100000)},
		fcaps.Entry{Path: "broken", Mode: 0o755, Raw: []byte{}},
	)
	var buf bytes.Buffer
	if _, err := old.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	read, err := fcaps.ReadBaseline(&buf)
	if err != nil {
		t.Fatalf("ReadBaseline(WriteTo) = %v\n%s", err, buf.String())
	}
	if diff := cmp.Diff(old.Files, read.Files); diff != "" {
		t.Errorf("baseline round trip (-want +got):\n%s", diff)
	}
	cur := audit(
		fcaps.Entry{Path: "same", Mode: 0o755, Caps: v2},
		fcaps.Entry{Path: "rescoped", Mode: 0o755, Caps: caps(t, "cap_net_raw+ep", 3, 200000)},
		fcaps.Entry{Path: "broken", Mode: 0o755, Raw: []byte{}},
		fcaps.Entry{Path: "new", Mode: 0o755, Caps: caps(t, "cap_sys_admin+ep", 2, 0)},
	)
	var got []string
	for _, f := range cur.Diff(read) {
		got = append(got, f.Path+" "+f.Rule.ID+" "+f.Severity().String()+": "+f.Message)
	}
	want := []string{
		"gone NSCAP102 low: capabilities removed since the baseline (were cap_net_raw=ep (revision 2))",
		"new NSCAP101 medium: capabilities added since the baseline: cap_sys_admin=ep (revision 2)",
		"rescoped NSCAP103 medium: capabilities changed since the baseline: was cap_net_raw=ep [rootid=100000] (revision 3), now cap_net_raw=ep [rootid=200000] (revision 3)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Diff mismatch (-want +got):\n%s", diff)
	}

	for _, bad := range []string{
		``, `{}`, `{"version":3,"files":{}}`, `{"version":0,"files":{}}`, `{"version":1}`, `{"version":2}`,
		`{"version":2,"files":{},"roots":[{"path":"a","bogus":1}]}`,
		`{"version":1,"files":{"a":{"caps":"cap_net_raw=ep","revision":4}}}`,
		`{"version":1,"files":{"a":{"caps":"cap_net_raw=ep","revision":2,"rootid":5}}}`,
		`{"version":1,"files":{"a":{"caps":"cap_bogus=ep","revision":2}}}`,
		`{"version":1,"files":{"a":{"state":"weird"}}}`,
		`{"version":1,"files":{},"extra":1}`,
	} {
		if _, err := fcaps.ReadBaseline(strings.NewReader(bad)); !errors.Is(err, fcaps.ErrBadBaseline) {
			t.Errorf("ReadBaseline(%s) error = %v, want ErrBadBaseline", bad, err)
		}
	}
}

// tarWith builds a tar archive whose members carry the given pax records.
func tarWith(tb testing.TB, global map[string]string, members ...*tar.Header) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if global != nil {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: global}); err != nil {
			tb.Fatal(err)
		}
	}
	for _, h := range members {
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			tb.Fatal(err)
		}
		if h.Size > 0 {
			testutil.WriteOK(tb)(tw.Write(make([]byte, h.Size)))
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func schily(v []byte) map[string]string {
	return map[string]string{"SCHILY.xattr.security.capability": string(v)}
}

func TestAuditArchiveRecords(t *testing.T) {
	t.Parallel()
	v2 := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	v1 := []byte{1, 0, 0, 1, 0, 0x20, 0, 0, 0, 0, 0, 0}
	stray := []byte{1, 1, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	data := tarWith(t, nil,
		&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "./empty", Mode: 0o755, PAXRecords: schily(nil)},
		&tar.Header{Name: "./v1", Mode: 0o755, PAXRecords: schily(v1)},
		&tar.Header{Name: "./stray", Mode: 0o755, PAXRecords: schily(stray)},
		&tar.Header{Name: "./short", Mode: 0o755, PAXRecords: schily(v2[:16])},
		// bsdtar's record only: %-escaped name, base64 value.
		&tar.Header{Name: "./bsd", Mode: 0o4755, PAXRecords: map[string]string{
			"LIBARCHIVE.xattr.security%2Ecapability": "AQAAAgAgAAAAAAAAAAAAAAAAAAA",
		}},
		&tar.Header{Name: "./badb64", Mode: 0o755, PAXRecords: map[string]string{
			"LIBARCHIVE.xattr.security.capability": "!!!",
		}},
		&tar.Header{Name: "./dir/", Typeflag: tar.TypeDir, Mode: 0o777},
		&tar.Header{Name: "./dir/f", Mode: 0o755, PAXRecords: schily(v2)},
	)
	var got []string
	var errs []string
	err := fcaps.AuditArchive(context.Background(), bytes.NewReader(data), "a.tar", fcaps.AuditOptions{
		Error: func(path string, _ error) error { errs = append(errs, path); return nil },
	}, func(f fcaps.Finding) error {
		got = append(got, f.Path+" "+f.Rule.ID+" "+strings.Join(f.Scope.Strings(), ","))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"a.tar:empty NSCAP006 ",
		"a.tar:v1 NSCAP006 all", "a.tar:v1 NSCAP000 all",
		"a.tar:stray NSCAP006 unknown",
		"a.tar:short NSCAP006 unknown",
		"a.tar:bsd NSCAP005 all", "a.tar:bsd NSCAP000 all",
		"a.tar:dir/f NSCAP002 all", "a.tar:dir/f NSCAP000 all",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AuditArchive findings (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a.tar:badb64"}, errs); diff != "" {
		t.Errorf("AuditArchive errors (-want +got):\n%s", diff)
	}

	// A namespace-relative nscap archive: v2 is the container root's,
	// except for a member marked host-scoped.
	data = tarWith(t, map[string]string{"comment": "nscap-backup/1 tool=nscap/test uidmap=0:100000:65536 gidmap=0:100000:65536 foreign-caps=host"},
		&tar.Header{Name: "rel", Mode: 0o755, PAXRecords: schily(v2)},
		&tar.Header{Name: "host", Mode: 0o755, PAXRecords: map[string]string{
			"SCHILY.xattr.security.capability": string(v2), "comment": "nscap: host-scoped security.capability",
		}},
	)
	got = nil
	if err := fcaps.AuditArchive(context.Background(), bytes.NewReader(data), "n.tar", fcaps.AuditOptions{}, func(f fcaps.Finding) error {
		got = append(got, f.Path+" "+f.Rule.ID+" "+strings.Join(f.Scope.Strings(), ","))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want = []string{"n.tar:rel NSCAP000 restore-target", "n.tar:host NSCAP001 all", "n.tar:host NSCAP000 all"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("relative archive findings (-want +got):\n%s", diff)
	}

	for name, bad := range map[string][]byte{
		"truncated": data[:len(data)-1024-100],
		"gzip-junk": {0x1f, 0x8b, 8, 0, 1, 2, 3},
		"zstd-junk": {0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff},
		"bad-comment": tarWith(t, map[string]string{"comment": "nscap-backup/1 uidmap=0:1"},
			&tar.Header{Name: "x", Mode: 0o755}),
	} {
		err := fcaps.AuditArchive(context.Background(), bytes.NewReader(bad), name, fcaps.AuditOptions{}, func(fcaps.Finding) error { return nil })
		if !errors.Is(err, fcaps.ErrBadArchive) {
			t.Errorf("AuditArchive(%s) error = %v, want ErrBadArchive", name, err)
		}
	}
}

func FuzzAuditArchive(f *testing.F) {
	v2 := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	f.Add(tarWith(f, nil, &tar.Header{Name: "a", Mode: 0o4755, PAXRecords: schily(v2)}))
	f.Add(tarWith(f, map[string]string{"comment": "nscap-backup/1 uidmap=0:100000:65536"},
		&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o777},
		&tar.Header{Name: "d/b", Mode: 0o755, PAXRecords: map[string]string{"LIBARCHIVE.xattr.security.capability": "AQAAAg"}}))
	f.Add([]byte{0x1f, 0x8b, 8, 0})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = fcaps.AuditArchive(context.Background(), bytes.NewReader(data), "f", fcaps.AuditOptions{Namespaces: fakeTree()},
			func(f fcaps.Finding) error {
				if f.Rule.ID == "" || f.Path == "" || f.Message == "" {
					t.Fatalf("incomplete finding %+v", f)
				}
				return nil
			})
	})
}

func FuzzReadBaseline(f *testing.F) {
	f.Add([]byte(`{"version":1,"files":{"a":{"caps":"cap_net_raw=ep","revision":3,"rootid":100000},"b":{"state":"unreadable"}}}`))
	f.Add([]byte(`{"version":1,"files":{}}`))
	f.Add([]byte(`{"version":2,"roots":[{"path":"rootfs"},{"path":"l.tar","archive":true}],"files":{"rootfs/bin/ping":{"caps":"cap_net_raw=ep","revision":2}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := fcaps.ReadBaseline(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, fcaps.ErrBadBaseline) {
				t.Fatalf("error %v does not match ErrBadBaseline", err)
			}
			return
		}
		var buf bytes.Buffer
		if _, err := b.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		again, err := fcaps.ReadBaseline(&buf)
		if err != nil {
			t.Fatalf("re-read of a written baseline: %v", err)
		}
		if diff := cmp.Diff(b.Files, again.Files); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

// TestAuditArchiveTruncated cuts an archive at every 512-byte block: the
// members whose header was read before the cut are still audited, and
// the error matches ErrBadArchive.
func TestAuditArchiveTruncated(t *testing.T) {
	t.Parallel()
	v2 := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	// Six members of 4608 bytes each: pax header and record, header,
	// 3000 bytes of data (not zeros) padded to 3072.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range 6 {
		h := &tar.Header{Name: fmt.Sprintf("./bin/f%d", i), Mode: 0o755, Size: 3000, PAXRecords: schily(v2), Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		testutil.WriteOK(t)(tw.Write(bytes.Repeat([]byte{'x'}, 3000)))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	audit := func(data []byte, name string) ([]string, error) {
		var got []string
		err := fcaps.AuditArchive(context.Background(), bytes.NewReader(data), name, fcaps.AuditOptions{}, func(f fcaps.Finding) error {
			if f.Rule.ID == fcaps.RuleCapabilities {
				got = append(got, f.Rel)
			}
			return nil
		})
		return got, err
	}
	full, err := audit(data, "full.tar")
	if err != nil || len(full) != 6 {
		t.Fatalf("full archive: %v, %v", full, err)
	}
	prev := -1
	for cut := 512; cut < len(data)-1024; cut += 512 {
		got, err := audit(data[:cut], "cut.tar")
		if !errors.Is(err, fcaps.ErrBadArchive) || !strings.Contains(fmt.Sprint(err), "read cut.tar: ") {
			t.Fatalf("cut at %d: error %v, want ErrBadArchive naming the archive", cut, err)
		}
		if !slices.Equal(got, full[:len(got)]) || len(got) < prev {
			t.Fatalf("cut at %d: findings for %v, want a prefix of %v growing with the cut", cut, got, full)
		}
		prev = len(got)
	}
	// Cut in the data of the fourth member: the first four are reported
	// (the fourth's record was read with its header).
	cut := 3*4608 + 3*512 + 1000
	got, err := audit(data[:cut], "cut.tar")
	if want := []string{"bin/f0", "bin/f1", "bin/f2", "bin/f3"}; !cmp.Equal(want, got) || !errors.Is(err, fcaps.ErrBadArchive) {
		t.Errorf("cut in the 4th member's data: %v, %v; want %v and ErrBadArchive", got, err, want)
	}

	// The same through gzip: the compressed stream cut short.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	testutil.WriteOK(t)(zw.Write(data))
	testutil.NoErr(t, zw.Close())
	got, err = audit(gz.Bytes()[:gz.Len()/2], "cut.tar.gz")
	if !errors.Is(err, fcaps.ErrBadArchive) || len(got) == 0 || !slices.Equal(got, full[:len(got)]) {
		t.Errorf("gzip cut in half: %v, %v; want some findings and ErrBadArchive", got, err)
	}

	// fn's error still stops the audit at once.
	stop := errors.New("stop")
	if err := fcaps.AuditArchive(context.Background(), bytes.NewReader(data[:cut]), "x", fcaps.AuditOptions{}, func(fcaps.Finding) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("fn error on a cut archive: %v, want it returned", err)
	}
}

// baselineOf audits entries (each with its Root and Rel) into a baseline
// of roots.
func baselineOf(t *testing.T, roots []fcaps.BaselineRoot, entries ...fcaps.Entry) *fcaps.Baseline {
	t.Helper()
	a := fcaps.NewAuditor(fcaps.AuditOptions{})
	b := fcaps.NewBaseline(roots...)
	for _, e := range entries {
		for _, f := range a.Check(e) {
			b.Add(f)
		}
	}
	return b
}

func roundTrip(t *testing.T, b *fcaps.Baseline) *fcaps.Baseline {
	t.Helper()
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	r, err := fcaps.ReadBaseline(&buf)
	if err != nil {
		t.Fatalf("ReadBaseline: %v\n%s", err, buf.String())
	}
	return r
}

func diffText(fs []fcaps.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Rule.ID+" "+f.Path)
	}
	return out
}

// TestBaselineKeys: files are keyed relative to their root, so that the
// spelling of the root and tree-or-archive do not matter; several roots
// are told apart by a label; version 1 baselines still compare by path.
func TestBaselineKeys(t *testing.T) {
	t.Parallel()
	v2 := caps(t, "cap_net_raw+ep", 2, 0)
	tree := func(root string, rels ...string) *fcaps.Baseline {
		var es []fcaps.Entry
		for _, r := range rels {
			p := root + "/" + r
			if strings.HasSuffix(root, "/") {
				p = root + r
			}
			es = append(es, fcaps.Entry{Path: p, Root: root, Rel: r, Mode: 0o755, Caps: v2})
		}
		return baselineOf(t, []fcaps.BaselineRoot{{Path: root}}, es...)
	}
	old := roundTrip(t, tree("rootfs", "bin/ping", "bin/gone"))
	if diff := cmp.Diff([]fcaps.BaselineRoot{{Path: "rootfs"}}, old.Roots); diff != "" || old.Version != 2 {
		t.Errorf("roots recorded (-want +got), version %d:\n%s", old.Version, diff)
	}
	if _, ok := old.Files["bin/ping"]; !ok {
		t.Errorf("files keyed %v, want relative to the root", old.Files)
	}
	for _, root := range []string{"rootfs", "./rootfs", "/abs/rootfs", "rootfs/", "../x/rootfs"} {
		got := diffText(tree(root, "bin/ping", "bin/new").Diff(old))
		p := func(rel string) string { return strings.TrimSuffix(root, "/") + "/" + rel }
		want := []string{"NSCAP102 " + p("bin/gone"), "NSCAP101 " + p("bin/new")}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("root spelt %q (-want +got):\n%s", root, diff)
		}
	}

	// An archive of the tree: member names in every spelling AuditArchive
	// cleans.
	v2raw := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	for _, prefix := range []string{"./", "/", ""} {
		data := tarWith(t, nil,
			&tar.Header{Name: prefix + "bin/ping", Mode: 0o755, PAXRecords: schily(v2raw)},
			&tar.Header{Name: prefix + "bin/gone", Mode: 0o755, PAXRecords: schily(v2raw)})
		cur := fcaps.NewBaseline(fcaps.BaselineRoot{Path: "l.tar", Archive: true})
		if err := fcaps.AuditArchive(context.Background(), bytes.NewReader(data), "l.tar", fcaps.AuditOptions{}, func(f fcaps.Finding) error {
			cur.Add(f)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got := cur.Diff(old); len(got) != 0 {
			t.Errorf("archive with members %q vs the tree's baseline: %v", prefix, diffText(got))
		}
		// And the other way round; removed members are named ARCHIVE:MEMBER.
		if got, want := diffText(tree("rootfs", "bin/ping").Diff(roundTrip(t, cur))), []string{"NSCAP102 rootfs/bin/gone"}; !cmp.Equal(want, got) {
			t.Errorf("tree vs archive baseline: %v, want %v", got, want)
		}
		if got, want := diffText(fcaps.NewBaseline(fcaps.BaselineRoot{Path: "m.tar", Archive: true}).Diff(roundTrip(t, cur))),
			[]string{"NSCAP102 m.tar:bin/gone", "NSCAP102 m.tar:bin/ping"}; !cmp.Equal(want, got) {
			t.Errorf("empty archive vs archive baseline: %v, want %v", got, want)
		}
	}

	// Several roots: keys start with the root's base name, or its
	// absolute path when two roots share one.
	multi := func(roots ...string) *fcaps.Baseline {
		var rs []fcaps.BaselineRoot
		var es []fcaps.Entry
		for _, r := range roots {
			rs = append(rs, fcaps.BaselineRoot{Path: r})
			es = append(es, fcaps.Entry{Path: r + "/bin/ping", Root: r, Rel: "bin/ping", Mode: 0o755, Caps: v2})
		}
		return baselineOf(t, rs, es...)
	}
	m := roundTrip(t, multi("/a/usr", "opt", "/x/rootfs", "/y/rootfs"))
	var keys []string
	for k := range m.Files {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"opt/bin/ping", "usr/bin/ping", "x/rootfs/bin/ping", "y/rootfs/bin/ping"}; !cmp.Equal(want, keys) {
		t.Errorf("keys of several roots = %v, want %v", keys, want)
	}
	if got := diffText(multi("/a/usr", "./opt", "/x/rootfs", "/y/rootfs").Diff(m)); len(got) != 0 {
		t.Errorf("same roots spelt otherwise: %v", got)
	}
	if got, want := diffText(multi("/b/usr", "/x/rootfs", "/y/rootfs").Diff(m)), []string{"NSCAP102 opt/bin/ping"}; !cmp.Equal(want, got) {
		t.Errorf("a root dropped: %v, want %v", got, want)
	}

	// A version-1 baseline (keys: the paths as printed) compares by path.
	v1, err := fcaps.ReadBaseline(strings.NewReader(`{"version":1,"files":{"rootfs/bin/ping":{"caps":"cap_net_raw=ep","revision":2},"rootfs/bin/gone":{"caps":"cap_net_raw=ep","revision":2}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := diffText(tree("rootfs", "bin/ping", "bin/new").Diff(v1)), []string{"NSCAP102 rootfs/bin/gone", "NSCAP101 rootfs/bin/new"}; !cmp.Equal(want, got) {
		t.Errorf("against a version-1 baseline: %v, want %v", got, want)
	}
	if got := roundTrip(t, v1); got.Version != 1 {
		t.Errorf("a version-1 baseline rewritten as version %d", got.Version)
	}
}

// TestAuditArchiveNames: the audit reads member names with nscap's one
// archive reader, as restore does: "./a", "/a" and "a" are one member,
// and a member with a ".." component, which restore refuses, is reported
// as an error, not audited under another name.
func TestAuditArchiveNames(t *testing.T) {
	t.Parallel()
	v2 := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	data := tarWith(t, nil,
		&tar.Header{Name: "/abs", Mode: 0o755, PAXRecords: schily(v2)},
		&tar.Header{Name: "a/../../evil", Mode: 0o755, PAXRecords: schily(v2)},
		&tar.Header{Name: "./ok", Mode: 0o755, PAXRecords: schily(v2)},
	)
	var got, errs []string
	err := fcaps.AuditArchive(context.Background(), bytes.NewReader(data), "n.tar", fcaps.AuditOptions{
		Error: func(path string, err error) error {
			if !errors.Is(err, fcaps.ErrBadArchive) {
				t.Errorf("%s: %v, want ErrBadArchive", path, err)
			}
			errs = append(errs, path)
			return nil
		},
	}, func(f fcaps.Finding) error {
		got = append(got, f.Path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"n.tar:abs", "n.tar:ok"} // one finding each (NSCAP000)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"n.tar:a/../../evil"}, errs); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}
