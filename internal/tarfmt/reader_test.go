package tarfmt

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCleanName(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"a/b", "a/b", ""},
		{"/abs//x/", "abs/x", ""},
		{"./a/./b", "a/b", ""},
		{"/", ".", ""},
		{"../x", "", "insecure"},
		{"a/../b", "", "insecure"},
		{"a\x00b", "", "insecure"},
	}
	for _, tc := range tests {
		got, err := CleanName(tc.in)
		if got != tc.want || (err == nil) != (tc.err == "") {
			t.Errorf("CleanName(%q) = %q, %v; want %q, %s", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestPaxXattrs(t *testing.T) {
	got, err := paxXattrs(map[string]string{
		"LIBARCHIVE.xattr.security.capability": "AQAAAg==",
		"LIBARCHIVE.xattr.user.a%20b":          "aGk",
		"SCHILY.xattr.user.x":                  "raw",
		"comment":                              "ignored",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"security.capability": {1, 0, 0, 2}, "user.a b": []byte("hi"), "user.x": []byte("raw")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paxXattrs (-want +got):\n%s", diff)
	}
	if _, err := paxXattrs(map[string]string{"LIBARCHIVE.xattr.user.x": "!!"}); !errors.Is(err, ErrBadXattr) {
		t.Errorf("bad base64: %v", err)
	}
	_ = hex.EncodeToString
}

// TestEntries: the iteration hands out every member, a malformed one with
// its *EntryError and the iteration going on, and a cancelled context
// once, as an error that ends it.
func TestEntries(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range []string{"a", "../bad", "b"} {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ar, err := NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer ar.Close()
	var got []string
	for e, err := range ar.Entries(context.Background()) {
		if _, bad := errors.AsType[*EntryError](err); bad {
			got = append(got, "bad:"+e.Header.Name)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.Name)
	}
	if diff := cmp.Diff([]string{"a", "bad:../bad", "b"}, got); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ar2, err := NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer ar2.Close()
	n := 0
	for e, err := range ar2.Entries(ctx) {
		n++
		if e != nil || !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled: %v, %v; want nil, context.Canceled", e, err)
		}
	}
	if n != 1 {
		t.Errorf("cancelled: %d steps, want 1", n)
	}
}
