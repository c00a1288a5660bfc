package archiver

import (
	"runtime"

	"github.com/nscap/nscap/internal/archive"

	"github.com/nscap/nscap/userns"
)

// Options tunes a backup (backup.Archiver). The zero value makes an identity backup
// (raw host ids and caps, like `tar --xattrs` run as root), uncompressed,
// with the default parallelism and no reporting.
type Options struct {
	// UIDMap and GIDMap are the maps of the container owning the rootfs
	// (namespace ids to host ids, as in /proc/PID/uid_map). Owners, ACL
	// ids and capability rootids are stored as the container sees them.
	// A zero UIDMap with a zero GIDMap is the identity; a zero GIDMap
	// with a UIDMap defaults to the UIDMap.
	UIDMap, GIDMap userns.Map
	// archive.ForeignCaps is the policy for caps whose rootid is outside UIDMap.
	ForeignCaps archive.ForeignCaps
	// Exclude lists patterns of entries left out of the archive, with
	// GNU tar's --exclude semantics: a shell pattern ("*", "?", "[...]",
	// all matching "/" too) matched against the archive name ("./etc/x")
	// and against every part of it that follows a "/", so "shadow",
	// "etc/shadow" and "*.log" match at any depth. An excluded directory
	// is not descended into; a pattern matching "." leaves the archive
	// empty.
	Exclude []string
	// OneFileSystem keeps the walk on the root's filesystem, as GNU tar
	// --one-file-system: a directory on another one (a mount point) is
	// archived, with a warning, but not its contents.
	OneFileSystem bool
	// archive.Compression of the output stream.
	Compression archive.Compression
	// CompressLevel is the compression level, numbered as gzip(1),
	// zstd(1) and xz(1) number theirs ([archive.Compression.LevelRange]); 0
	// means the default. A level outside the range is an error of Write.
	CompressLevel int
	// Tool names the producer in the global header ("nscap/v1.2.3").
	Tool string
	// Workers is the number of goroutines reading files ahead of the
	// single tar writer; 0 means 2×GOMAXPROCS, at most 8.
	Workers int
	// Window bounds the entries in flight between the walk and the
	// writer; 0 means 256.
	Window int
	// ReadAhead bounds the bytes of file content read ahead and held in
	// memory; 0 means 16 MiB. Files that do not fit are streamed by the
	// writer itself.
	ReadAhead int64
	// Verify makes backup.Archiver.WriteFile read the archive back once written
	// and compare every entry with the tree, as GNU tar --verify does
	// (see backup.Verify): a difference fails the backup with a
	// *backup.VerifyFailedError and no file is kept. It costs a second read of
	// the archive and of every file of the tree.
	Verify bool
	// Reporter receives progress events; nil means none.
	Reporter archive.Reporter
}

// Extra is what a caller of [Write] other than the user sets.
type Extra struct {
	// Exclude is a file never archived: the archive being written, when
	// it lies in the tree.
	Exclude FileID
	// MetaUIDMap and MetaGIDMap, when set, are recorded in the global
	// header instead of UIDMap and GIDMap (a rootless helper translates
	// with its own view of the caller's maps).
	MetaUIDMap, MetaGIDMap userns.Map
}

// ApplyDefaults fills in the zero fields of o.
func (o *Options) ApplyDefaults() {
	if o.GIDMap.IsZero() {
		o.GIDMap = o.UIDMap
	}
	if o.Workers <= 0 {
		// More workers than cores: they spend most of their time in
		// syscalls (open, fstat, read), overlapping I/O waits.
		o.Workers = min(2*runtime.GOMAXPROCS(0), 8)
	}
	if o.Window <= 0 {
		o.Window = 256
	}
	if o.ReadAhead <= 0 {
		o.ReadAhead = 16 << 20
	}
	if o.Tool == "" {
		o.Tool = "nscap"
	}
	if o.Reporter == nil {
		o.Reporter = archive.NopReporter{}
	}
}
