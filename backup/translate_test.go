package backup

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/internal/tarfmt"
	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

func TestCapsToArchive(t *testing.T) {
	t.Parallel()
	m := mustMap(t, "0:100000:65536")
	nested := mustMap(t, "0:100000:1,1:300000:1000") // container root 100000, uids 1.. elsewhere
	for _, tc := range []struct {
		name    string
		raw     []byte
		m       userns.Map
		want    []byte
		wantErr error
	}{
		{"container root becomes v2", testutil.RawCaps(3, 100000), m, testutil.RawCaps(2, 0), nil},
		{"nested root keeps v3 relative", testutil.RawCaps(3, 101000), m, testutil.RawCaps(3, 1000), nil},
		{"second extent", testutil.RawCaps(3, 300005), nested, testutil.RawCaps(3, 6), nil},
		{"host v2 is foreign", testutil.RawCaps(2, 0), m, nil, ErrForeignCaps},
		{"other container is foreign", testutil.RawCaps(3, 200000), m, nil, ErrForeignCaps},
		{"identity keeps v2", testutil.RawCaps(2, 0), userns.Map{}, testutil.RawCaps(2, 0), nil},
		{"identity keeps v3", testutil.RawCaps(3, 100000), userns.Map{}, testutil.RawCaps(3, 100000), nil},
		{"v1 refused", testutil.RawCaps(2, 0)[:12], m, nil, ErrMalformed},
		{"short", []byte{1, 0}, m, nil, ErrMalformed},
		{"v2 with 24 bytes", append(testutil.RawCaps(2, 0), 0, 0, 0, 0), m, nil, ErrMalformed},
		{"stray flag", func() []byte { b := testutil.RawCaps(3, 100000); b[0] = 3; return b }(), m, nil, ErrMalformed},
		{"rootid -1", testutil.RawCaps(3, ^uint32(0)), userns.Map{}, nil, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := CapsToArchive(tc.raw, tc.m)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("CapsToArchive(%x) error = %v, want %v", tc.raw, err, tc.wantErr)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("CapsToArchive(%x) = %x, want %x", tc.raw, got, tc.want)
			}
			if err != nil || tc.m.IsZero() {
				return
			}
			back, err := CapsFromArchive(got, tc.m)
			if err != nil || !bytes.Equal(back, tc.raw) {
				t.Errorf("CapsFromArchive(%x) = %x, %v, want %x", got, back, err, tc.raw)
			}
		})
	}
}

func TestCapsFromArchive(t *testing.T) {
	t.Parallel()
	m := mustMap(t, "0:200000:65536")
	for _, tc := range []struct {
		raw, want []byte
		m         userns.Map
		wantErr   error
	}{
		{testutil.RawCaps(2, 0), testutil.RawCaps(3, 200000), m, nil},
		{testutil.RawCaps(3, 1000), testutil.RawCaps(3, 201000), m, nil},
		{testutil.RawCaps(3, 70000), nil, m, ErrForeignCaps},
		{testutil.RawCaps(2, 0), testutil.RawCaps(2, 0), mustMap(t, "0:0:10"), nil}, // maps to host root: v2
		{testutil.RawCaps(3, 5), testutil.RawCaps(3, 5), userns.Map{}, nil},
	} {
		got, err := CapsFromArchive(tc.raw, tc.m)
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) || !bytes.Equal(got, tc.want) {
			t.Errorf("CapsFromArchive(%x, %v) = %x, %v, want %x, %v", tc.raw, tc.m, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestACLToArchive(t *testing.T) {
	t.Parallel()
	u, g := mustMap(t, "0:100000:65536"), mustMap(t, "0:300000:65536")
	got, err := ACLToArchive(rawACL(101000, 300007), u, g)
	if err != nil || !bytes.Equal(got, rawACL(1000, 7)) {
		t.Errorf("ACLToArchive = %x, %v, want %x", got, err, rawACL(1000, 7))
	}
	back, err := ACLFromArchive(got, u, g)
	if err != nil || !bytes.Equal(back, rawACL(101000, 300007)) {
		t.Errorf("ACLFromArchive = %x, %v", back, err)
	}
	var ie *IDError
	_, err = ACLToArchive(rawACL(5, 300007), u, g)
	if !errors.As(err, &ie) || !errors.Is(err, ErrUnmapped) || ie.Kind != KindACLUser || ie.ID != 5 {
		t.Errorf("unmapped ACL user: err = %v", err)
	}
	for name, raw := range map[string][]byte{
		"short":       {2, 0},
		"version 1":   append([]byte{1, 0, 0, 0}, rawACL(1, 1)[4:]...),
		"odd size":    rawACL(1, 1)[:11],
		"unknown tag": append(rawACL(1, 1), 0x40, 0, 0, 0, 0, 0, 0, 0),
	} {
		if _, err := ACLToArchive(raw, u, g); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	if got, err := ACLToArchive(rawACL(7, 8), userns.Map{}, userns.Map{}); err != nil || !bytes.Equal(got, rawACL(7, 8)) {
		t.Errorf("identity: %x, %v", got, err)
	}
}

func TestMetaComment(t *testing.T) {
	t.Parallel()
	m := mustMap(t, "0:100000:65536")
	for _, tc := range []struct {
		meta Meta
		want string
	}{
		{Meta{Tool: "nscap/v1", UIDMap: m, GIDMap: m}, "nscap-backup/1 tool=nscap/v1 uidmap=0:100000:65536 gidmap=0:100000:65536 foreign-caps=fail"},
		{Meta{Tool: "a b", ForeignCaps: ForeignCapsHost}, "nscap-backup/1 tool=a_b uidmap=identity gidmap=identity foreign-caps=host"},
	} {
		if diff := cmp.Diff(tc.want, tc.meta.Comment()); diff != "" {
			t.Errorf("Comment (-want +got):\n%s", diff)
		}
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	for _, p := range []ForeignCaps{ForeignCapsFail, ForeignCapsSkip, ForeignCapsHost} {
		if got, err := ParseForeignCaps(p.String()); err != nil || got != p {
			t.Errorf("ParseForeignCaps(%q) = %v, %v", p, got, err)
		}
	}
	if _, err := ParseForeignCaps("keep"); err == nil {
		t.Error("ParseForeignCaps(keep) succeeded")
	}
	for _, c := range []Compression{CompressNone, CompressGzip, CompressZstd, CompressXz} {
		if got, err := ParseCompression(c.String()); err != nil || got != c {
			t.Errorf("ParseCompression(%q) = %v, %v", c, got, err)
		}
	}
	for name, want := range map[string]Compression{"a.tar": CompressNone, "a.tar.gz": CompressGzip, "a.tgz": CompressGzip, "a.tar.zst": CompressZstd, "a.tar.xz": CompressXz, "a.txz": CompressXz, "-": CompressNone} {
		if got := CompressionFor(name); got != want {
			t.Errorf("CompressionFor(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestCompressorLevels: every level of each range writes a stream that
// reads back; a level outside it is an error.
func TestCompressorLevels(t *testing.T) {
	t.Parallel()
	for _, c := range []Compression{CompressGzip, CompressZstd, CompressXz} {
		lo, hi, ok := c.LevelRange()
		if !ok {
			t.Fatalf("%s: no level range", c)
		}
		for _, level := range []int{0, lo, hi} {
			var b bytes.Buffer
			w, err := archive.Compressor(&b, c, level)
			if err != nil {
				t.Fatalf("archive.Compressor(%s, %d): %v", c, level, err)
			}
			if _, err := w.Write([]byte("payload")); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			r, done, err := tarfmt.Decompress(&b)
			if err != nil {
				t.Fatalf("%s level %d: %v", c, level, err)
			}
			got, err := io.ReadAll(r)
			done()
			if err != nil || string(got) != "payload" {
				t.Errorf("%s level %d: read back %q, %v", c, level, got, err)
			}
		}
		for _, bad := range []int{lo - 1, hi + 1} {
			if bad == 0 {
				continue
			}
			if _, err := archive.Compressor(io.Discard, c, bad); err == nil {
				t.Errorf("archive.Compressor(%s, %d) succeeded", c, bad)
			}
		}
	}
	if _, _, ok := CompressNone.LevelRange(); ok {
		t.Error("CompressNone has a level range")
	}
}

// TestACLText: the text form written in SCHILY.acl.* records reads back,
// through the parser of GNU tar's and bsdtar's records, to the same value.
func TestACLText(t *testing.T) {
	raw := rawACL(1000, 33)
	text := xattrfmt.ACLText(raw)
	if want := "user::rw-,user:1000:rw-:1000,group::r--,group:33:r--:33,mask::rw-,other::r--"; text != want {
		t.Errorf("aclText = %q, want %q", text, want)
	}
	back, _, err := xattrfmt.ParseACLText(text)
	if err != nil || !bytes.Equal(back, raw) {
		t.Errorf("xattrfmt.ParseACLText(%q) = %x, %v; want %x", text, back, err, raw)
	}
}
