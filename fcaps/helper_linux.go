package fcaps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/nscap/nscap/internal/sys"
	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

// ErrOutsideHelperMap reports a write or removal that a helper user
// namespace cannot perform because an id it needs — the file's owner or
// group, or the rootid — is not mapped by the helper's maps, that is, not
// the caller's own id nor in its subordinate ranges. Nothing was written.
var ErrOutsideHelperMap = errors.New("fcaps: id outside the helper namespace's map")

// HelperMode says when a [Setter] writes through a helper user namespace.
type HelperMode int

// Helper modes.
const (
	// HelperAuto writes directly, and retries through the helper only
	// when the direct write is refused with EPERM while the caller lacks
	// privilege (euid not 0 or no CAP_SETFCAP in its effective set).
	HelperAuto HelperMode = iota
	// HelperAlways writes through the helper only.
	HelperAlways
	// HelperNever writes directly only.
	HelperNever
)

// String returns "auto", "always" or "never".
func (m HelperMode) String() string {
	switch m {
	case HelperAuto:
		return "auto"
	case HelperAlways:
		return "always"
	case HelperNever:
		return "never"
	}
	return "HelperMode(" + strconv.Itoa(int(m)) + ")"
}

// ParseHelperMode parses "auto", "always" or "never".
func ParseHelperMode(s string) (HelperMode, error) {
	switch s {
	case "auto":
		return HelperAuto, nil
	case "always":
		return HelperAlways, nil
	case "never":
		return HelperNever, nil
	}
	return 0, fmt.Errorf("helper mode %q: want auto, always or never", s)
}

// SetterOptions configures a [Setter].
type SetterOptions struct {
	// Helper says when the helper user namespace is used.
	Helper HelperMode
	// UIDMap and GIDMap are the maps of the helper namespace. Zero maps
	// select the caller's rootless map (its own id as 0, then its
	// subordinate ranges; see [userns.RootlessMap]). A caller that is not
	// root may only give maps within its own id and ranges; root, which
	// has no ranges of its own, must give them to use a helper.
	UIDMap, GIDMap userns.Map
	// SubUIDFile and SubGIDFile default to [userns.SubUIDFile] and
	// [userns.SubGIDFile].
	SubUIDFile, SubGIDFile string
	// HelperStderr receives the helper's standard error; nil discards it.
	HelperStderr io.Writer
}

// Setter writes and removes capabilities like [Set] and [Remove], falling
// back to (or only using) a helper user namespace as [SetterOptions.Helper]
// says. At most one helper process is started, lazily, on first need, and
// it serves every later call; [Setter.Close] ends it. A Setter is safe for
// concurrent use (helper calls are served one at a time).
//
// # The helper
//
// An unprivileged caller cannot write security.capability on a file it
// does not own in the initial namespace, but it may own subordinate ids
// (/etc/subuid, /etc/subgid). The helper is this binary re-executed in a
// new user namespace whose maps newuidmap(1) and newgidmap(1) set from
// those ranges ([userns.StartHelper]); there it is root with CAP_SETFCAP
// over every file whose owner and group its maps cover. A caller without
// subordinate ids gets the single-id maps "0 <own uid> 1" and "0 <own
// gid> 1" (as with unshare -r): the helper then covers the caller's own
// files only, and writes rootid = the caller's uid. A revision-3
// value written there has its rootid read as an id of the helper
// namespace, and the kernel stores the matching host id
// (cap_convert_nscap in security/commoncap.c). The Setter therefore
// translates the wanted host rootid into the helper's namespace before
// writing, and always writes revision 3: a revision-2 write in the helper
// would be scoped to the helper's root, the caller's own uid. A revision-2
// value (host-wide caps, rootid 0) cannot be written through a helper.
//
// Before any helper write the Setter checks that the file's owner, group
// and the rootid are mapped by the helper; if not, it returns an error
// matching [ErrOutsideHelperMap] naming the id and the map, and writes
// nothing. The binary must call [userns.HelperMain] first thing in main
// (and in TestMain), so that the re-executed helper serves the requests.
type Setter struct {
	opts SetterOptions

	mu       sync.Mutex
	helper   *userns.Helper
	startErr error
	starts   int // helpers started (at most 1)
	closed   bool
}

// NewSetter returns a Setter with opts. It starts nothing.
func NewSetter(opts SetterOptions) *Setter {
	return &Setter{opts: opts}
}

// Helper operation names, registered in init so that the re-executed
// helper has them.
const (
	helperOpSet    = "fcaps.set"
	helperOpRemove = "fcaps.remove"
)

// helperReq is the request of the helper operations: where the file is
// (a root directory and a path resolved in it, or an absolute path walked
// without symlinks; see location) plus the identity the caller saw, so
// that any other file is refused, and, for set, the encoded value with the
// rootid already expressed in the helper's namespace.
type helperReq struct {
	Root  string `json:"root,omitempty"`
	Path  string `json:"path"`
	Dev   uint64 `json:"dev"`
	Ino   uint64 `json:"ino"`
	Value []byte `json:"value,omitempty"`
}

func init() {
	userns.RegisterHelperOp(helperOpSet, func(raw json.RawMessage, _ userns.HelperEmit) (json.RawMessage, error) {
		var r helperReq
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, err
		}
		return nil, helperDo(r, "setxattr", func(p string) error {
			return sys.Setxattr(p, AttrName, r.Value, 0, true)
		})
	})
	userns.RegisterHelperOp(helperOpRemove, func(raw json.RawMessage, _ userns.HelperEmit) (json.RawMessage, error) {
		var r helperReq
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, err
		}
		return nil, helperDo(r, "removexattr", func(p string) error {
			return sys.Removexattr(p, AttrName, true)
		})
	})
}

// helperDo runs fn, inside the helper, on the /proc/self/fd link of the
// regular file r names, opened O_PATH|O_NOFOLLOW as the caller resolved
// it, after checking it is still the file the caller inspected: whatever
// the path leads to now, no other inode is touched.
func helperDo(r helperReq, op string, fn func(procPath string) error) error {
	fd, err := helperOpen(r)
	if err != nil {
		return err
	}
	defer sys.Close(fd)
	st, err := sys.Fstat(fd)
	if err != nil {
		return &fs.PathError{Op: "fstat", Path: r.Path, Err: err}
	}
	if sys.ModeType(st.Mode) != 0 || st.Dev != r.Dev || st.Ino != r.Ino {
		return &fs.PathError{Op: "open", Path: r.Path, Err: errors.New("file replaced while being written")}
	}
	if err := fn(sys.ProcFdPath(fd)); err != nil {
		return &fs.PathError{Op: op, Path: r.Path, Err: err}
	}
	return nil
}

// helperOpen opens, inside the helper, the file r names, as
// [File.helperLocation] described it.
func helperOpen(r helperReq) (int, error) {
	if r.Root == "" {
		fd, _, err := Lookup{}.open(r.Path, sys.OPathNoFollow)
		return fd, err
	}
	root, err := OpenRoot(r.Root)
	if err != nil {
		return -1, err
	}
	defer func() { _ = root.Close() }()
	fd, err := sys.OpenInRoot(root.fd, r.Path, sys.OPathNoFollow)
	if err != nil {
		return -1, inRootError(r.Path, err)
	}
	return fd, nil
}

// Set writes c on the regular file at path, opened by the zero [Lookup]
// (no symlink followed), directly or through the helper (see [Setter]).
// Errors are as for [Set], plus [ErrOutsideHelperMap] and the helper's
// start errors (newuidmap missing, no subordinate ids).
func (s *Setter) Set(path string, c xattrfmt.FileCaps) error {
	if _, err := xattrfmt.Encode(c); err != nil {
		return &fs.PathError{Op: "encode", Path: path, Err: err}
	}
	f, err := Lookup{}.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	return s.SetFile(f, c)
}

// SetFile is [Setter.Set] on a file found by [Lookup.Open]. The helper, if
// it is used, finds the file again as f was found and refuses to act on
// any other inode.
func (s *Setter) SetFile(f *File, c xattrfmt.FileCaps) error {
	b, err := xattrfmt.Encode(c)
	if err != nil {
		return &fs.PathError{Op: "encode", Path: f.name, Err: err}
	}
	if s.opts.Helper == HelperAlways {
		return s.helperSet(f, c)
	}
	err = f.set(c, b)
	if !s.fallBack(err) {
		return err
	}
	if herr := s.helperSet(f, c); herr != nil {
		return s.fallbackError("setxattr", f.name, herr)
	}
	return nil
}

// Remove removes the capabilities of the regular file at path, opened by
// the zero [Lookup], directly or through the helper (see [Setter]). Errors
// are as for [Remove], plus [ErrOutsideHelperMap] when the file's owner or
// group is outside the helper's maps.
func (s *Setter) Remove(path string) error {
	f, err := Lookup{}.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	return s.RemoveFile(f)
}

// RemoveFile is [Setter.Remove] on a file found by [Lookup.Open].
func (s *Setter) RemoveFile(f *File) error {
	if s.opts.Helper == HelperAlways {
		return s.helperRemove(f)
	}
	err := f.remove()
	if !s.fallBack(err) {
		return err
	}
	if herr := s.helperRemove(f); herr != nil {
		return s.fallbackError("removexattr", f.name, herr)
	}
	return nil
}

// fallBack reports whether a direct-write error calls for the helper.
func (s *Setter) fallBack(err error) bool {
	return s.opts.Helper == HelperAuto && errors.Is(err, syscall.EPERM) && !privileged()
}

// fallbackError reports a helper failure after the direct attempt was
// refused for lack of privilege. When the helper could not start, the
// error says both; a refusal in or before the helper is returned as is (it
// names the real cause).
func (s *Setter) fallbackError(op, path string, herr error) error {
	s.mu.Lock()
	startErr := s.startErr
	s.mu.Unlock()
	if startErr == nil || !errors.Is(herr, startErr) {
		return herr
	}
	return &fs.PathError{Op: op, Path: path, Err: &Error{
		Errno:  syscall.EPERM,
		Reason: "the caller lacks CAP_SETFCAP over the file and no helper user namespace could be started",
		Err:    startErr,
	}}
}

// privileged reports whether the caller is root or has CAP_SETFCAP in its
// effective set: then a helper cannot do more than a direct write.
func privileged() bool {
	if os.Geteuid() == 0 {
		return true
	}
	eff, ok := sys.EffectiveCaps()
	return ok && eff&sys.CapSetfcap != 0
}

// getHelper starts the helper on first use and returns it; a start
// failure is remembered, so a command with many files reports it once per
// file without retrying.
func (s *Setter) getHelper() (*userns.Helper, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("setter closed")
	}
	if s.helper != nil || s.startErr != nil {
		return s.helper, s.startErr
	}
	s.starts++
	h, err := userns.StartHelper(context.Background(), userns.HelperOptions{
		UIDMap:     s.opts.UIDMap,
		GIDMap:     s.opts.GIDMap,
		SubUIDFile: s.opts.SubUIDFile,
		SubGIDFile: s.opts.SubGIDFile,
		Stderr:     s.opts.HelperStderr,
	})
	if err != nil {
		s.startErr = err
		return nil, err
	}
	s.helper = h
	return h, nil
}

// helperTarget returns what the helper needs to act on f: where to find
// it, its identity, and the helper with the file's owner and group checked
// against its maps.
func (s *Setter) helperTarget(op string, f *File) (*userns.Helper, helperReq, error) {
	path, st := f.name, f.st
	if m := sys.ModeType(st.Mode); m != 0 {
		return nil, helperReq{}, notRegular(op, path, m)
	}
	loc := f.helperLocation()
	h, err := s.getHelper()
	if err != nil {
		return nil, helperReq{}, &fs.PathError{Op: op, Path: path, Err: err}
	}
	if _, err := h.UIDMap().ToNs(st.Uid); err != nil {
		return nil, helperReq{}, s.outsideMap(op, path, fmt.Sprintf("the file's owner uid %d", st.Uid), "uid", h.UIDMap())
	}
	if _, err := h.GIDMap().ToNs(st.Gid); err != nil {
		return nil, helperReq{}, s.outsideMap(op, path, fmt.Sprintf("the file's group gid %d", st.Gid), "gid", h.GIDMap())
	}
	return h, helperReq{Root: loc.root, Path: loc.path, Dev: st.Dev, Ino: st.Ino}, nil
}

// outsideMap refuses an id (what) that the helper's map m does not cover.
//
// The helper of an unprivileged caller maps exactly the ids it owns: the
// message names those as host ids (its own id and its subordinate ranges,
// from /etc/subuid or /etc/subgid), not the helper's inside layout.
func (s *Setter) outsideMap(op, path, what, kind string, m userns.Map) error {
	reason := fmt.Sprintf("%s is outside the helper user namespace's %s map %s", what, kind, m)
	if s.opts.UIDMap.IsZero() {
		reason = fmt.Sprintf("%s is outside the %ss the caller owns, %s (its own %s and its subordinate ranges, all that its helper user namespace maps)", what, kind, m.HostRangesText(), kind)
		if ext := m.Extents(); len(ext) == 1 && ext[0].Count == 1 && os.Geteuid() != 0 {
			reason = fmt.Sprintf("%s is outside the %ss the caller owns, only %d (the caller's own id only: it has no subordinate ids)", what, kind, ext[0].HostID)
		}
	}
	return &fs.PathError{Op: op, Path: path, Err: &Error{Kind: ErrOutsideHelperMap, Reason: reason + ": nothing written"}}
}

func (s *Setter) helperSet(f *File, c xattrfmt.FileCaps) error {
	path := f.name
	h, req, err := s.helperTarget("setxattr", f)
	if err != nil {
		return err
	}
	host := uint32(0)
	if c.Revision == xattrfmt.Revision3 {
		host = c.RootID
	}
	inNs, err := h.UIDMap().ToNs(host)
	if err != nil {
		what := fmt.Sprintf("rootid %d", host)
		if host == 0 {
			what = "rootid 0 (revision 2: capabilities honoured by the host)"
		}
		return s.outsideMap("setxattr", path, what, "uid", h.UIDMap())
	}
	v := c
	v.Revision, v.RootID = xattrfmt.Revision3, inNs
	if req.Value, err = xattrfmt.Encode(v); err != nil {
		return &fs.PathError{Op: "encode", Path: path, Err: err}
	}
	if err := h.Call(helperOpSet, req, nil); err != nil {
		return helperError("setxattr", path, err, func(errno error) error { return writeError("setxattr", path, errno, c) })
	}
	return nil
}

func (s *Setter) helperRemove(f *File) error {
	path := f.name
	h, req, err := s.helperTarget("removexattr", f)
	if err != nil {
		return err
	}
	if err := h.Call(helperOpRemove, req, nil); err != nil {
		return helperError("removexattr", path, err, func(errno error) error { return removeError("removexattr", path, errno) })
	}
	return nil
}

// helperError turns the error of a helper call into this package's
// errors: a kernel errno is explained by explain, as for a direct call.
func helperError(op, path string, err error, explain func(errno error) error) error {
	var he *userns.HelperOpError
	if errors.As(err, &he) && he.Errno == syscall.EACCES {
		return &fs.PathError{Op: op, Path: path, Err: &Error{
			Errno:  syscall.EACCES,
			Reason: "the helper user namespace cannot reach the file: each directory on its path must be searchable by the ids the helper maps, or by others",
		}}
	}
	if errors.As(err, &he) && he.Errno != 0 {
		return explain(he.Errno)
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}

// Close ends the helper, if one was started, and waits for it. The Setter
// cannot be used afterwards.
func (s *Setter) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.helper == nil {
		return nil
	}
	h := s.helper
	s.helper = nil
	return h.Close()
}
