package tarfmt

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// ErrBadXattr is an xattr record that cannot be decoded: an empty name, a
// name whose %-escaping is bad, or a value that is not base64 (in a
// LIBARCHIVE.xattr record). A *[RecordError] matches it.
var ErrBadXattr = errors.New("tarfmt: malformed xattr record")

// RecordError is a pax xattr record that cannot be decoded. errors.Is
// matches [ErrBadXattr].
type RecordError struct {
	Key    string // the pax record name, as stored
	Reason string // the rule broken: "empty name", "bad name escaping", "bad base64"
	Err    error  // the decoder's error, if any
}

func (e *RecordError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("record %q: %s: %v", e.Key, e.Reason, e.Err)
	}
	return fmt.Sprintf("record %q: %s", e.Key, e.Reason)
}

// Unwrap returns the decoder's error.
func (e *RecordError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrBadXattr].
func (e *RecordError) Is(target error) bool { return target == ErrBadXattr }

// EscapeName escapes an xattr name for a SCHILY.xattr record as GNU tar
// does: "%" becomes "%25" and "=" (which cannot appear in a pax keyword)
// "%3D"; GNU tar decodes exactly these two when it extracts.
func EscapeName(name string) string {
	if !strings.ContainsAny(name, "%=") {
		return name
	}
	return strings.NewReplacer("%", "%25", "=", "%3D").Replace(name)
}

// unescapeSchily decodes the name of a SCHILY.xattr record: every %XX
// (two hex digits) is the byte XX. GNU tar escapes only "%" and "=",
// bsdtar escapes more (spaces, non-ASCII bytes); a "%" not followed by
// two hex digits is kept as it is (a writer that did not escape).
func unescapeSchily(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if c, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(c))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// record is one decoded xattr record of a member.
type record struct {
	key    string // the pax record name
	name   string // the xattr name, unescaped
	schily bool   // SCHILY.xattr (raw value) rather than LIBARCHIVE.xattr (base64)
}

// xattrRecord decodes the name of the pax record k; ok is false for a
// record that is not an xattr record.
func xattrRecord(k string) (r record, ok bool, err error) {
	if n, ok := strings.CutPrefix(k, SchilyXattrPrefix); ok {
		n = unescapeSchily(n)
		if n == "" {
			return r, true, &RecordError{Key: k, Reason: "empty name"}
		}
		return record{key: k, name: n, schily: true}, true, nil
	}
	if esc, ok := strings.CutPrefix(k, LibarchiveXattrPrefix); ok {
		n, err := url.PathUnescape(esc)
		if err != nil || n == "" {
			return r, true, &RecordError{Key: k, Reason: "bad name escaping"}
		}
		return record{key: k, name: n}, true, nil
	}
	return r, false, nil
}

// Xattrs decodes the extended attributes of a member from its pax
// records: SCHILY.xattr.NAME (raw value; NAME %-escaped: see
// [EscapeName]) and LIBARCHIVE.xattr.NAME (%-escaped name, base64 value
// with or without padding). The SCHILY record wins when both name the same
// xattr (bsdtar writes both), and among records of one kind whose names
// unescape alike the first in sorted order wins. Other records are
// ignored. It returns nil when the member has no xattr record, and a
// *[RecordError] for the first (in sorted order) record that does not
// decode.
func Xattrs(recs map[string]string) (map[string][]byte, error) {
	keys := slices.Sorted(maps.Keys(recs))
	var schilyNames map[string]bool
	for _, k := range keys {
		if r, ok, err := xattrRecord(k); ok && err == nil && r.schily {
			if schilyNames == nil {
				schilyNames = map[string]bool{}
			}
			schilyNames[r.name] = true
		}
	}
	var out map[string][]byte
	for _, k := range keys {
		r, ok, err := xattrRecord(k)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if _, dup := out[r.name]; dup || !r.schily && schilyNames[r.name] {
			// LIBARCHIVE keys sort before SCHILY ones: out holds only
			// SCHILY values when a SCHILY name repeats.
			continue
		}
		val := []byte(recs[k])
		if !r.schily {
			if val, err = decodeValue(k, recs[k]); err != nil {
				return nil, err
			}
		}
		if out == nil {
			out = map[string][]byte{}
		}
		out[r.name] = val
	}
	return out, nil
}

// Xattr returns the value of the xattr name of a member as [Xattrs]
// decodes it, looking at that xattr's records only: a bad record of
// another xattr does not matter. ok is false when no record names it; a
// record that names it but does not decode is a *[RecordError] (with ok
// true).
func Xattr(recs map[string]string, name string) (val []byte, ok bool, err error) {
	keys := slices.Sorted(maps.Keys(recs))
	for _, schily := range []bool{true, false} {
		for _, k := range keys {
			r, isX, rerr := xattrRecord(k)
			if !isX || rerr != nil || r.schily != schily || r.name != name {
				continue
			}
			if schily {
				return []byte(recs[k]), true, nil
			}
			val, err := decodeValue(k, recs[k])
			return val, true, err
		}
	}
	return nil, false, nil
}

// decodeValue decodes the base64 value of the LIBARCHIVE record k;
// libarchive pads it, other writers may not.
func decodeValue(k, v string) ([]byte, error) {
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(v, "="))
	if err != nil {
		return nil, &RecordError{Key: k, Reason: "bad base64", Err: err}
	}
	return b, nil
}
