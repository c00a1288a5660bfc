package xattrfmt

import (
	"errors"
	"fmt"
)

// Sentinel errors. [Decode] returns them inside a [*DecodeError], [ParseText]
// inside a [*SyntaxError]; match them with [errors.Is].
var (
	// ErrEmpty is a zero-length value. The kernel stores one without
	// validation but refuses to read it and fails exec of the file.
	ErrEmpty = errors.New("xattrfmt: empty value")
	// ErrSize is a value whose length does not match its revision (12, 20
	// or 24 bytes). Every [ErrTruncated] and [ErrTrailingData] is also an
	// ErrSize.
	ErrSize = errors.New("xattrfmt: wrong value size")
	// ErrTruncated is a value shorter than its header or its revision.
	ErrTruncated = errors.New("xattrfmt: value truncated")
	// ErrTrailingData is a value longer than its revision.
	ErrTrailingData = errors.New("xattrfmt: trailing data after value")
	// ErrBadRevision is a revision other than 1, 2 or 3.
	ErrBadRevision = errors.New("xattrfmt: unknown revision")
	// ErrBadFlags is a magic_etc with flag bits other than
	// VFS_CAP_FLAGS_EFFECTIVE (0x000001).
	ErrBadFlags = errors.New("xattrfmt: unknown flags")
	// ErrRange is a value [Encode] cannot represent in the requested
	// revision: capabilities above 31 in revision 1.
	ErrRange = errors.New("xattrfmt: capability out of range for revision")
	// ErrRootID is a non-zero RootID given to [Encode] for a revision other
	// than 3, which has nowhere to store it.
	ErrRootID = errors.New("xattrfmt: rootid needs revision 3")
	// ErrSyntax is capability text that libcap's cap_from_text refuses.
	ErrSyntax = errors.New("xattrfmt: bad capability text")
	// ErrEffective is a state that cannot be a file capability: file caps
	// have one effective bit, so a non-empty effective set must contain
	// every permitted and inheritable capability (setcap's rule).
	ErrEffective = errors.New("xattrfmt: effective set must be empty or include all permitted and inheritable capabilities")
)

// DecodeError describes a malformed security.capability value.
// errors.Is(err, Reason) holds, and so does errors.Is(err, [ErrSize]) when
// Reason is [ErrTruncated] or [ErrTrailingData].
type DecodeError struct {
	// Offset is the byte offset of the problem in the value: 3 for the
	// revision byte, 0 for the flags, the length of the value when it is
	// truncated, the revision's size when there is trailing data.
	Offset int
	// Reason is one of the sentinels ErrEmpty, ErrTruncated,
	// ErrTrailingData, ErrBadRevision or ErrBadFlags.
	Reason error
	// Msg says which rule the value breaks, e.g. "revision 2 value must
	// be 20 bytes, got 24 (4 trailing bytes)".
	Msg string
}

// Error names the rule the value breaks, e.g.
// "xattrfmt: revision 2 value must be 20 bytes, got 24 (4 trailing bytes)".
func (e *DecodeError) Error() string { return "xattrfmt: " + e.Msg }

// Unwrap returns Reason.
func (e *DecodeError) Unwrap() error { return e.Reason }

// Is reports whether target is Reason or, for a size problem, [ErrSize].
func (e *DecodeError) Is(target error) bool {
	if target == e.Reason {
		return true
	}
	return target == ErrSize && (e.Reason == ErrTruncated || e.Reason == ErrTrailingData)
}

// SyntaxError describes capability text that cap_from_text refuses.
// errors.Is(err, [ErrSyntax]) holds.
type SyntaxError struct {
	// Text is the whole input.
	Text string
	// Offset is the byte offset in Text where parsing stopped.
	Offset int
	// Msg says what was expected there.
	Msg string
}

// Error reports the offset and the rule, e.g.
// `xattrfmt: bad capability text "cap_foo=ep" at offset 0: unknown capability name`.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("xattrfmt: bad capability text %q at offset %d: %s", e.Text, e.Offset, e.Msg)
}

// Unwrap returns [ErrSyntax].
func (e *SyntaxError) Unwrap() error { return ErrSyntax }
