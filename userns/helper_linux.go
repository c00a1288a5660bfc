package userns

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"

	"github.com/nscap/nscap/internal/sys"
)

// HelperEnv is the environment variable that marks a process as a helper
// started by [StartHelper]. Its values are internal.
const HelperEnv = "NSCAP_USERNS_HELPER"

// HelperEmit sends one event of a running operation to the caller's event
// handler (see [Helper.CallEvents]): ev is encoded as JSON. It is safe for
// concurrent use, blocks while the caller is handling earlier events, and
// fails once the operation has returned or the caller is gone.
type HelperEmit func(ev any) error

// HelperOpFunc is an operation run inside a helper namespace. It receives
// the JSON request of [Helper.Call] and an emitter of events, and returns
// a JSON result (nil means null). It runs as uid 0 of the helper
// namespace with all capabilities in it, one request at a time; the extra
// files of the helper are at hand through [HelperFile].
type HelperOpFunc func(req json.RawMessage, emit HelperEmit) (json.RawMessage, error)

var (
	opsMu sync.RWMutex
	ops   = map[string]HelperOpFunc{}
)

// RegisterHelperOp registers fn under name for helpers. Call it from an
// init function, so that the re-executed helper (the same binary) has it
// too. It panics when name is empty or registered twice: both are
// programming errors. Names starting with "userns." are reserved.
func RegisterHelperOp(name string, fn HelperOpFunc) {
	opsMu.Lock()
	defer opsMu.Unlock()
	if name == "" || fn == nil {
		panic("userns: RegisterHelperOp with empty name or nil func")
	}
	if _, dup := ops[name]; dup {
		panic("userns: helper op " + strconv.Quote(name) + " registered twice")
	}
	ops[name] = fn
}

// IDOp is a built-in helper operation: its result is an [IDInfo] of the
// helper process, to check what a helper namespace looks like from inside.
const IDOp = "userns.id"

// IDInfo is the result of [IDOp].
type IDInfo struct {
	EUID   int    `json:"euid"`
	EGID   int    `json:"egid"`
	CapEff string `json:"cap_eff"` // hex, as /proc/self/status shows it
	UIDMap string `json:"uid_map"` // /proc/self/uid_map as read inside
}

func init() {
	RegisterHelperOp(IDOp, func(json.RawMessage, HelperEmit) (json.RawMessage, error) {
		info := IDInfo{EUID: os.Geteuid(), EGID: os.Getegid()}
		if eff, ok := sys.EffectiveCaps(); ok {
			info.CapEff = fmt.Sprintf("%016x", eff)
		}
		if b, err := os.ReadFile("/proc/self/uid_map"); err == nil {
			info.UIDMap = string(b)
		}
		return json.Marshal(info)
	})
}

type helperRequest struct {
	Op  string          `json:"op"`
	Req json.RawMessage `json:"req,omitempty"`
}

type helperResult struct {
	Resp  json.RawMessage `json:"resp,omitempty"`
	Error string          `json:"error,omitempty"`
	Errno int             `json:"errno,omitempty"`
}

// HelperOptions configures [StartHelper]. The zero value gives the
// rootless map of the caller: [RootlessMap] of its uid and gid with its
// ranges from /etc/subuid and /etc/subgid or, for a caller that is not
// root and has no range there, the single-id map "0 <own id> 1".
type HelperOptions struct {
	// UIDMap and GIDMap are the maps of the helper namespace; outside ids
	// are ids of the caller's namespace. A zero Map selects the caller's
	// rootless map. Every outside id must be the caller's own id or in
	// its subordinate ranges, unless the caller is root.
	UIDMap, GIDMap Map
	// SubUIDFile and SubGIDFile default to [SubUIDFile] and [SubGIDFile].
	SubUIDFile, SubGIDFile string
	// Stderr receives the helper's standard error; nil discards it.
	Stderr io.Writer
	// ExtraFiles are handed to the helper, which gets file i back with
	// [HelperFile](i): descriptors the helper could not open itself (an
	// archive on stdin, a directory whose parents it cannot search). The
	// caller keeps its own copies and may close them once StartHelper
	// has returned.
	ExtraFiles []*os.File
}

// HelperOpError is an error returned by an operation in a helper. It
// unwraps to the operation's errno, when it had one, so errors.Is(err,
// unix.EPERM) works across the helper boundary.
type HelperOpError struct {
	Op    string
	Msg   string
	Errno syscall.Errno
}

// Error implements error.
func (e *HelperOpError) Error() string { return "helper op " + e.Op + ": " + e.Msg }

// Unwrap returns the errno, or nil.
func (e *HelperOpError) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

// Helper is a running helper process in its own user namespace, started
// by [StartHelper]. Its methods are safe for concurrent use; calls are
// served one at a time.
type Helper struct {
	mu       sync.Mutex
	cmd      *exec.Cmd
	req      *os.File
	res      *bufio.Reader
	resFile  *os.File
	ev       *bufio.Reader
	evFile   *os.File
	uid, gid Map
	closed   bool
}

// UIDMap returns the uid map of the helper namespace (outside ids in the
// caller's namespace).
func (h *Helper) UIDMap() Map { return h.uid }

// GIDMap returns the gid map of the helper namespace.
func (h *Helper) GIDMap() Map { return h.gid }

func (h *Helper) read(v *helperResult) error {
	line, err := h.res.ReadBytes('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("helper exited")
		}
		return err
	}
	return json.Unmarshal(line, v)
}

// Call runs the operation registered as op in the helper with req
// (marshalled to JSON) and unmarshals its result into resp (which may be
// nil). The events the operation emits are dropped. An error of the
// operation is a [*HelperOpError].
func (h *Helper) Call(op string, req, resp any) error {
	return h.CallEvents(op, req, resp, nil)
}

// CallEvents is [Helper.Call] with a handler of the events the operation
// emits (see [HelperEmit]; [HelperEvents] decodes them into a type). The
// handler is called on one goroutine, in the order of the events, and has
// handled every event when CallEvents returns. An error it returns kills
// the helper (the operation is cut short, later events are dropped) and
// is what CallEvents returns; the helper serves no more calls.
func (h *Helper) CallEvents(op string, req, resp any, handle func(json.RawMessage) error) error {
	raw, ok := req.(json.RawMessage)
	if !ok && req != nil {
		var err error
		if raw, err = json.Marshal(req); err != nil {
			return fmt.Errorf("helper op %s: encode request: %w", op, err)
		}
	}
	b, err := json.Marshal(helperRequest{Op: op, Req: raw})
	if err != nil {
		return fmt.Errorf("helper op %s: encode request: %w", op, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("helper op %s: helper closed", op)
	}
	if _, err := h.req.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("helper op %s: %w", op, err)
	}
	evDone := make(chan error, 1)
	go func() { evDone <- h.pumpEvents(handle) }()
	var res helperResult
	rerr := h.read(&res)
	if herr := <-evDone; herr != nil {
		return herr
	}
	if rerr != nil {
		return fmt.Errorf("helper op %s: %w", op, rerr)
	}
	if res.Error != "" {
		return &HelperOpError{Op: op, Msg: res.Error, Errno: syscall.Errno(res.Errno)}
	}
	if resp != nil && len(res.Resp) > 0 {
		if err := json.Unmarshal(res.Resp, resp); err != nil {
			return fmt.Errorf("helper op %s: decode result: %w", op, err)
		}
	}
	return nil
}

// pumpEvents passes the events of the running call to handle until their
// end (an empty line) or the end of the pipe. After an error of handle it
// kills the helper, drains the rest and returns that error.
func (h *Helper) pumpEvents(handle func(json.RawMessage) error) error {
	var herr error
	for {
		line, err := h.ev.ReadBytes('\n')
		if len(line) == 1 || err != nil {
			return herr // the end of the events, or of the helper
		}
		if handle == nil || herr != nil {
			continue
		}
		if herr = handle(json.RawMessage(line[:len(line)-1])); herr != nil {
			_ = h.cmd.Process.Kill() // Wait, in Close, reports the kill
		}
	}
}

// HelperEvents returns a handler for [Helper.CallEvents] that decodes each
// event into a T and passes it to fn.
func HelperEvents[T any](fn func(T) error) func(json.RawMessage) error {
	return func(raw json.RawMessage) error {
		var ev T
		if err := json.Unmarshal(raw, &ev); err != nil {
			return fmt.Errorf("decode helper event: %w", err)
		}
		return fn(ev)
	}
}

// Close ends the helper (closing its request pipe) and waits for it.
func (h *Helper) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	h.req.Close()
	err := h.cmd.Wait()
	h.resFile.Close()
	h.evFile.Close()
	if err != nil {
		return fmt.Errorf("helper: %w", err)
	}
	return nil
}
