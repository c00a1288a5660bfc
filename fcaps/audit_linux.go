package fcaps

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/nscap/nscap/internal/sys"
	"github.com/nscap/nscap/internal/tarfmt"
)

// Audit walks the trees under roots with [Scan] (non-regular files
// included, symlinks never followed) and calls fn with the findings of
// every file carrying a security.capability xattr: readable values, values
// the kernel refuses to return (EINVAL while listxattr lists them,
// [ErrUnreadable]) and values of namespaces the caller cannot see
// (EOVERFLOW, [ErrNotVisible]). Each such file costs one lstat(2), plus one
// per directory above it not seen before (caps are rare, so this stays
// cheap); the directories are followed up to "/", since a non-root user
// who can write any of them can replace the file.
//
// Each finding's Root is the root it was found under and its Rel the
// path relative to it. Other per-path errors go to opts.Error. fn is called from one goroutine
// at a time, in no defined order; the findings of one file come together,
// the most severe first. A non-nil return from fn or opts.Error stops the
// audit and is returned, as is ctx's error.
func Audit(ctx context.Context, roots []string, opts AuditOptions, fn func(Finding) error) error {
	a := NewAuditor(opts)
	d := &dirCache{dirs: map[string]*DirInfo{}}
	if wd, err := os.Getwd(); err == nil {
		d.wd = wd
	}
	// One scan per root, so that every file's path relative to its
	// root (Finding.Rel) is known.
	for _, root := range roots {
		if err := auditRoot(ctx, a, d, root, opts, fn); err != nil {
			return err
		}
	}
	return nil
}

// relPath returns p, a path Scan reported under root, relative to root
// and cleaned ("." for root itself).
func relPath(root, p string) string {
	rel, ok := strings.CutPrefix(p, root)
	if !ok {
		return filepath.Clean(p)
	}
	rel = strings.TrimLeft(rel, "/")
	if rel == "" {
		return "."
	}
	return filepath.Clean(rel)
}

func auditRoot(ctx context.Context, a *Auditor, d *dirCache, root string, opts AuditOptions, fn func(Finding) error) error {
	return Scan(ctx, []string{root}, ScanOptions{Workers: opts.Workers, XDev: opts.XDev, NonRegular: true}, func(f Found) error {
		e := Entry{Path: f.Path, Root: root, Rel: relPath(root, f.Path), Caps: f.Caps, CapsErr: f.Err}
		if f.Err != nil && !errors.Is(f.Err, ErrUnreadable) && !errors.Is(f.Err, ErrNotVisible) {
			if errors.Is(f.Err, ErrNoCaps) {
				return nil
			}
			return a.reportError(f.Path, f.Err)
		}
		st, err := sys.Lstat(f.Path)
		if err != nil {
			return a.reportError(f.Path, &fs.PathError{Op: "lstat", Path: f.Path, Err: err})
		}
		e.Mode, e.UID, e.GID = statMode(st), st.Uid, st.Gid
		if e.Mode.Type() == 0 && opts.Binfmt != nil && e.CapsErr == nil {
			e.Head = readHead(f.Path)
		}
		if e.Mode.Type() == 0 {
			e.Dirs, err = d.above(f.Path)
			if err != nil {
				if rerr := a.reportError(f.Path, err); rerr != nil {
					return rerr
				}
			}
		}
		for _, fd := range a.Check(e) {
			if err := fn(fd); err != nil {
				return err
			}
		}
		return nil
	})
}

func (a *Auditor) reportError(path string, err error) error {
	if a.opts.Error == nil {
		return nil
	}
	return a.opts.Error(path, err)
}

// statMode converts st_mode to an [fs.FileMode] with type, permission,
// setuid, setgid and sticky bits.
func statMode(st sys.Stat) fs.FileMode {
	m := sys.ModeType(st.Mode) | fs.FileMode(st.Mode&0o777)
	if st.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if st.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if st.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// dirCache remembers the directories already lstat'ed. It is used from
// the scan callback, which runs on one goroutine at a time.
type dirCache struct {
	wd   string
	dirs map[string]*DirInfo
}

// above returns the directories containing path, nearest first, up to
// "/". A directory given relative to the working directory keeps its
// relative name while it is below it.
func (d *dirCache) above(path string) ([]DirInfo, error) {
	abs := path
	if !filepath.IsAbs(path) {
		if d.wd == "" {
			return nil, nil
		}
		abs = filepath.Join(d.wd, path)
	}
	var out []DirInfo
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		di, ok := d.dirs[dir]
		if !ok {
			st, err := sys.Lstat(dir)
			if err != nil {
				return out, &fs.PathError{Op: "lstat", Path: dir, Err: err}
			}
			name := dir
			if !filepath.IsAbs(path) {
				if rel, err := filepath.Rel(d.wd, dir); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
					name = rel
				}
			}
			di = &DirInfo{Path: name, Mode: statMode(st), UID: st.Uid, GID: st.Gid}
			d.dirs[dir] = di
		}
		out = append(out, *di)
		if dir == "/" || dir == "." {
			return out, nil
		}
	}
}

// IsArchive reports whether the regular file at path looks like an
// archive [AuditArchive] reads: gzip, zstd or xz data, or a tar header (the
// "ustar" magic, or a valid header checksum for a pre-POSIX archive), or a
// regular file named like one (.tar, .tgz, .tar.gz, .tar.zst, .tzst), so
// that a damaged archive is reported as such rather than audited as a
// plain file without caps. It does not follow a final symlink.
func IsArchive(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return false, err
	}
	var b [512]byte
	n, err := io.ReadFull(f, b[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, err
	}
	return tarfmt.Sniff(b[:n]) || archiveName(path), nil
}

// archiveName reports whether path ends in a tar archive suffix.
func archiveName(path string) bool {
	for _, suf := range []string{".tar", ".tgz", ".tar.gz", ".tar.zst", ".tzst"} {
		if strings.HasSuffix(path, suf) {
			return true
		}
	}
	return false
}
