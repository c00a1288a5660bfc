package tarfmt

import (
	"errors"
	"strings"
	"testing"
)

// FuzzXattrs feeds arbitrary pax records to the xattr decoder: no panic;
// an error is a *RecordError matching ErrBadXattr, with a nil map; what it
// decodes, Xattr finds alike, every SCHILY record is in it, and written
// back as SCHILY records it decodes to itself.
func FuzzXattrs(f *testing.F) {
	f.Add("SCHILY.xattr.security.capability", "\x01\x00\x00\x02", "LIBARCHIVE.xattr.security.capability", "AQAAAg==")
	f.Add("LIBARCHIVE.xattr.user.a%20b", "aGk", "LIBARCHIVE.xattr.user%2Ea%20b", "aG8=")
	f.Add("LIBARCHIVE.xattr.user.x", "!!", "SCHILY.xattr.user.x", "raw")
	f.Add("LIBARCHIVE.xattr.user.%zz", "aGk", "comment", "nscap: host-scoped security.capability")
	f.Add("SCHILY.xattr.", "", "SCHILY.acl.access", "user::rw-")
	f.Add("LIBARCHIVE.xattr.", "", "path", "a")
	// bsdtar 3.6 escapes the name in both records of an xattr whose name
	// needs it.
	f.Add("SCHILY.xattr.user.a%20b%3Dc%25%C3%A9", "\x00\xff\n=", "LIBARCHIVE.xattr.user.a%20b%3Dc%25%C3%A9", "AP8KPQ")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		recs := map[string]string{k1: v1, k2: v2}
		got, err := Xattrs(recs)
		if err != nil {
			var re *RecordError
			if !errors.Is(err, ErrBadXattr) || !errors.As(err, &re) || got != nil {
				t.Fatalf("Xattrs(%q) = %q, %v: want a nil map and a RecordError", recs, got, err)
			}
			if _, ok := recs[re.Key]; !ok {
				t.Fatalf("Xattrs(%q): error %v names no record", recs, err)
			}
			return
		}
		for k, v := range recs {
			n, ok := strings.CutPrefix(k, SchilyXattrPrefix)
			if !ok {
				continue
			}
			n = unescapeSchily(n)
			first := true // no other SCHILY key of that name sorts before k
			for k2 := range recs {
				if n2, ok := strings.CutPrefix(k2, SchilyXattrPrefix); ok && k2 < k && unescapeSchily(n2) == n {
					first = false
				}
			}
			if first && string(got[n]) != v {
				t.Fatalf("Xattrs(%q)[%q] = %q, want the SCHILY value %q", recs, n, got[n], v)
			}
		}
		again := map[string]string{}
		for n, v := range got {
			one, ok, err := Xattr(recs, n)
			if err != nil || !ok || string(one) != string(v) {
				t.Fatalf("Xattr(%q, %q) = %q, %v, %v; Xattrs has %q", recs, n, one, ok, err, v)
			}
			again[SchilyXattrPrefix+EscapeName(n)] = string(v)
		}
		back, err := Xattrs(again)
		if err != nil || len(back) != len(got) {
			t.Fatalf("Xattrs(%q) = %q, %v; want %q", again, back, err, got)
		}
		for n, v := range got {
			if string(back[n]) != string(v) {
				t.Fatalf("Xattrs(%q)[%q] = %q, want %q", again, n, back[n], v)
			}
		}
	})
}

// FuzzParseComment feeds arbitrary text to the comment parser: no panic;
// another tool's comment gives a zero Comment and no error; an error is a
// *CommentError matching ErrBadComment; a comment that parses, formatted
// again, parses to itself.
func FuzzParseComment(f *testing.F) {
	f.Add("nscap-backup/1 tool=nscap/v1 uidmap=0:100000:65536 gidmap=0:100000:65536 foreign-caps=fail")
	f.Add("nscap-backup/1 tool=a=b uidmap=identity gidmap= foreign-caps=host future=1 word")
	f.Add("nscap-backup/1 uidmap=0:100000:65536,65536:0:1 uidmap=0:1:1")
	f.Add("nscap-backup/1 uidmap=0:1")
	f.Add("nscap-backup/1 uidmap=0:1:1 gidmap=x")
	f.Add("made by GNU tar")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, ok, err := ParseComment(s)
		if !ok {
			if err != nil || c.Tool != "" || c.ForeignCaps != "" || !c.UIDMap.IsZero() || !c.GIDMap.IsZero() {
				t.Fatalf("ParseComment(%q) = %+v, %v, %v for another tool's comment", s, c, ok, err)
			}
			return
		}
		if err != nil {
			var ce *CommentError
			if !errors.Is(err, ErrBadComment) || !errors.As(err, &ce) || ce.Key != "uidmap" && ce.Key != "gidmap" {
				t.Fatalf("ParseComment(%q) error %v: want a CommentError for a map", s, err)
			}
			return
		}
		text := c.String()
		again, ok, err := ParseComment(text)
		if err != nil || !ok {
			t.Fatalf("ParseComment(%q) (formatted from %q) = %v, %v", text, s, ok, err)
		}
		if again.Tool != c.Tool || again.ForeignCaps != c.ForeignCaps ||
			again.UIDMap.String() != c.UIDMap.String() || again.GIDMap.String() != c.GIDMap.String() {
			t.Fatalf("ParseComment(%q) = %+v, formatted %q parses to %+v", s, c, text, again)
		}
	})
}
