package backup

// The public API of the engines under internal/: backup is the one package
// users import; internal/archive, internal/archiver, internal/restorer and
// internal/shifter hold the code.

import (
	"context"
	"io"

	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/internal/archiver"
	"github.com/nscap/nscap/internal/restorer"
	"github.com/nscap/nscap/internal/shifter"
	"github.com/nscap/nscap/userns"
)

// IDKind is [archive.IDKind].
type IDKind = archive.IDKind

// IDError is [archive.IDError].
type IDError = archive.IDError

// MalformedError is [archive.MalformedError].
type MalformedError = archive.MalformedError

// Meta is [archive.Meta].
type Meta = archive.Meta

// ForeignCaps is [archive.ForeignCaps].
type ForeignCaps = archive.ForeignCaps

// Compression is [archive.Compression].
type Compression = archive.Compression

// ArchiveInfo is [archive.Info].
type ArchiveInfo = archive.Info

// Action is [archive.Action].
type Action = archive.Action

// ItemStats is [archive.ItemStats].
type ItemStats = archive.ItemStats

// Reporter is [archive.Reporter].
type Reporter = archive.Reporter

// NopReporter is [archive.NopReporter].
type NopReporter = archive.NopReporter

// Summary is [archive.Summary].
type Summary = archive.Summary

// ItemError is [archive.ItemError].
type ItemError = archive.ItemError

// IncompleteError is [archive.IncompleteError].
type IncompleteError = archive.IncompleteError

// Constants of package archive.
const (
	XattrCaps         = archive.XattrCaps
	XattrACLAccess    = archive.XattrACLAccess
	XattrACLDefault   = archive.XattrACLDefault
	KindUID           = archive.KindUID
	KindGID           = archive.KindGID
	KindRootID        = archive.KindRootID
	KindACLUser       = archive.KindACLUser
	KindACLGroup      = archive.KindACLGroup
	HostScopedComment = archive.HostScopedComment
	ForeignCapsFail   = archive.ForeignCapsFail
	ForeignCapsSkip   = archive.ForeignCapsSkip
	ForeignCapsHost   = archive.ForeignCapsHost
	CompressNone      = archive.CompressNone
	CompressGzip      = archive.CompressGzip
	CompressZstd      = archive.CompressZstd
	CompressXz        = archive.CompressXz
	ActionArchived    = archive.ActionArchived
	ActionLinked      = archive.ActionLinked
	ActionSkipped     = archive.ActionSkipped
)

// Errors of package archive.
var (
	ErrUnmapped    = archive.ErrUnmapped
	ErrForeignCaps = archive.ErrForeignCaps
	ErrMalformed   = archive.ErrMalformed
	ErrBadComment  = archive.ErrBadComment
)

// CapsToArchive is [archive.CapsToArchive].
func CapsToArchive(raw []byte, uidmap userns.Map) ([]byte, error) {
	return archive.CapsToArchive(raw, uidmap)
}

// CapsFromArchive is [archive.CapsFromArchive].
func CapsFromArchive(raw []byte, uidmap userns.Map) ([]byte, error) {
	return archive.CapsFromArchive(raw, uidmap)
}

// ACLToArchive is [archive.ACLToArchive].
func ACLToArchive(raw []byte, uidmap, gidmap userns.Map) ([]byte, error) {
	return archive.ACLToArchive(raw, uidmap, gidmap)
}

// ACLFromArchive is [archive.ACLFromArchive].
func ACLFromArchive(raw []byte, uidmap, gidmap userns.Map) ([]byte, error) {
	return archive.ACLFromArchive(raw, uidmap, gidmap)
}

// IsACL is [archive.IsACL].
func IsACL(name string) bool {
	return archive.IsACL(name)
}

// ParseComment is [archive.ParseComment].
func ParseComment(c string) (m Meta, ok bool, err error) {
	return archive.ParseComment(c)
}

// ParseForeignCaps is [archive.ParseForeignCaps].
func ParseForeignCaps(s string) (ForeignCaps, error) {
	return archive.ParseForeignCaps(s)
}

// ParseCompression is [archive.ParseCompression].
func ParseCompression(s string) (Compression, error) {
	return archive.ParseCompression(s)
}

// CompressionFor is [archive.CompressionFor].
func CompressionFor(name string) Compression {
	return archive.CompressionFor(name)
}

// Options is [archiver.Options].
type Options = archiver.Options

// ShrankError is [archiver.ShrankError].
type ShrankError = archiver.ShrankError

// Errors of package archiver.
var (
	ErrSocket  = archiver.ErrSocket
	ErrChanged = archiver.ErrChanged
)

// DiffKind is [restorer.DiffKind].
type DiffKind = restorer.DiffKind

// Difference is [restorer.Difference].
type Difference = restorer.Difference

// VerifyOptions is [restorer.VerifyOptions].
type VerifyOptions = restorer.VerifyOptions

// OverwritePolicy is [restorer.OverwritePolicy].
type OverwritePolicy = restorer.OverwritePolicy

// RestoreSummary is [restorer.RestoreSummary].
type RestoreSummary = restorer.RestoreSummary

// RestoreOptions is [restorer.RestoreOptions].
type RestoreOptions = restorer.RestoreOptions

// RawArchiveError is [restorer.RawArchiveError].
type RawArchiveError = restorer.RawArchiveError

// NotFoundError is [restorer.NotFoundError].
type NotFoundError = restorer.NotFoundError

// ListEntry is [restorer.ListEntry].
type ListEntry = restorer.ListEntry

// ListOptions is [restorer.ListOptions].
type ListOptions = restorer.ListOptions

// Constants of package restorer.
const (
	DiffMissing        = restorer.DiffMissing
	DiffExtra          = restorer.DiffExtra
	DiffType           = restorer.DiffType
	DiffOwner          = restorer.DiffOwner
	DiffMode           = restorer.DiffMode
	DiffSize           = restorer.DiffSize
	DiffContent        = restorer.DiffContent
	DiffLink           = restorer.DiffLink
	DiffXattr          = restorer.DiffXattr
	DiffCaps           = restorer.DiffCaps
	DiffError          = restorer.DiffError
	OverwriteAlways    = restorer.OverwriteAlways
	OverwriteIfChanged = restorer.OverwriteIfChanged
	OverwriteNever     = restorer.OverwriteNever
	ActionRestored     = restorer.ActionRestored
	ActionKept         = restorer.ActionKept
)

// Errors of package restorer.
var (
	ErrRestoreRunning  = restorer.ErrRestoreRunning
	ErrCapsNotRegular  = restorer.ErrCapsNotRegular
	ErrDirectNotEmpty  = restorer.ErrDirectNotEmpty
	ErrHostScope       = restorer.ErrHostScope
	ErrHostScopedCaps  = restorer.ErrHostScopedCaps
	ErrRawArchive      = restorer.ErrRawArchive
	ErrNotInArchive    = restorer.ErrNotInArchive
	ErrReplaced        = restorer.ErrReplaced
	ErrStagingReplaced = restorer.ErrStagingReplaced
	ErrSymlinkInPath   = restorer.ErrSymlinkInPath
)

// Restore is [restorer.Restore].
func Restore(ctx context.Context, r io.Reader, dest string, opts RestoreOptions) (RestoreSummary, error) {
	return restorer.Restore(ctx, r, dest, opts)
}

// Verify is [restorer.Verify].
func Verify(ctx context.Context, r io.Reader, dest string, opts VerifyOptions) ([]Difference, error) {
	return restorer.Verify(ctx, r, dest, opts)
}

// List is [restorer.List].
func List(ctx context.Context, r io.Reader, opts ListOptions, fn func(ListEntry) error) error {
	return restorer.List(ctx, r, opts, fn)
}

// ShiftOptions is [shifter.ShiftOptions].
type ShiftOptions = shifter.ShiftOptions

// ShiftChange is [shifter.ShiftChange].
type ShiftChange = shifter.ShiftChange

// ShiftReporter is [shifter.ShiftReporter].
type ShiftReporter = shifter.ShiftReporter

// NopShiftReporter is [shifter.NopShiftReporter].
type NopShiftReporter = shifter.NopShiftReporter

// ShiftSummary is [shifter.ShiftSummary].
type ShiftSummary = shifter.ShiftSummary

// ShiftFailedError is [shifter.ShiftFailedError].
type ShiftFailedError = shifter.ShiftFailedError

// Errors of package shifter.
var (
	ErrShiftOverlap = shifter.ErrShiftOverlap
	ErrShiftRunning = shifter.ErrShiftRunning
)

// IdentityLike is [shifter.IdentityLike].
func IdentityLike(m userns.Map) userns.Map {
	return shifter.IdentityLike(m)
}

// Shift is [shifter.Shift].
func Shift(ctx context.Context, root string, opts ShiftOptions) (ShiftSummary, error) {
	return shifter.Shift(ctx, root, opts)
}
