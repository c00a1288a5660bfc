//go:build linux

package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/nscap/nscap/internal/sys"
	"github.com/nscap/nscap/userns"
)

// helperEvent is one progress event of a helper operation, streamed to
// the caller through [userns.HelperEmit].
type helperEvent struct {
	Type   string      `json:"t"` // "start", "item", "warning", "error", "diff"
	Path   string      `json:"path,omitempty"`
	Action Action      `json:"action,omitempty"`
	Size   int64       `json:"size,omitempty"`
	Caps   bool        `json:"caps,omitempty"` // a backup item stored a cap
	Op     string      `json:"op,omitempty"`   // of an *fs.PathError
	Msg    string      `json:"msg,omitempty"`
	Errno  int         `json:"errno,omitempty"`
	Diff   *Difference `json:"diff,omitempty"`
}

// errorEvent describes err, an error of the entry p, as an event of type
// typ, with the helper's paths rewritten by rw.
func errorEvent(typ, p string, err error, rw pathRewriter) helperEvent {
	ev := helperEvent{Type: typ, Path: rw.path(p), Msg: rw.text(err.Error())}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		ev.Op, ev.Path, ev.Msg = pe.Op, rw.path(pe.Path), rw.text(pe.Err.Error())
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		ev.Errno = int(errno)
	}
	return ev
}

// helperError is an error that crossed the helper boundary: its message,
// and the errno it wrapped (so errors.Is(err, unix.EPERM) still works).
type helperError struct {
	msg   string
	errno syscall.Errno
}

func (e *helperError) Error() string { return e.msg }

func (e *helperError) Unwrap() error {
	if e.errno == 0 {
		return nil
	}
	return e.errno
}

// err rebuilds the per-entry error of an "error" event.
func (ev helperEvent) err() error {
	inner := &helperError{msg: ev.Msg, errno: syscall.Errno(ev.Errno)}
	if ev.Op != "" {
		return &fs.PathError{Op: ev.Op, Path: ev.Path, Err: inner}
	}
	return inner
}

// helperCallError turns the error of the whole operation into one
// without the helper protocol's prefix, keeping its errno.
func helperCallError(err error) error {
	var he *userns.HelperOpError
	if errors.As(err, &he) {
		return &helperError{msg: he.Msg, errno: he.Errno}
	}
	return err
}

// eventHandler wraps the caller's handler of helper events: it remembers
// the error that stopped the helper, to tell it from the helper's own.
type eventHandler struct {
	handle  func(helperEvent) error
	aborted error
}

func (h *eventHandler) fn() func(json.RawMessage) error {
	return userns.HelperEvents(func(ev helperEvent) error {
		if err := h.handle(ev); err != nil {
			h.aborted = err
			return err
		}
		return nil
	})
}

// inherited returns extra file i of the helper, after checking that it
// is the file the caller described.
func inherited(i int, dev, ino uint64, what string) (*os.File, error) {
	f, err := userns.HelperFile(i)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	st, err := sys.Fstat(int(f.Fd()))
	if err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: what, Err: err}
	}
	if st.Dev != dev || st.Ino != ino {
		return nil, fmt.Errorf("%s: descriptor %d is not the file the caller opened", what, f.Fd())
	}
	return f, nil
}

// helperReporter sends the events of a backup or a restore run in the
// helper to the parent, messages in the caller's words; with the parent
// gone, a failed emit is of no concern (the helper is killed).
type helperReporter struct {
	emit userns.HelperEmit
	rw   pathRewriter
	// archiveNames: the paths are a backup's archive names, not
	// rewritten.
	archiveNames bool
}

func (r helperReporter) path(p string) string {
	if r.archiveNames {
		return p
	}
	return r.rw.path(p)
}

// StartFile sends nothing: the parent counts completed items.
func (helperReporter) StartFile(string) {}

func (r helperReporter) CompleteItem(p string, a Action, s ItemStats) {
	_ = r.emit(helperEvent{Type: "item", Path: r.path(p), Action: a, Size: s.Size, Caps: s.Caps})
}

func (r helperReporter) Warn(p string, err error) { _ = r.emit(r.event("warning", p, err)) }

func (r helperReporter) Error(p string, err error) error {
	_ = r.emit(r.event("error", p, err))
	return nil
}

// event describes the error of entry p.
func (r helperReporter) event(typ, p string, err error) helperEvent {
	ev := errorEvent(typ, p, err, r.rw)
	if r.archiveNames {
		ev.Path = p
	}
	return ev
}

// pathRewriter puts the caller's name of dest back in place of the
// helper's /proc/self/fd path.
type pathRewriter struct{ from, to string }

func (rw pathRewriter) path(p string) string {
	if p == rw.from {
		return rw.to
	}
	if rest, ok := strings.CutPrefix(p, rw.from+"/"); ok {
		return strings.TrimSuffix(rw.to, "/") + "/" + rest
	}
	return p
}

func (rw pathRewriter) text(s string) string {
	return strings.ReplaceAll(s, rw.from, strings.TrimSuffix(rw.to, "/"))
}

// err rewrites the message of err, keeping its errno.
func (rw pathRewriter) err(err error) error {
	e := &helperError{msg: rw.text(err.Error())}
	errors.As(err, &e.errno)
	return e
}

// withUnmappedOwner makes the EPERM or EACCES of an entry say which id
// is at fault when the inode refused has an owner or group outside the
// helper's maps: the helper's root has no privilege over such an inode
// (it sees it owned by the overflow id, 65534), and the errno alone does
// not tell the user why.
func withUnmappedOwner(handle func(helperEvent) error, hUID, hGID userns.Map) func(helperEvent) error {
	return func(ev helperEvent) error {
		if ev.Type == "error" && ev.Path != "" {
			if e := syscall.Errno(ev.Errno); e == syscall.EPERM || e == syscall.EACCES {
				ev.Msg += unmappedOwner(ev.Path, hUID, hGID)
			}
		}
		return handle(ev)
	}
}

// unmappedOwner returns ": its owner uid U is outside ..." when the owner
// or group of path, as the caller sees it, is not mapped by hUID or hGID;
// "" when both are, or path cannot be examined.
func unmappedOwner(path string, hUID, hGID userns.Map) string {
	st, err := sys.Lstat(path)
	if err != nil {
		return ""
	}
	_, uerr := hUID.ToNs(st.Uid)
	_, gerr := hGID.ToNs(st.Gid)
	switch {
	case uerr != nil && gerr != nil:
		return fmt.Sprintf(" (owner uid %d and group gid %d are outside the helper user namespace, which maps uids %s and gids %s)", st.Uid, st.Gid, hUID.HostRangesText(), hGID.HostRangesText())
	case uerr != nil:
		return fmt.Sprintf(" (owner uid %d is outside the helper user namespace, which maps uids %s)", st.Uid, hUID.HostRangesText())
	case gerr != nil:
		return fmt.Sprintf(" (group gid %d is outside the helper user namespace, which maps gids %s)", st.Gid, hGID.HostRangesText())
	}
	return ""
}
