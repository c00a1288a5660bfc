package archive

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/nscap/nscap/internal/tarfmt"
	"github.com/nscap/nscap/userns"
)

// Pax records of nscap archives (see package tarfmt).
const (
	// HostScopedComment is the per-entry pax comment marking an entry
	// whose security.capability was kept host-scoped (raw, as the host
	// reads it) under [ForeignCapsHost]: a restore must write that value
	// verbatim instead of translating it.
	HostScopedComment = tarfmt.HostScopedComment
)

// Meta is what nscap records about an archive in its pax global header.
type Meta struct {
	// Tool names the producer, "nscap/VERSION"; it must not contain
	// white space.
	Tool string
	// UIDMap and GIDMap are the maps of the source rootfs; zero for an
	// identity backup (raw host ids).
	UIDMap, GIDMap userns.Map
	// ForeignCaps is the policy the archive was made with.
	ForeignCaps ForeignCaps
}

// Comment formats m as the value of the pax global "comment" record:
//
//	nscap-backup/1 tool=nscap/v1.2.3 uidmap=0:100000:65536 gidmap=0:100000:65536 foreign-caps=fail
//
// A zero map is written as "identity". White space in Tool is replaced by
// "_" so the words stay parseable.
func (m Meta) Comment() string {
	tool := m.Tool
	if len(strings.Fields(tool)) == 0 {
		tool = "nscap"
	}
	return tarfmt.Comment{Tool: tool, UIDMap: m.UIDMap, GIDMap: m.GIDMap, ForeignCaps: m.ForeignCaps.String()}.String()
}

// ErrBadComment is an nscap global comment that does not parse (a map or
// a policy that is not valid).
var ErrBadComment = errors.New("backup: malformed nscap archive comment")

// ParseComment decodes the value of a pax global "comment" record as
// [Meta.Comment] writes it. ok is false, with a zero Meta and no error, for
// a comment that does not start with nscap's magic word (another tool's).
// Words without "=" and keys this version does not know are ignored (a
// later version may add some); "identity" or an empty value is a zero map;
// a missing gidmap defaults to the uidmap; a missing or empty foreign-caps
// is [ForeignCapsFail]. An unparsable map or policy is an error wrapping
// [ErrBadComment] that names the key.
func ParseComment(c string) (m Meta, ok bool, err error) {
	tc, ok, err := tarfmt.ParseComment(c)
	if !ok {
		return Meta{}, false, nil
	}
	if err != nil {
		return Meta{}, true, fmt.Errorf("%w: %w", ErrBadComment, err)
	}
	m = Meta{Tool: tc.Tool, UIDMap: tc.UIDMap, GIDMap: tc.GIDMap}
	if tc.ForeignCaps != "" {
		if m.ForeignCaps, err = ParseForeignCaps(tc.ForeignCaps); err != nil {
			return Meta{}, true, fmt.Errorf("%w: %v", ErrBadComment, err)
		}
	}
	return m, true, nil
}

// ForeignCaps is the policy for a security.capability whose rootid is
// outside the uid map (a host-scoped cap, or the cap of another
// container): such caps cannot be expressed relative to the container.
type ForeignCaps uint8

// Policies for foreign caps.
const (
	// ForeignCapsFail reports the file as an error (the default): the
	// backup fails, listing the paths.
	ForeignCapsFail ForeignCaps = iota
	// ForeignCapsSkip archives the file without its security.capability
	// and reports a warning.
	ForeignCapsSkip
	// ForeignCapsHost archives the raw host value and marks the entry
	// with a [HostScopedComment] pax comment, so the caps stay
	// host-scoped.
	ForeignCapsHost
)

// String returns the flag value of p: "fail", "skip" or "host".
func (p ForeignCaps) String() string {
	switch p {
	case ForeignCapsFail:
		return "fail"
	case ForeignCapsSkip:
		return "skip"
	case ForeignCapsHost:
		return "host"
	}
	return fmt.Sprintf("ForeignCaps(%d)", uint8(p))
}

// ParseForeignCaps parses a policy name as [ForeignCaps.String] writes it.
func ParseForeignCaps(s string) (ForeignCaps, error) {
	for _, p := range []ForeignCaps{ForeignCapsFail, ForeignCapsSkip, ForeignCapsHost} {
		if s == p.String() {
			return p, nil
		}
	}
	return 0, fmt.Errorf("foreign caps policy %q: want fail, skip or host", s)
}

// Compression is the compression of an archive stream.
type Compression uint8

// Compressions.
const (
	CompressNone Compression = iota
	CompressGzip
	CompressZstd
	CompressXz
)

// String returns the flag value: "none", "gzip", "zstd" or "xz".
func (c Compression) String() string {
	switch c {
	case CompressNone:
		return "none"
	case CompressGzip:
		return "gzip"
	case CompressZstd:
		return "zstd"
	case CompressXz:
		return "xz"
	}
	return fmt.Sprintf("Compression(%d)", uint8(c))
}

// ParseCompression parses a compression name as [Compression.String]
// writes it.
func ParseCompression(s string) (Compression, error) {
	for _, c := range []Compression{CompressNone, CompressGzip, CompressZstd, CompressXz} {
		if s == c.String() {
			return c, nil
		}
	}
	return 0, fmt.Errorf("compression %q: want none, gzip, zstd or xz", s)
}

// CompressionFor returns the compression a file name asks for by its
// suffix: .gz/.tgz gzip, .zst/.tzst zstd, .xz/.txz xz, anything else none.
func CompressionFor(name string) Compression {
	switch {
	case strings.HasSuffix(name, ".gz"), strings.HasSuffix(name, ".tgz"):
		return CompressGzip
	case strings.HasSuffix(name, ".zst"), strings.HasSuffix(name, ".tzst"):
		return CompressZstd
	case strings.HasSuffix(name, ".xz"), strings.HasSuffix(name, ".txz"):
		return CompressXz
	}
	return CompressNone
}

// LevelRange returns the levels [Options.CompressLevel] accepts for c, as
// the command-line tools number them: gzip 1-9, zstd 1-19, xz 1-9 (xz -0
// is not offered: 0 means the default level); ok is false for no
// compression.
func (c Compression) LevelRange() (lo, hi int, ok bool) {
	switch c {
	case CompressGzip:
		return 1, 9, true
	case CompressZstd:
		return 1, 19, true
	case CompressXz:
		return 1, 9, true
	case CompressNone:
	}
	return 0, 0, false
}

// xzDictCaps are the dictionary sizes of xz(1)'s presets -0 to -9.
var xzDictCaps = [10]int{256 << 10, 1 << 20, 2 << 20, 4 << 20, 4 << 20, 8 << 20, 8 << 20, 16 << 20, 32 << 20, 64 << 20}

// nopWriteCloser adds a Close that does nothing (the caller owns w).
type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// Compressor wraps w; closing it flushes the compressed stream but does
// not close w.
//
// level is the Compressor's level as [Compression.LevelRange] numbers it;
// 0 means the tool's default (gzip 6, zstd 3, xz 6).
func Compressor(w io.Writer, c Compression, level int) (io.WriteCloser, error) {
	if lo, hi, ok := c.LevelRange(); ok && level != 0 && (level < lo || level > hi) {
		return nil, fmt.Errorf("%s level %d: want %d to %d", c, level, lo, hi)
	}
	switch c {
	case CompressNone:
		return nopWriteCloser{w}, nil
	case CompressGzip:
		if level == 0 {
			level = gzip.DefaultCompression
		}
		return gzip.NewWriterLevel(w, level)
	case CompressZstd:
		// One encoder goroutine and a 4 MiB window keep memory bounded
		// (the default would use one 8 MiB window per core).
		opts := []zstd.EOption{zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(4 << 20)}
		if level != 0 {
			opts = append(opts, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)))
		}
		return zstd.NewWriter(w, opts...)
	case CompressXz:
		if level == 0 {
			level = 6
		}
		return xz.WriterConfig{DictCap: xzDictCaps[level]}.NewWriter(w)
	}
	return nil, fmt.Errorf("unknown compression %d", c)
}

// Info is what the pax global header of an archive says about it.
type Info struct {
	// Comment is the raw pax "comment" record, if any.
	Comment string
	// Nscap is set when Comment is nscap's (see [ParseComment]).
	Nscap bool
	// Meta is what an nscap comment records: the producer, the source
	// maps the archive was made with (zero when it records none: a plain
	// tar archive, or an nscap archive made without maps) and the
	// foreign-caps policy.
	Meta
}

// HasMaps reports whether the archive records the source maps it was made
// with, that is, whether its owners and caps are namespace-relative.
func (a Info) HasMaps() bool { return !a.UIDMap.IsZero() || !a.GIDMap.IsZero() }

// ParseInfo decodes the pax global "comment" record with
// [ParseComment], the parser the writer's format is defined by. Another
// tool's comment is kept verbatim without maps.
func ParseInfo(c string) (Info, error) {
	m, ok, err := ParseComment(c)
	if err != nil {
		return Info{}, err
	}
	return Info{Comment: c, Nscap: ok, Meta: m}, nil
}
