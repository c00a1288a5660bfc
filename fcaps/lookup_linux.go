package fcaps

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nscap/nscap/internal/sys"
	"github.com/nscap/nscap/xattrfmt"
)

// Root is a directory in which paths are resolved as if it were the root
// directory "/": a container's root filesystem, or /proc/PID/root, the
// root directory of a process. Below it, symbolic links are followed as a
// process chrooted there would follow them, but neither an absolute link
// nor ".." leads out of it (openat2(2) RESOLVE_IN_ROOT, Linux 5.6+). A
// Root is safe for concurrent use; [Root.Close] releases it.
type Root struct {
	name     string   // absolute and cleaned, for the lexical match and the helper
	comps    []string // the components of name
	fd       int      // O_PATH|O_DIRECTORY
	dev, ino uint64
	// top: the caller's own root directory. Resolving in it is resolving
	// as the host does, so it serves only paths written below its name.
	top bool
	// helper is the name a helper user namespace opens the root by: the
	// directory's path as the kernel gives it when that path leads to the
	// same directory (/proc/PID/root needs ptrace access to PID, which a
	// helper seldom has), else name.
	helper string
}

// OpenRoot opens the directory dir as a [Root]. dir is the caller's
// choice and is opened as named, following symbolic links, and magic
// links such as /proc/PID/root: what a Root guards is the lookup of the
// paths below it.
func OpenRoot(dir string) (*Root, error) {
	if dir == "" {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: sys.ENOENT}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	fd, err := sys.Openat(sys.AtFdcwd, abs, sys.ODirPath, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	st, err := sys.Fstat(fd)
	if err != nil {
		sys.Close(fd)
		return nil, &fs.PathError{Op: "fstat", Path: dir, Err: err}
	}
	r := &Root{name: abs, comps: components(abs), fd: fd, dev: st.Dev, ino: st.Ino, helper: abs}
	if top, err := sys.Lstat("/"); err == nil && r.is(top) {
		r.top = true
	}
	if p := physPath(fd, abs); p != abs {
		if pst, err := sys.StatFollow(p); err == nil && r.is(pst) {
			r.helper = p
		}
	}
	return r, nil
}

// Name returns the root's directory as an absolute path.
func (r *Root) Name() string { return r.name }

// Close releases the root's descriptor.
func (r *Root) Close() error {
	if r.fd < 0 {
		return nil
	}
	err := sys.Close(r.fd)
	r.fd = -1
	return err
}

func (r *Root) is(st sys.Stat) bool { return st.Dev == r.dev && st.Ino == r.ino }

// components splits path into its names, leaving out empty ones and ".".
func components(path string) []string {
	var cs []string
	for c := range strings.SplitSeq(path, "/") {
		if c != "" && c != "." {
			cs = append(cs, c)
		}
	}
	return cs
}

// below reports whether path is written below r (lexically, after making
// it absolute: no component is resolved) and returns the rest of it, to
// be resolved in r. ".." is never taken as lexical: it is left to the
// kernel, below the root.
func (r *Root) below(path string) (rel string, ok bool) {
	rest := path
	if !filepath.IsAbs(path) {
		wd, err := os.Getwd()
		if err != nil {
			return "", false
		}
		rest = wd + "/" + path
	}
	for i := 0; ; {
		rest = strings.TrimLeft(rest, "/")
		if i == len(r.comps) {
			if rest == "" {
				rest = "."
			}
			return rest, true
		}
		c, after, _ := strings.Cut(rest, "/")
		switch c {
		case "":
			return "", false
		case ".":
		case r.comps[i]:
			i++
		default:
			return "", false
		}
		rest = after
	}
}

// Lookup says how [Lookup.Open] finds the file a path names.
//
// The zero Lookup follows no symbolic link at all: the path is walked one
// component at a time, from "/" or from the working directory for a
// relative path (whose own path is not checked), each opened with
// openat(2) O_PATH|O_NOFOLLOW relative to the previous one, and a symlink
// other than the last component is refused with [ErrSymlink], naming it.
// That is what keeps a container's root user, who owns the directories of
// its rootfs, from redirecting a write on the host with a planted link
// (rootfs/usr/bin -> /usr/sbin).
//
// With a Root, the part of the path below the root is resolved in it,
// following symlinks as the container would but never out of it (see
// [Root]): a path written below the root's name (rootfs/usr/bin/ping for
// the root rootfs, /proc/42/root/usr/bin/ping for /proc/42/root), or one
// whose walk without symlinks reaches the root's directory
// (/var/lib/ct/rootfs/usr/bin/ping when /proc/42/root is that directory).
// A Root that is the caller's own root directory resolves only the paths
// written below its name. Other paths are walked without symlinks, or,
// with Confine, refused with [ErrOutsideRoot].
//
// In every case the last component is never followed: a final symlink is
// opened as itself (and [File.Get] or a [Setter] refuse it with
// [ErrNotRegular]).
type Lookup struct {
	// Root, when not nil, is the directory paths are resolved in.
	Root *Root
	// Confine refuses a path that is not resolved in Root.
	Confine bool
}

// location is how a helper user namespace finds a file again: root is a
// directory to open (following symlinks, as [OpenRoot]) and path is
// resolved in it; with root "", path is an absolute path walked without
// symlinks, and "" means the physical path of the descriptor.
type location struct {
	root, path string
}

// File is a file found by [Lookup.Open], held by an O_PATH descriptor:
// what is done through it acts on that very inode, whatever happens to
// the path afterwards. [File.Close] releases it.
type File struct {
	name string
	fd   int
	st   sys.Stat
	loc  location
	// reopen opens the file again for reading, for kernels without
	// /proc/self/fd (the f*xattr calls refuse O_PATH descriptors).
	reopen func() (int, error)
}

// Open finds the file at path as l says and returns it. Errors are
// [*fs.PathError] values with Op "open" naming path: the errno of a
// component that cannot be opened (ENOENT, ENOTDIR, EACCES; ELOOP for a
// magic link or a symlink loop below a root), [ErrSymlink], [ErrOutsideRoot].
func (l Lookup) Open(path string) (*File, error) {
	fd, loc, err := l.open(path, sys.OPathNoFollow)
	if err != nil {
		return nil, err
	}
	st, err := sys.Fstat(fd)
	if err != nil {
		sys.Close(fd)
		return nil, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	return &File{name: path, fd: fd, st: st, loc: loc, reopen: func() (int, error) {
		fd, _, err := l.open(path, sys.OReadNoFollow)
		return fd, err
	}}, nil
}

// open resolves path as l says and opens the final component with flags.
func (l Lookup) open(path string, flags int) (int, location, error) {
	if path == "" {
		return -1, location{}, &fs.PathError{Op: "open", Path: path, Err: sys.ENOENT}
	}
	if r := l.Root; r != nil {
		if rel, ok := r.below(path); ok {
			fd, err := sys.OpenInRoot(r.fd, rel, flags)
			if err != nil {
				return -1, location{}, inRootError(path, err)
			}
			return fd, location{root: r.helper, path: rel}, nil
		}
	}
	return l.walk(path, flags)
}

// inRootError explains an error of openat2(2) RESOLVE_IN_ROOT.
func inRootError(path string, err error) error {
	if errors.Is(err, sys.ENOSYS) {
		return &fs.PathError{Op: "open", Path: path, Err: &Error{
			Errno:  sys.ENOSYS,
			Reason: "resolving a path inside a root needs openat2(2), Linux 5.6 or later",
		}}
	}
	return &fs.PathError{Op: "open", Path: path, Err: err}
}

// walk opens path one component at a time without following symlinks;
// when it reaches the directory of l.Root, the rest is resolved in it.
func (l Lookup) walk(path string, flags int) (int, location, error) {
	root := l.Root
	if root != nil && root.top {
		root = nil
	}
	start := "."
	if strings.HasPrefix(path, "/") {
		start = "/"
	}
	comps := pathComps(path)
	fail := func(fd int, err error) (int, location, error) {
		sys.Close(fd)
		return -1, location{}, err
	}
	fd, err := sys.Openat(sys.AtFdcwd, start, sys.OPathNoFollow, 0)
	if err != nil {
		return -1, location{}, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	st, err := sys.Fstat(fd)
	if err != nil {
		return fail(fd, &fs.PathError{Op: "fstat", Path: path, Err: err})
	}
	for i := 0; ; i++ {
		if root != nil && root.is(st) {
			// The root's directory: the rest is the container's.
			walked, rest := start, path
			if i > 0 {
				walked, rest = path[:comps[i-1].end], path[comps[i-1].end:]
			}
			return openRest(fd, path, walked, rest, flags)
		}
		if i == len(comps) {
			break
		}
		last := i == len(comps)-1
		oflags := sys.OPathNoFollow
		if last {
			oflags = flags
		}
		nfd, err := sys.Openat(fd, comps[i].name, oflags, 0)
		sys.Close(fd)
		if err != nil {
			return -1, location{}, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		fd = nfd
		if st, err = sys.Fstat(fd); err != nil {
			return fail(fd, &fs.PathError{Op: "fstat", Path: path, Err: err})
		}
		if !last && sys.ModeType(st.Mode) == fs.ModeSymlink {
			return fail(fd, &fs.PathError{Op: "open", Path: path, Err: &Error{
				Kind:   ErrSymlink,
				Reason: path[:comps[i].end] + " is a symbolic link: refusing to follow it",
			}})
		}
	}
	if (strings.HasSuffix(path, "/") || strings.HasSuffix(path, "/.")) && sys.ModeType(st.Mode) != fs.ModeDir {
		return fail(fd, &fs.PathError{Op: "open", Path: path, Err: sys.ENOTDIR})
	}
	if l.Confine && l.Root != nil {
		return fail(fd, &fs.PathError{Op: "open", Path: path, Err: &Error{
			Kind:   ErrOutsideRoot,
			Reason: "outside the root " + l.Root.name + ": the path is neither written below it nor passes through its directory",
		}})
	}
	return fd, location{}, nil
}

// pathComp is a component of a walked path.
type pathComp struct {
	name string
	end  int // offset in path just past the name
}

// pathComps splits path into its components, leaving out empty ones and
// ".".
func pathComps(path string) []pathComp {
	var comps []pathComp
	for off := 0; off < len(path); {
		i := strings.IndexByte(path[off:], '/')
		if i < 0 {
			i = len(path) - off
		}
		if c := path[off : off+i]; c != "" && c != "." {
			comps = append(comps, pathComp{c, off + i})
		}
		off += i + 1
	}
	return comps
}

// openRest resolves rest in dirfd, the directory of a root reached by
// walking walked, and opens it with flags; it closes dirfd.
func openRest(dirfd int, path, walked, rest string, flags int) (int, location, error) {
	rel := strings.TrimLeft(rest, "/")
	if rel == "" {
		rel = "."
	}
	dir := physPath(dirfd, walked)
	nfd, err := sys.OpenInRoot(dirfd, rel, flags)
	sys.Close(dirfd)
	if err != nil {
		return -1, location{}, inRootError(path, err)
	}
	return nfd, location{root: dir, path: rel}, nil
}

// physPath returns the path of fd's file as the kernel gives it
// (readlink of /proc/self/fd/N: no symlink in it), or else fallback made
// absolute.
func physPath(fd int, fallback string) string {
	if p, err := os.Readlink(sys.ProcFdPath(fd)); err == nil && strings.HasPrefix(p, "/") {
		return p
	}
	if abs, err := filepath.Abs(fallback); err == nil {
		return abs
	}
	return fallback
}

// Name returns the path the file was opened by.
func (f *File) Name() string { return f.name }

// Close releases the file's descriptor.
func (f *File) Close() error {
	if f.fd < 0 {
		return nil
	}
	err := sys.Close(f.fd)
	f.fd = -1
	return err
}

// Owner returns the file's owner and group, as the caller's user
// namespace sees them (fstat(2) when it was opened).
func (f *File) Owner() (uid, gid uint32) { return f.st.Uid, f.st.Gid }

// Type returns the file's type bits (0 for a regular file).
func (f *File) Type() fs.FileMode { return sys.ModeType(f.st.Mode) }

// Get returns the capabilities of f, a regular file ([ErrNotRegular]
// otherwise), with the errors of [Get].
func (f *File) Get() (xattrfmt.FileCaps, error) {
	var b []byte
	err := f.do("getxattr", func(t target) (err error) {
		b, err = t.read("getxattr", f.name)
		return err
	})
	if err != nil {
		return xattrfmt.FileCaps{}, err
	}
	return decode(f.name, b)
}

// do runs fn on f after refusing anything but a regular file with
// ErrNotRegular. It acts through /proc/self/fd/N, the magic link to the
// inode (the f*xattr calls refuse O_PATH descriptors; the path calls on
// the link need no read permission on the file, like getcap/setcap by
// path). Without /proc it reopens the file read-only and checks that
// st_dev/st_ino did not change before using f*xattr.
func (f *File) do(op string, fn func(t target) error) error {
	if m := sys.ModeType(f.st.Mode); m != 0 {
		return notRegular(op, f.name, m)
	}
	if procFd() {
		return fn(target{fd: -1, path: sys.ProcFdPath(f.fd)})
	}
	rfd, err := f.reopen()
	if err != nil {
		return err
	}
	defer sys.Close(rfd)
	st, err := sys.Fstat(rfd)
	if err != nil {
		return &fs.PathError{Op: "fstat", Path: f.name, Err: err}
	}
	if st.Dev != f.st.Dev || st.Ino != f.st.Ino {
		return &fs.PathError{Op: "open", Path: f.name, Err: errors.New("file replaced while being opened")}
	}
	return fn(target{fd: rfd})
}

// set writes b, the encoding of the caps given, through [SetRawFd]'s
// writer: a refusal is explained from b itself.
func (f *File) set(_ xattrfmt.FileCaps, b []byte) error {
	return f.do("setxattr", func(t target) error { return t.write("setxattr", f.name, b) })
}

func (f *File) remove() error {
	return f.do("removexattr", func(t target) error { return t.erase("removexattr", f.name) })
}

// helperLocation returns how a helper user namespace finds f again.
func (f *File) helperLocation() location {
	if f.loc.root != "" || f.loc.path != "" {
		return f.loc
	}
	return location{path: physPath(f.fd, f.name)}
}
