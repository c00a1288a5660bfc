package tarfmt

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestXattrs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		recs map[string]string
		want map[string][]byte
		// err is the key of the bad record and the rule it breaks.
		errKey, errReason string
	}{
		{name: "none", recs: map[string]string{"comment": "x", "path": "a"}},
		{name: "nil", recs: nil},
		{
			name: "schily raw",
			recs: map[string]string{"SCHILY.xattr.user.x": "raw\x00\xff", "SCHILY.xattr.security.capability": ""},
			want: map[string][]byte{"user.x": []byte("raw\x00\xff"), "security.capability": {}},
		},
		{
			name: "libarchive padded and not",
			recs: map[string]string{"LIBARCHIVE.xattr.security.capability": "AQAAAg==", "LIBARCHIVE.xattr.user.y": "aGk"},
			want: map[string][]byte{"security.capability": {1, 0, 0, 2}, "user.y": []byte("hi")},
		},
		{
			name: "libarchive escaped name",
			recs: map[string]string{"LIBARCHIVE.xattr.user.a%20b%3D%25": "aGk="},
			want: map[string][]byte{"user.a b=%": []byte("hi")},
		},
		{
			name: "schily wins over libarchive",
			recs: map[string]string{"SCHILY.xattr.user.x": "schily", "LIBARCHIVE.xattr.user.x": "bGli"},
			want: map[string][]byte{"user.x": []byte("schily")},
		},
		{
			name: "schily wins over a bad libarchive value",
			recs: map[string]string{"SCHILY.xattr.user.x": "schily", "LIBARCHIVE.xattr.user.x": "!!"},
			want: map[string][]byte{"user.x": []byte("schily")},
		},
		{
			name: "first libarchive alias wins",
			recs: map[string]string{"LIBARCHIVE.xattr.user.x": "Zmlyc3Q", "LIBARCHIVE.xattr.user%2Ex": "c2Vjb25k"},
			want: map[string][]byte{"user.x": []byte("second")},
		},
		{
			name: "schily names escaped by GNU tar",
			recs: map[string]string{"SCHILY.xattr.user.a%3Db": "1", "SCHILY.xattr.user.p%2541": "2", "SCHILY.xattr.user.sp ace": "3"},
			want: map[string][]byte{"user.a=b": []byte("1"), "user.p%41": []byte("2"), "user.sp ace": []byte("3")},
		},
		{
			name: "schily and libarchive names escaped by bsdtar",
			recs: map[string]string{
				"SCHILY.xattr.user.%C3%A9": "4", "LIBARCHIVE.xattr.user.%C3%A9": "NA",
				"SCHILY.xattr.user.sp%20ace": "3", "LIBARCHIVE.xattr.user.sp%20ace": "Mw",
			},
			want: map[string][]byte{"user.é": []byte("4"), "user.sp ace": []byte("3")},
		},
		{
			name: "a percent sign not escaped", recs: map[string]string{"SCHILY.xattr.user.100%": "x", "SCHILY.xattr.user.%zz": "y"},
			want: map[string][]byte{"user.100%": []byte("x"), "user.%zz": []byte("y")},
		},
		{
			name: "first schily alias wins", recs: map[string]string{"SCHILY.xattr.user.A": "second", "SCHILY.xattr.user.%41": "first"},
			want: map[string][]byte{"user.A": []byte("first")},
		},
		{
			name: "empty schily name", recs: map[string]string{"SCHILY.xattr.": "v"},
			errKey: "SCHILY.xattr.", errReason: "empty name",
		},
		{
			name: "bad escaping", recs: map[string]string{"LIBARCHIVE.xattr.user.%zz": "aGk"},
			errKey: "LIBARCHIVE.xattr.user.%zz", errReason: "bad name escaping",
		},
		{
			name: "empty libarchive name", recs: map[string]string{"LIBARCHIVE.xattr.": "aGk"},
			errKey: "LIBARCHIVE.xattr.", errReason: "bad name escaping",
		},
		{
			name: "bad base64", recs: map[string]string{"LIBARCHIVE.xattr.user.x": "!!", "SCHILY.xattr.user.y": "ok"},
			errKey: "LIBARCHIVE.xattr.user.x", errReason: "bad base64",
		},
		{
			name:   "first bad record in sorted order",
			recs:   map[string]string{"LIBARCHIVE.xattr.user.b": "!!", "LIBARCHIVE.xattr.user.a": "!!", "SCHILY.xattr.": ""},
			errKey: "LIBARCHIVE.xattr.user.a", errReason: "bad base64",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Xattrs(tc.recs)
			if tc.errKey != "" {
				var re *RecordError
				if !errors.Is(err, ErrBadXattr) || !errors.As(err, &re) || got != nil {
					t.Fatalf("Xattrs(%q) = %q, %v; want a RecordError", tc.recs, got, err)
				}
				if re.Key != tc.errKey || re.Reason != tc.errReason {
					t.Errorf("Xattrs(%q) error %q: key %q reason %q, want %q %q", tc.recs, err, re.Key, re.Reason, tc.errKey, tc.errReason)
				}
				return
			}
			if err != nil {
				t.Fatalf("Xattrs(%q): %v", tc.recs, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Xattrs(%q) (-want +got):\n%s", tc.recs, diff)
			}
			// Xattr agrees on each xattr.
			for n, v := range tc.want {
				one, ok, err := Xattr(tc.recs, n)
				if err != nil || !ok || string(one) != string(v) {
					t.Errorf("Xattr(%q, %q) = %q, %v, %v; want %q", tc.recs, n, one, ok, err, v)
				}
			}
		})
	}
}

func TestXattr(t *testing.T) {
	t.Parallel()
	const caps = "security.capability"
	tests := []struct {
		name   string
		recs   map[string]string
		want   []byte
		ok     bool
		errKey string
	}{
		{name: "none", recs: map[string]string{"SCHILY.xattr.user.x": "v"}},
		{name: "schily", recs: map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}, want: []byte{1, 0, 0, 2}, ok: true},
		{name: "schily empty", recs: map[string]string{"SCHILY.xattr.security.capability": ""}, want: []byte{}, ok: true},
		{name: "libarchive", recs: map[string]string{"LIBARCHIVE.xattr.security.capability": "AQAAAg"}, want: []byte{1, 0, 0, 2}, ok: true},
		{name: "libarchive escaped", recs: map[string]string{"LIBARCHIVE.xattr.security%2Ecapability": "AQAAAg=="}, want: []byte{1, 0, 0, 2}, ok: true},
		{name: "schily wins", recs: map[string]string{"SCHILY.xattr.security.capability": "s", "LIBARCHIVE.xattr.security.capability": "!!"}, want: []byte("s"), ok: true},
		{
			name: "bad records of other xattrs do not matter",
			recs: map[string]string{"SCHILY.xattr.": "", "LIBARCHIVE.xattr.user.%zz": "", "LIBARCHIVE.xattr.user.x": "!!", "LIBARCHIVE.xattr.security.capability": "AQAAAg"},
			want: []byte{1, 0, 0, 2}, ok: true,
		},
		{name: "bad base64", recs: map[string]string{"LIBARCHIVE.xattr.security.capability": "A"}, ok: true, errKey: "LIBARCHIVE.xattr.security.capability"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok, err := Xattr(tc.recs, caps)
			if tc.errKey != "" {
				var re *RecordError
				if !errors.As(err, &re) || !errors.Is(err, ErrBadXattr) || re.Key != tc.errKey || !ok {
					t.Fatalf("Xattr(%q) = %q, %v, %v; want a RecordError for %s", tc.recs, got, ok, err, tc.errKey)
				}
				return
			}
			if err != nil || ok != tc.ok {
				t.Fatalf("Xattr(%q) = %q, %v, %v; want ok %v", tc.recs, got, ok, err, tc.ok)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Xattr(%q) (-want +got):\n%s", tc.recs, diff)
			}
		})
	}
}

func TestRecordErrorText(t *testing.T) {
	t.Parallel()
	_, err := Xattrs(map[string]string{"LIBARCHIVE.xattr.user.x": "!!"})
	want := `record "LIBARCHIVE.xattr.user.x": bad base64: illegal base64 data at input byte 0`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	_, err = Xattrs(map[string]string{"SCHILY.xattr.": ""})
	if want := `record "SCHILY.xattr.": empty name`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestEscapeName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"security.capability": "security.capability",
		"user.a=b":            "user.a%3Db",
		"user.p%41":           "user.p%2541",
		"user.sp ace":         "user.sp ace",
		"user.é":              "user.é",
	} {
		if got := EscapeName(name); got != want {
			t.Errorf("EscapeName(%q) = %q, want %q", name, got, want)
		}
		if got := unescapeSchily(EscapeName(name)); got != name {
			t.Errorf("unescapeSchily(EscapeName(%q)) = %q", name, got)
		}
	}
}
