package backup_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/backup"
	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

// TestNormalize: host rootids of the map become relative (revision 2 for
// the container root, the container uid for a nested root), relative
// values are kept, a LIBARCHIVE record is rewritten as a SCHILY one, a
// foreign rootid is kept and reported, and owners are translated with
// Owners.
func TestNormalize(t *testing.T) {
	t.Parallel()
	enc := func(rev xattrfmt.Revision, rootid uint32) []byte {
		c, err := xattrfmt.ParseFileText("cap_net_raw+ep")
		if err != nil {
			t.Fatal(err)
		}
		c.Revision, c.RootID = rev, rootid
		b, err := xattrfmt.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	type member struct {
		name  string
		uid   int
		recs  map[string]string
		value []byte // expected SCHILY value after
	}
	members := []member{
		{"root", 100000, map[string]string{"SCHILY.xattr.security.capability": string(enc(3, 100000))}, enc(2, 0)},
		{"nested", 101000, map[string]string{"SCHILY.xattr.security.capability": string(enc(3, 101000))}, enc(3, 1000)},
		{"relative", 0, map[string]string{"SCHILY.xattr.security.capability": string(enc(2, 0))}, enc(2, 0)},
		{"bsdtar", 100000, map[string]string{"LIBARCHIVE.xattr.security.capability": base64.RawStdEncoding.EncodeToString(enc(3, 100000))}, enc(2, 0)},
		{"foreign", 0, map[string]string{"SCHILY.xattr.security.capability": string(enc(3, 4000000))}, enc(3, 4000000)},
		{"nocaps", 100000, nil, nil},
	}
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	for _, m := range members {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o755, Uid: m.uid, Size: 3, PAXRecords: m.recs, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte("abc")); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	m, _ := userns.ParseMap("0:100000:65536")
	var out bytes.Buffer
	actions := map[string]backup.NormalizeAction{}
	st, err := backup.Normalize(context.Background(), bytes.NewReader(in.Bytes()), &out, backup.NormalizeOptions{
		UIDMap: m, Owners: true,
		Item: func(name string, a backup.NormalizeAction, _, _ []byte, _ error) { actions[name] = a },
	})
	if !errors.Is(err, backup.ErrNotNormalized) {
		t.Errorf("Normalize error %v, want ErrNotNormalized (the foreign rootid)", err)
	}
	want := backup.NormalizeStats{Members: 6, WithCaps: 5, Rewritten: 3, Relative: 1, Foreign: 1, Owners: 4}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	wantActions := map[string]backup.NormalizeAction{"root": "rewritten", "nested": "rewritten", "bsdtar": "rewritten", "relative": "relative", "foreign": "foreign"}
	if diff := cmp.Diff(wantActions, actions); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	tr := tar.NewReader(&out)
	for _, m := range members {
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		got, ok := h.PAXRecords["SCHILY.xattr.security.capability"]
		if h.Name != m.name || string(data) != "abc" || ok != (m.value != nil) || got != string(m.value) {
			t.Errorf("member %s: value %x (%v), data %q; want %x", h.Name, got, ok, data, m.value)
		}
		if _, lib := h.PAXRecords["LIBARCHIVE.xattr.security.capability"]; lib {
			t.Errorf("member %s: LIBARCHIVE record left", h.Name)
		}
		wantUID := m.uid
		if wantUID >= 100000 {
			wantUID -= 100000
		}
		if h.Uid != wantUID {
			t.Errorf("member %s: uid %d, want %d", h.Name, h.Uid, wantUID)
		}
	}
}
