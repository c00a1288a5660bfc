package tarfmt

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
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

// Xattrs decodes the extended attributes of a member from its pax
// records: SCHILY.xattr.NAME (raw value) and LIBARCHIVE.xattr.NAME
// (%-escaped name, base64 value with or without padding). The SCHILY
// record wins when both name the same xattr (bsdtar writes both), and
// among LIBARCHIVE records whose names unescape alike the first in
// sorted order wins. Other records are ignored. It returns nil when the
// member has no xattr record, and a *[RecordError] for the first (in
// sorted order) record that does not decode.
func Xattrs(recs map[string]string) (map[string][]byte, error) {
	var out map[string][]byte
	for _, k := range slices.Sorted(maps.Keys(recs)) {
		var (
			name string
			val  []byte
		)
		if n, ok := strings.CutPrefix(k, SchilyXattrPrefix); ok {
			if n == "" {
				return nil, &RecordError{Key: k, Reason: "empty name"}
			}
			name, val = n, []byte(recs[k])
		} else if esc, ok := strings.CutPrefix(k, LibarchiveXattrPrefix); ok {
			n, err := url.PathUnescape(esc)
			if err != nil || n == "" {
				return nil, &RecordError{Key: k, Reason: "bad name escaping"}
			}
			if _, dup := recs[SchilyXattrPrefix+n]; dup {
				continue
			}
			if _, dup := out[n]; dup {
				continue
			}
			if val, err = decodeValue(k, recs[k]); err != nil {
				return nil, err
			}
			name = n
		} else {
			continue
		}
		if out == nil {
			out = map[string][]byte{}
		}
		out[name] = val
	}
	return out, nil
}

// Xattr returns the value of the xattr name of a member as [Xattrs]
// decodes it, looking at that xattr's records only: a bad record of
// another xattr does not matter. ok is false when no record names it; a
// record that names it but does not decode is a *[RecordError] (with ok
// true).
func Xattr(recs map[string]string, name string) (val []byte, ok bool, err error) {
	if v, ok := recs[SchilyXattrPrefix+name]; ok {
		return []byte(v), true, nil
	}
	for _, k := range slices.Sorted(maps.Keys(recs)) {
		esc, found := strings.CutPrefix(k, LibarchiveXattrPrefix)
		if !found {
			continue
		}
		if n, err := url.PathUnescape(esc); err != nil || n != name {
			continue
		}
		val, err := decodeValue(k, recs[k])
		return val, true, err
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
