package backup

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/internal/archiver"
)

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
	opts.ApplyDefaults()
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
	ex, err := archiver.FileIDOf(f)
	if err != nil {
		return Summary{}, err
	}
	if a.rootless != nil {
		s, err = a.writeHelper(ctx, f, root, ex)
	} else {
		s, err = archiver.Write(ctx, f, root, a.opts, archiver.Extra{Exclude: ex})
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
	return archive.Listed(fmt.Sprintf("verify archive: %d difference(s) from the tree:", len(e.Diffs)), e.Diffs)
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
			if rel, ok := strings.CutPrefix(d.Path, prefix); ok && archiver.ExcludeMatch(o.Exclude, "./"+rel) {
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
		return a.writeHelper(ctx, w, root, archiver.FileID{})
	}
	return archiver.Write(ctx, w, root, a.opts, archiver.Extra{})
}
