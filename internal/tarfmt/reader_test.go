package tarfmt

import (
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
