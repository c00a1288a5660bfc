package tarfmt

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nscap/nscap/userns"
)

// ErrBadComment is an nscap global comment with a word whose value does
// not parse (a map). A *[CommentError] matches it.
var ErrBadComment = errors.New("tarfmt: malformed nscap comment")

// CommentError is a key=value word of an nscap comment whose value does
// not parse. errors.Is matches [ErrBadComment] and Err (the error of
// [userns.ParseMap]).
type CommentError struct {
	Key, Value string
	Err        error
}

func (e *CommentError) Error() string { return fmt.Sprintf("%s %q: %v", e.Key, e.Value, e.Err) }

// Unwrap returns the parser's error.
func (e *CommentError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrBadComment].
func (e *CommentError) Is(target error) bool { return target == ErrBadComment }

// Comment is what nscap records about an archive in the "comment" record
// of its pax global header.
type Comment struct {
	// Tool names the producer ("nscap/VERSION").
	Tool string
	// UIDMap and GIDMap are the maps of the source tree; zero for raw
	// host ids.
	UIDMap, GIDMap userns.Map
	// ForeignCaps is the foreign-caps policy word as stored ("fail",
	// "skip", "host"; empty when the comment has none). Its meaning
	// belongs to backup.
	ForeignCaps string
}

// String formats c as the value of the comment record:
//
//	nscap-backup/1 tool=nscap/v1.2.3 uidmap=0:100000:65536 gidmap=0:100000:65536 foreign-caps=fail
//
// A zero map is written as [IdentityMap]. White space in Tool and
// ForeignCaps is replaced by "_" so that the words stay parseable.
func (c Comment) String() string {
	mapText := func(m userns.Map) string {
		if m.IsZero() {
			return IdentityMap
		}
		return m.String()
	}
	word := func(s string) string { return strings.Join(strings.Fields(s), "_") }
	return fmt.Sprintf("%s tool=%s uidmap=%s gidmap=%s foreign-caps=%s",
		CommentMagic, word(c.Tool), mapText(c.UIDMap), mapText(c.GIDMap), word(c.ForeignCaps))
}

// ParseComment decodes the value of a pax global comment record as
// [Comment.String] writes it. ok is false, with a zero Comment and no
// error, for a comment that does not start with [CommentMagic] (another
// tool's). Words without "=" and keys this version does not know are
// ignored (a later version may add some); a key given twice takes its
// last value; [IdentityMap] or an empty value is a zero map; a missing
// gidmap defaults to the uidmap. A map that does not parse is a
// *[CommentError] naming its key (with ok true).
func ParseComment(s string) (c Comment, ok bool, err error) {
	words := strings.Fields(s)
	if len(words) == 0 || words[0] != CommentMagic {
		return Comment{}, false, nil
	}
	gidSet := false
	for _, w := range words[1:] {
		k, v, found := strings.Cut(w, "=")
		if !found {
			continue
		}
		var dst *userns.Map
		switch k {
		case "tool":
			c.Tool = v
			continue
		case "foreign-caps":
			c.ForeignCaps = v
			continue
		case "uidmap":
			dst = &c.UIDMap
		case "gidmap":
			dst, gidSet = &c.GIDMap, true
		default:
			continue
		}
		if v == IdentityMap || v == "" {
			*dst = userns.Map{}
			continue
		}
		m, err := userns.ParseMap(v)
		if err != nil {
			return Comment{}, true, &CommentError{Key: k, Value: v, Err: err}
		}
		*dst = m
	}
	if !gidSet {
		c.GIDMap = c.UIDMap
	}
	return c, true, nil
}
