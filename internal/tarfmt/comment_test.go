package tarfmt

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/userns"
)

// mapCmp compares maps by their text, the form the comment carries.
var mapCmp = cmp.Comparer(func(a, b userns.Map) bool { return a.String() == b.String() })

func mustMap(tb testing.TB, s string) userns.Map {
	tb.Helper()
	m, err := userns.ParseMap(s)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestCommentString(t *testing.T) {
	t.Parallel()
	m, g := mustMap(t, "0:100000:65536"), mustMap(t, "0:200000:1000,1000:1000:1")
	tests := []struct {
		c    Comment
		want string
	}{
		{
			Comment{Tool: "nscap/v1", UIDMap: m, GIDMap: m, ForeignCaps: "fail"},
			"nscap-backup/1 tool=nscap/v1 uidmap=0:100000:65536 gidmap=0:100000:65536 foreign-caps=fail",
		},
		{
			Comment{Tool: "a b\tc", UIDMap: m, GIDMap: g, ForeignCaps: "host"},
			"nscap-backup/1 tool=a_b_c uidmap=0:100000:65536 gidmap=0:200000:1000,1000:1000:1 foreign-caps=host",
		},
		{
			Comment{Tool: "x", ForeignCaps: "skip"},
			"nscap-backup/1 tool=x uidmap=identity gidmap=identity foreign-caps=skip",
		},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, tc.c.String()); diff != "" {
			t.Errorf("%+v.String() (-want +got):\n%s", tc.c, diff)
		}
		got, ok, err := ParseComment(tc.c.String())
		tc.c.Tool = got.Tool // white space replaced
		if err != nil || !ok {
			t.Fatalf("ParseComment(%q) = %v, %v", tc.c.String(), ok, err)
		}
		if diff := cmp.Diff(tc.c, got, mapCmp); diff != "" {
			t.Errorf("round trip of %q (-want +got):\n%s", tc.c.String(), diff)
		}
	}
}

func TestParseComment(t *testing.T) {
	t.Parallel()
	m, g := mustMap(t, "0:100000:65536"), mustMap(t, "0:200000:65536")
	tests := []struct {
		name, in string
		want     Comment
		ok       bool
		errKey   string
	}{
		{name: "another tool's", in: "made by GNU tar"},
		{name: "empty", in: ""},
		{name: "magic as a prefix only", in: "nscap-backup/10 uidmap=0:1:1"},
		{name: "magic alone", in: "nscap-backup/1", ok: true},
		{
			name: "full", in: "nscap-backup/1 tool=nscap/v1 uidmap=0:100000:65536 gidmap=0:200000:65536 foreign-caps=host",
			want: Comment{Tool: "nscap/v1", UIDMap: m, GIDMap: g, ForeignCaps: "host"}, ok: true,
		},
		{
			name: "gidmap defaults to uidmap", in: "nscap-backup/1 uidmap=0:100000:65536",
			want: Comment{UIDMap: m, GIDMap: m}, ok: true,
		},
		{name: "identity", in: "nscap-backup/1 uidmap=identity gidmap=identity", ok: true},
		{name: "empty map", in: "nscap-backup/1 uidmap= gidmap=0:200000:65536", want: Comment{GIDMap: g}, ok: true},
		{
			name: "explicit identity gidmap", in: "nscap-backup/1 uidmap=0:100000:65536 gidmap=identity",
			want: Comment{UIDMap: m}, ok: true,
		},
		{
			name: "unknown keys and bare words ignored", in: "  nscap-backup/1\tfuture=1 word uidmap=0:100000:65536 =x\n",
			want: Comment{UIDMap: m, GIDMap: m}, ok: true,
		},
		{
			name: "last value wins", in: "nscap-backup/1 uidmap=0:200000:65536 uidmap=0:100000:65536 tool=a tool=b",
			want: Comment{Tool: "b", UIDMap: m, GIDMap: m}, ok: true,
		},
		{name: "value with =", in: "nscap-backup/1 tool=a=b foreign-caps=keep", want: Comment{Tool: "a=b", ForeignCaps: "keep"}, ok: true},
		{name: "bad uidmap", in: "nscap-backup/1 uidmap=0:1", ok: true, errKey: "uidmap"},
		{name: "bad gidmap", in: "nscap-backup/1 uidmap=0:1:1 gidmap=x", ok: true, errKey: "gidmap"},
		{name: "overlapping map", in: "nscap-backup/1 uidmap=0:1:10,5:100:10", ok: true, errKey: "uidmap"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok, err := ParseComment(tc.in)
			if ok != tc.ok {
				t.Fatalf("ParseComment(%q) ok = %v, want %v", tc.in, ok, tc.ok)
			}
			if tc.errKey != "" {
				var ce *CommentError
				if !errors.Is(err, ErrBadComment) || !errors.As(err, &ce) || ce.Key != tc.errKey {
					t.Fatalf("ParseComment(%q) error = %v, want a CommentError for %s", tc.in, err, tc.errKey)
				}
				var me *userns.MapError
				if !errors.As(err, &me) {
					t.Errorf("ParseComment(%q) error %v does not wrap the map error", tc.in, err)
				}
				if diff := cmp.Diff(Comment{}, got, mapCmp); diff != "" {
					t.Errorf("ParseComment(%q) on error (-want +got):\n%s", tc.in, diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseComment(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got, mapCmp); diff != "" {
				t.Errorf("ParseComment(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestCommentErrorText(t *testing.T) {
	t.Parallel()
	_, _, err := ParseComment("nscap-backup/1 uidmap=0:1")
	_, perr := userns.ParseMap("0:1")
	if want := `uidmap "0:1": ` + perr.Error(); err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}
