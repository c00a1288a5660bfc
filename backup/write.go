package backup

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/nscap/nscap/userns"
)

// Options tunes an [Archiver]. The zero value makes an identity backup
// (raw host ids and caps, like `tar --xattrs` run as root), uncompressed,
// with the default parallelism and no reporting.
type Options struct {
	// UIDMap and GIDMap are the maps of the container owning the rootfs
	// (namespace ids to host ids, as in /proc/PID/uid_map). Owners, ACL
	// ids and capability rootids are stored as the container sees them.
	// A zero UIDMap with a zero GIDMap is the identity; a zero GIDMap
	// with a UIDMap defaults to the UIDMap.
	UIDMap, GIDMap userns.Map
	// ForeignCaps is the policy for caps whose rootid is outside UIDMap.
	ForeignCaps ForeignCaps
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
	// Compression of the output stream.
	Compression Compression
	// CompressLevel is the compression level, numbered as gzip(1),
	// zstd(1) and xz(1) number theirs ([Compression.LevelRange]); 0
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
	// Verify makes [Archiver.WriteFile] read the archive back once written
	// and compare every entry with the tree, as GNU tar --verify does
	// (see [Verify]): a difference fails the backup with a
	// [*VerifyFailedError] and no file is kept. It costs a second read of
	// the archive and of every file of the tree.
	Verify bool
	// Reporter receives progress events; nil means none.
	Reporter Reporter
	// metaUIDMap and metaGIDMap, when set, are recorded in the global
	// header instead of UIDMap and GIDMap (a rootless helper translates
	// with its own view of the caller's maps).
	metaUIDMap, metaGIDMap userns.Map
}

func (o *Options) applyDefaults() {
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
		o.Reporter = NopReporter{}
	}
}

// Action is what happened to one item of a backup.
type Action string

// Actions reported through [Reporter.CompleteItem].
const (
	ActionArchived Action = "archived" // written with its content and metadata
	ActionLinked   Action = "hardlink" // written as a hard link to an earlier entry
	ActionSkipped  Action = "skipped"  // not archivable (a socket); see Reporter.Warn
)

// ItemStats describes one archived item.
type ItemStats struct {
	Size int64 // content bytes written
	Caps bool  // a security.capability was stored
}

// Reporter receives the events of a backup. Implementations MUST be safe
// for concurrent use; the [Archiver] calls them from its writer goroutine
// today, but may call them from several goroutines. Paths are archive
// names ("./usr/bin/ping").
type Reporter interface {
	// StartFile is called when the writer starts on an entry.
	StartFile(path string)
	// CompleteItem is called when an entry was written or skipped.
	CompleteItem(path string, action Action, stats ItemStats)
	// Warn reports something the user must know that does not fail the
	// backup: a skipped socket, a foreign cap dropped under
	// [ForeignCapsSkip].
	Warn(path string, err error)
	// Error reports an item that could not be archived faithfully (it is
	// left out of the archive, or, for a file that shrank while read,
	// padded). Returning nil continues the backup, which then ends with
	// an [*IncompleteError] listing every such item; returning an error
	// stops it with that error.
	Error(path string, err error) error
	// Finish is called once at the end with the totals.
	Finish(s Summary)
}

// NopReporter is a [Reporter] that ignores every event (Error returns
// nil). Embed it to implement only some events.
type NopReporter struct{}

// StartFile does nothing.
func (NopReporter) StartFile(string) {}

// CompleteItem does nothing.
func (NopReporter) CompleteItem(string, Action, ItemStats) {}

// Warn does nothing.
func (NopReporter) Warn(string, error) {}

// Error returns nil: continue.
func (NopReporter) Error(string, error) error { return nil }

// Finish does nothing.
func (NopReporter) Finish(Summary) {}

// Summary totals a backup.
type Summary struct {
	Entries   int64         `json:"entries"`      // tar members written (the global header excluded)
	Files     int64         `json:"files"`        // regular files with content
	Dirs      int64         `json:"dirs"`         // directories
	Symlinks  int64         `json:"symlinks"`     // symbolic links
	Hardlinks int64         `json:"hardlinks"`    // hard-link members
	Specials  int64         `json:"specials"`     // fifos and devices
	Bytes     int64         `json:"bytes"`        // file content bytes
	Written   int64         `json:"written"`      // bytes of the (compressed) archive stream
	Caps      int64         `json:"caps"`         // security.capability values stored
	Xattrs    int64         `json:"xattrs"`       // xattrs stored, caps included
	Sparse    int64         `json:"sparse"`       // regular files archived with their holes
	Skipped   int64         `json:"skipped"`      // sockets and dropped foreign caps
	Excluded  int64         `json:"excluded"`     // entries left out by Options.Exclude (a directory counts once)
	Errors    int64         `json:"errors"`       // items reported through Reporter.Error
	Duration  time.Duration `json:"duration_ns"`  // wall time of the backup
	Verified  time.Duration `json:"verify_ns"`    // wall time of Options.Verify (0: not verified)
	Workers   int           `json:"workers"`      // read-ahead goroutines used
	ReadAhead int64         `json:"read_ahead_b"` // bytes read by workers ahead of the writer
}

// MBps returns the content throughput in MB/s (10^6 bytes per second).
func (s Summary) MBps() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Bytes) / 1e6 / s.Duration.Seconds()
}

// ItemError is one item that could not be archived faithfully.
type ItemError struct {
	Path string // archive name
	Err  error
}

// Error implements error.
func (e ItemError) Error() string { return e.Path + ": " + e.Err.Error() }

// String is Error (for listed).
func (e ItemError) String() string { return e.Error() }

// Unwrap returns the cause.
func (e ItemError) Unwrap() error { return e.Err }

// IncompleteError is returned by a backup in which some items failed while
// the [Reporter] let it continue: the archive is not faithful, so
// [Archiver.WriteFile] leaves no file. It unwraps to every item's error,
// so errors.Is(err, ErrForeignCaps) tells whether a foreign cap was among
// the causes.
type IncompleteError struct {
	Items []ItemError
}

// maxListed bounds the paths an IncompleteError prints.
const maxListed = 20

// Error lists the failed items (the first 20).
func (e *IncompleteError) Error() string {
	return listed(fmt.Sprintf("backup incomplete: %d item(s) failed:", len(e.Items)), e.Items)
}

// listed returns head followed by the first maxListed of items, one a
// line, and how many more there are.
func listed[T fmt.Stringer](head string, items []T) string {
	var b strings.Builder
	b.WriteString(head)
	for i, it := range items {
		if i == maxListed {
			fmt.Fprintf(&b, "\n  ... and %d more", len(items)-maxListed)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(it.String())
	}
	return b.String()
}

// Unwrap returns the items' errors.
func (e *IncompleteError) Unwrap() []error {
	errs := make([]error, len(e.Items))
	for i, it := range e.Items {
		errs[i] = it.Err
	}
	return errs
}

// Paths returns the archive names of the failed items.
func (e *IncompleteError) Paths() []string {
	p := make([]string, len(e.Items))
	for i, it := range e.Items {
		p[i] = it.Path
	}
	return p
}

// Archiver writes namespace-relative archives of a rootfs. It is safe to
// call its methods from several goroutines (each call is independent).
type Archiver struct {
	opts Options
	// rootless is set by NewRootless: the tree is read from a helper
	// user namespace.
	rootless *RootlessOptions
}

// New returns an [Archiver] with opts (defaults applied).
func New(opts Options) *Archiver {
	opts.applyDefaults()
	return &Archiver{opts: opts}
}

// Write archives the tree at root to w (see [Archiver.Write]) with opts.
func Write(ctx context.Context, w io.Writer, root string, opts Options) (Summary, error) {
	return New(opts).Write(ctx, w, root)
}

// WriteFile archives the tree at root into the file name, atomically: the
// archive is written to a temporary file in the same directory (mode
// 0600: it holds every file of the rootfs, /etc/shadow included), synced,
// and renamed over name only when the backup succeeded. On any failure,
// item failures included ([*IncompleteError]), name is left untouched and
// the temporary file is removed. The temporary file is never archived,
// even when name lies under root. A name that is a symlink is followed:
// its target is written.
func (a *Archiver) WriteFile(ctx context.Context, name, root string) (s Summary, err error) {
	name = throughSymlink(name)
	dir, base := filepath.Split(name)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".nscap-tmp-*")
	if err != nil {
		return Summary{}, err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			_ = os.Remove(tmp) // best effort: the first error is the one returned
		}
	}()
	ex, err := fileID(f)
	if err != nil {
		return Summary{}, err
	}
	if a.rootless != nil {
		s, err = a.writeHelper(ctx, f, root, ex)
	} else {
		s, err = a.write(ctx, f, root, ex)
	}
	if err != nil {
		return s, err
	}
	if err = f.Sync(); err != nil {
		return s, err
	}
	if a.opts.Verify {
		start := time.Now()
		err = a.verify(ctx, f, root)
		s.Verified = max(time.Since(start), 1)
		if err != nil {
			return s, err
		}
	}
	if err = f.Close(); err != nil {
		return s, err
	}
	if err = os.Rename(tmp, name); err != nil {
		return s, err
	}
	// Make the rename durable; a failure here does not undo it.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return s, nil
}

// VerifyFailedError is a backup whose archive, read back, differs from
// the tree ([Options.Verify]): the tree changed while it was archived, or
// the archive is not faithful. No archive was kept.
type VerifyFailedError struct {
	Diffs []Difference
}

// Error lists the differences (the first 20).
func (e *VerifyFailedError) Error() string {
	return listed(fmt.Sprintf("verify archive: %d difference(s) from the tree:", len(e.Diffs)), e.Diffs)
}

// verify reads the archive just written to f back and compares it with
// the tree at root under the backup's maps. What the backup leaves out on
// purpose is not a difference: sockets, the archive itself, and the
// foreign caps dropped under [ForeignCapsSkip].
func (a *Archiver) verify(ctx context.Context, f *os.File, root string) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	self, err := f.Stat()
	if err != nil {
		return err
	}
	o := a.opts
	vo := VerifyOptions{
		UIDMap: o.UIDMap, GIDMap: o.GIDMap, HostScope: o.ForeignCaps == ForeignCapsHost,
		XattrsInclude: []string{"*"}, // every xattr archived
	}
	var diffs []Difference
	if a.rootless != nil {
		diffs, err = VerifyRootless(ctx, f, root, vo, *a.rootless)
	} else {
		diffs, err = Verify(ctx, bufio.NewReaderSize(f, 256<<10), root, vo)
	}
	if err != nil {
		return fmt.Errorf("verify archive: %w", err)
	}
	var rootDev uint64
	if fi, err := os.Stat(root); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			rootDev = st.Dev
		}
	}
	prefix := strings.TrimSuffix(root, "/") + "/"
	var kept []Difference
	for _, d := range diffs {
		if d.Kind == DiffExtra {
			if fi, err := os.Lstat(d.Path); err == nil && (fi.Mode().Type() == fs.ModeSocket || os.SameFile(fi, self)) {
				continue
			}
			if rel, ok := strings.CutPrefix(d.Path, prefix); ok && excludeMatch(o.Exclude, "./"+rel) {
				continue
			}
			if fi, err := os.Stat(filepath.Dir(d.Path)); o.OneFileSystem && err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Dev != rootDev {
					continue // below a mount point (OneFileSystem)
				}
			}
		}
		if d.Kind == DiffCaps && d.Want == "none" && o.ForeignCaps == ForeignCapsSkip {
			continue
		}
		kept = append(kept, d)
	}
	if len(kept) > 0 {
		return &VerifyFailedError{Diffs: kept}
	}
	return nil
}

// throughSymlink returns the file a symlink name leads to (even one that
// does not exist yet), so that the archive replaces the target, as GNU
// tar's -f writes through a symlink, and not the symlink itself.
func throughSymlink(name string) string {
	for range 40 { // as the kernel's limit of nested symlinks
		target, err := os.Readlink(name)
		if err != nil {
			return name
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(name), target)
		}
		name = target
	}
	return name
}

// WriteFile archives the tree at root into the file name atomically (see
// [Archiver.WriteFile]) with opts.
func WriteFile(ctx context.Context, name, root string, opts Options) (Summary, error) {
	return New(opts).WriteFile(ctx, name, root)
}

// Write archives the tree at root to w as a pax tar stream, never
// following symlinks: a global header with a [Meta.Comment], then every
// file in depth-first order, names sorted, each directory before its
// contents, named "./", "./dir/", "./dir/file" as `tar -C root .` names
// them. Owners, ACL ids and caps are translated by the options' maps (see
// [CapsToArchive], [ACLToArchive]); every xattr is stored as a
// SCHILY.xattr.NAME record; mtimes keep their nanoseconds; hard links
// become tar link members; sockets are skipped with a warning.
//
// Items that cannot be archived faithfully (unreadable, owner outside the
// map, a foreign cap under [ForeignCapsFail]) are reported through
// Reporter.Error and left out; Write then returns an [*IncompleteError]
// listing them after the whole tree was walked. An error writing w, or
// one returned by Reporter.Error, stops the backup at once.
func (a *Archiver) Write(ctx context.Context, w io.Writer, root string) (Summary, error) {
	if a.rootless != nil {
		return a.writeHelper(ctx, w, root, devIno{})
	}
	return a.write(ctx, w, root, devIno{})
}
