package userns

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of them, so
// callers branch with [errors.Is]; [*MapError] and [*UnmappedError] carry
// the details for [errors.As].
var (
	// ErrSyntax reports text that is not a map, extent or subordinate-id
	// line in the expected notation.
	ErrSyntax = errors.New("userns: syntax error")
	// ErrEmpty reports a map with no extent (the kernel refuses to write
	// an empty uid_map).
	ErrEmpty = errors.New("userns: empty map")
	// ErrTooMany reports a map with more than [MaxExtents] extents
	// (UID_GID_MAP_MAX_EXTENTS).
	ErrTooMany = errors.New("userns: too many extents")
	// ErrZeroCount reports an extent whose count is 0.
	ErrZeroCount = errors.New("userns: zero count")
	// ErrWrap reports an extent whose inside or outside range runs past
	// id 4294967294 (the kernel's "wraps around" check).
	ErrWrap = errors.New("userns: range wraps around")
	// ErrInvalidID reports an extent starting at 4294967295 ((uid_t)-1)
	// on either side.
	ErrInvalidID = errors.New("userns: id 4294967295 is invalid")
	// ErrOverlap reports two extents whose inside ranges or whose
	// outside ranges overlap.
	ErrOverlap = errors.New("userns: extents overlap")
	// ErrUnmapped reports an id that a map does not cover.
	ErrUnmapped = errors.New("userns: id not mapped")
	// ErrNoSubID reports a user without subordinate ids in /etc/subuid
	// or /etc/subgid.
	ErrNoSubID = errors.New("userns: no subordinate ids")
)

// MapError describes an invalid extent of a map: which extent, how it was
// written, and which rule it breaks. It unwraps to the sentinel of the
// rule (ErrSyntax, ErrOverlap, ErrTooMany, ...).
type MapError struct {
	// Extent is the 0-based index of the offending extent (the line
	// number minus one for /proc text), or -1 when the error concerns the
	// whole map (ErrEmpty).
	Extent int
	// Text is the extent as written in the input, or formatted as
	// "NS:HOST:COUNT" when the map did not come from text.
	Text string
	// Err is the sentinel of the rule broken.
	Err error
	// Detail adds what the sentinel cannot say, for example which other
	// extent it overlaps. It may be empty.
	Detail string
}

// Error implements error.
func (e *MapError) Error() string {
	msg := e.Err.Error()
	if e.Extent >= 0 {
		msg = fmt.Sprintf("%s: extent %d %q", e.Err.Error(), e.Extent, e.Text)
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Unwrap returns the sentinel of the rule broken.
func (e *MapError) Unwrap() error { return e.Err }

// UnmappedError reports an id that a map does not cover. It matches
// [ErrUnmapped] with [errors.Is].
type UnmappedError struct {
	// ID is the id that has no mapping.
	ID uint32
	// Host is true when ID is an outside (host-side) id looked up with
	// [Map.ToNs], false when it is an inside id looked up with
	// [Map.ToHost].
	Host bool
	// Map is the map that lacks the id.
	Map Map
}

// Error implements error.
func (e *UnmappedError) Error() string {
	side := "namespace"
	if e.Host {
		side = "host"
	}
	m := e.Map.String()
	if m == "" {
		m = "(empty)"
	}
	return fmt.Sprintf("userns: %s id %d not mapped by %s", side, e.ID, m)
}

// Is reports whether target is [ErrUnmapped].
func (e *UnmappedError) Is(target error) bool { return target == ErrUnmapped }
