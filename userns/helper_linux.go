package userns

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// HelperEnv is the environment variable that marks a process as a helper
// started by [StartHelper]. Its values are internal.
const HelperEnv = "NSCAP_USERNS_HELPER"

// HelperOpFunc is an operation run inside a helper namespace. It receives
// the JSON request of [Helper.Call] and returns a JSON result (nil means
// null). It runs as uid 0 of the helper namespace with all capabilities
// in it, one request at a time.
type HelperOpFunc func(req json.RawMessage) (json.RawMessage, error)

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
	CapEff string `json:"cap_eff"` // hex, from /proc/self/status
	UIDMap string `json:"uid_map"` // /proc/self/uid_map as read inside
}

func init() {
	RegisterHelperOp(IDOp, func(json.RawMessage) (json.RawMessage, error) {
		info := IDInfo{EUID: os.Geteuid(), EGID: os.Getegid()}
		if b, err := os.ReadFile("/proc/self/status"); err == nil {
			for l := range strings.SplitSeq(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
					info.CapEff = strings.TrimSpace(v)
				}
			}
		}
		if b, err := os.ReadFile("/proc/self/uid_map"); err == nil {
			info.UIDMap = string(b)
		}
		return json.Marshal(info)
	})
}

// helper protocol: fd 3 carries requests (parent to helper), fd 4 results.
// Stage "1" waits for the line "go" on fd 3 (its maps are then written) and
// re-executes itself as stage "2": execve by uid 0 of the namespace is
// what grants the capabilities, which the first execve, made while no map
// was written, dropped. Stage 2 writes a hello result, then serves one
// request per line until fd 3 closes.
type helperRequest struct {
	Op  string          `json:"op"`
	Req json.RawMessage `json:"req,omitempty"`
}

type helperResult struct {
	Resp  json.RawMessage `json:"resp,omitempty"`
	Error string          `json:"error,omitempty"`
	Errno int             `json:"errno,omitempty"`
}

// HelperMain serves as a helper when the process was started by
// [StartHelper] (the [HelperEnv] marker is set), and then exits; otherwise
// it returns at once. Every binary that uses [StartHelper] — the nscap
// command, and test binaries of packages that start helpers (through
// TestMain) — must call it first thing in main, after all init functions
// have registered their operations.
func HelperMain() {
	stage := os.Getenv(HelperEnv)
	if stage == "" {
		return
	}
	os.Exit(helperMain(stage))
}

func helperMain(stage string) int {
	in := os.NewFile(3, "helper-requests")
	out := os.NewFile(4, "helper-results")
	if in == nil || out == nil {
		fmt.Fprintln(os.Stderr, "userns helper: missing fds 3 and 4")
		return 2
	}
	switch stage {
	case "1":
		// Read byte by byte: nothing after the line may be consumed,
		// since the next stage reads the same pipe.
		var line []byte
		b := make([]byte, 1)
		for {
			n, err := in.Read(b)
			if n == 0 || err != nil {
				return 3 // parent gave up
			}
			if b[0] == '\n' {
				break
			}
			line = append(line, b[0])
		}
		if string(line) != "go" {
			return 3
		}
		env := []string{HelperEnv + "=2"}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, HelperEnv+"=") {
				env = append(env, kv)
			}
		}
		err := syscall.Exec("/proc/self/exe", []string{os.Args[0]}, env)
		fmt.Fprintf(os.Stderr, "userns helper: re-exec: %v\n", err)
		return 2
	case "2":
	default:
		fmt.Fprintf(os.Stderr, "userns helper: unknown stage %q\n", stage)
		return 2
	}
	enc := json.NewEncoder(out)
	if err := enc.Encode(helperResult{}); err != nil {
		return 2
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var req helperRequest
		var res helperResult
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			res.Error = "decode request: " + err.Error()
		} else {
			opsMu.RLock()
			fn := ops[req.Op]
			opsMu.RUnlock()
			if fn == nil {
				res.Error = "unknown helper op " + strconv.Quote(req.Op)
			} else if resp, err := fn(req.Req); err != nil {
				res.Error = err.Error()
				res.Errno = int(errnoOf(err))
			} else {
				res.Resp = resp
			}
		}
		if err := enc.Encode(res); err != nil {
			return 2
		}
	}
	return 0
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
	// SubUIDFile and SubGIDFile default to /etc/subuid and /etc/subgid.
	SubUIDFile, SubGIDFile string
	// Stderr receives the helper's standard error; nil discards it.
	Stderr io.Writer
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
	uid, gid Map
	closed   bool
}

// UIDMap returns the uid map of the helper namespace (outside ids in the
// caller's namespace).
func (h *Helper) UIDMap() Map { return h.uid }

// GIDMap returns the gid map of the helper namespace.
func (h *Helper) GIDMap() Map { return h.gid }

// StartHelper starts a helper: the calling binary re-executed from
// /proc/self/exe with the [HelperEnv] marker, in a new user namespace
// created by clone(CLONE_NEWUSER) (the multithreaded caller never
// unshares), whose maps are written by newuidmap(1) and newgidmap(1)
// (shadow's setuid helpers, which check /etc/subuid and /etc/subgid) or,
// when the caller is root, directly. The helper then runs as uid 0 of
// that namespace with all capabilities in it, and serves [Helper.Call]
// until [Helper.Close]. The binary must call [HelperMain].
//
// A caller that is not root and has no subordinate uids (no line in the
// subuid file, or no such file) gets the single-id uid map "0 <own euid>
// 1", which the kernel lets the owner of a namespace write without
// privilege: StartHelper writes it to /proc/PID/uid_map itself, as
// unshare -r does, without newuidmap. Likewise without subordinate gids:
// "deny" goes to /proc/PID/setgroups, then "0 <own egid> 1" to gid_map.
// Such a helper can act on the caller's own files only.
//
// Errors name the cause: newuidmap or newgidmap missing
// ([exec.ErrNotFound]), no subordinate ids for root ([ErrNoSubID]), an
// outside id outside the caller's ranges ([ErrUnmapped]), or the tool's
// own message.
func StartHelper(ctx context.Context, opts HelperOptions) (*Helper, error) {
	hm, err := helperMaps(opts)
	if err != nil {
		return nil, fmt.Errorf("start helper: %w", err)
	}
	uidMap, gidMap := hm.uid, hm.gid
	root := os.Geteuid() == 0
	var newuidmap, newgidmap string
	if !root && !hm.uidSingle {
		if newuidmap, err = exec.LookPath("newuidmap"); err != nil {
			return nil, fmt.Errorf("start helper: %w (install the uidmap package)", err)
		}
	}
	if !root && !hm.gidSingle {
		if newgidmap, err = exec.LookPath("newgidmap"); err != nil {
			return nil, fmt.Errorf("start helper: %w (install the uidmap package)", err)
		}
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	resR, resW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	cmd.Args = []string{os.Args[0]}
	cmd.Env = append(os.Environ(), HelperEnv+"=1")
	cmd.ExtraFiles = []*os.File{reqR, resW}
	cmd.Stderr = opts.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER,
		Pdeathsig:  syscall.SIGKILL,
	}
	if root {
		// Root needs no setuid tool: the runtime writes the maps between
		// clone and execve.
		cmd.SysProcAttr.UidMappings = idMappings(uidMap)
		cmd.SysProcAttr.GidMappings = idMappings(gidMap)
		cmd.SysProcAttr.GidMappingsEnableSetgroups = true
		// Root's own kuid is usually not in the map: become uid 0 of
		// the namespace, so the execve grants its capabilities.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	err = cmd.Start()
	reqR.Close()
	resW.Close()
	if err != nil {
		reqW.Close()
		resR.Close()
		return nil, fmt.Errorf("start helper: %w", err)
	}
	h := &Helper{cmd: cmd, req: reqW, res: bufio.NewReader(resR), resFile: resR, uid: uidMap, gid: gidMap}
	fail := func(err error) (*Helper, error) {
		_ = h.Close() // the first error is the one to report
		return nil, fmt.Errorf("start helper: %w", err)
	}
	if !root {
		pid := strconv.Itoa(cmd.Process.Pid)
		if hm.uidSingle {
			err = writeSingleMap(pid, "uid_map", uidMap)
		} else {
			err = runIDMapTool(newuidmap, pid, uidMap)
		}
		if err != nil {
			return fail(err)
		}
		if hm.gidSingle {
			// An unprivileged gid_map needs setgroups denied first.
			err = writeProcFile(pid, "setgroups", "deny")
			if err == nil {
				err = writeSingleMap(pid, "gid_map", gidMap)
			}
		} else {
			err = runIDMapTool(newgidmap, pid, gidMap)
		}
		if err != nil {
			return fail(err)
		}
	}
	if _, err := io.WriteString(h.req, "go\n"); err != nil {
		return fail(err)
	}
	var hello helperResult
	if err := h.read(&hello); err != nil {
		return fail(fmt.Errorf("helper did not start: %w", err))
	}
	return h, nil
}

func idMappings(m Map) []syscall.SysProcIDMap {
	var out []syscall.SysProcIDMap
	for _, e := range m.extents {
		out = append(out, syscall.SysProcIDMap{ContainerID: int(e.NsID), HostID: int(e.HostID), Size: int(e.Count)})
	}
	return out
}

func runIDMapTool(tool, pid string, m Map) error {
	args := []string{pid}
	for _, e := range m.extents {
		args = append(args, strconv.FormatUint(uint64(e.NsID), 10), strconv.FormatUint(uint64(e.HostID), 10), strconv.FormatUint(uint64(e.Count), 10))
	}
	out, err := exec.Command(tool, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// writeProcFile writes text to /proc/PID/name in one write(2).
func writeProcFile(pid, name, text string) error {
	p := "/proc/" + pid + "/" + name
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", text, p, err)
	}
	return nil
}

// writeSingleMap writes the one-extent map m, the caller's own id, to
// /proc/PID/name (uid_map or gid_map).
func writeSingleMap(pid, name string, m Map) error {
	e := m.extents[0]
	return writeProcFile(pid, name, fmt.Sprintf("%d %d %d\n", e.NsID, e.HostID, e.Count))
}

// resolvedMaps are the maps of a helper and, for each, whether it is the
// single-id map of a caller without subordinate ids, written without
// newuidmap or newgidmap.
type resolvedMaps struct {
	uid, gid             Map
	uidSingle, gidSingle bool
}

// helperMaps resolves the maps of opts and checks them against the
// caller's subordinate ranges. A caller that is not root and has no range
// in a file gets the single-id map of its own effective id (which the
// kernel allows it to write), and may only name that map.
func helperMaps(opts HelperOptions) (resolvedMaps, error) {
	subuid, subgid := opts.SubUIDFile, opts.SubGIDFile
	if subuid == "" {
		subuid = "/etc/subuid"
	}
	if subgid == "" {
		subgid = "/etc/subgid"
	}
	root := os.Geteuid() == 0
	if root && !opts.UIDMap.IsZero() && !opts.GIDMap.IsZero() {
		return resolvedMaps{uid: opts.UIDMap, gid: opts.GIDMap}, nil
	}
	myUID, myGID := uint32(os.Getuid()), uint32(os.Getgid())
	name := ""
	if u, err := user.LookupId(strconv.FormatUint(uint64(myUID), 10)); err == nil {
		name = u.Username
	}
	// effective is the id the kernel checks a single-id map against.
	pick := func(m Map, file string, self, effective uint32) (Map, bool, error) {
		ranges, err := ReadSubID(file, name, self)
		if !root && (errors.Is(err, ErrNoSubID) || errors.Is(err, fs.ErrNotExist)) {
			single, serr := NewMap([]Extent{{NsID: 0, HostID: effective, Count: 1}})
			if serr != nil {
				return Map{}, false, serr
			}
			if m.IsZero() {
				return single, true, nil
			}
			if len(m.extents) != 1 || m.extents[0].HostID != effective || m.extents[0].Count != 1 {
				e := &MapError{
					Extent: -1, Err: ErrUnmapped,
					Detail: fmt.Sprintf("the caller has no subordinate ids in %s: the map %s may only be its own id %d, count 1", file, m, effective),
				}
				if len(m.extents) == 1 {
					e.Extent, e.Text, e.Detail = 0, m.extents[0].String(), fmt.Sprintf("the caller has no subordinate ids in %s: the map may only be its own id %d, count 1", file, effective)
				}
				return Map{}, false, e
			}
			return m, true, nil
		}
		if err != nil {
			return Map{}, false, err
		}
		if m.IsZero() {
			m, err := RootlessMap(self, ranges)
			return m, false, err
		}
		if !root {
			if err := checkAllowed(m, self, ranges, file); err != nil {
				return Map{}, false, err
			}
		}
		return m, false, nil
	}
	var hm resolvedMaps
	var err error
	if hm.uid, hm.uidSingle, err = pick(opts.UIDMap, subuid, myUID, uint32(os.Geteuid())); err != nil {
		return resolvedMaps{}, err
	}
	if hm.gid, hm.gidSingle, err = pick(opts.GIDMap, subgid, myGID, uint32(os.Getegid())); err != nil {
		return resolvedMaps{}, err
	}
	return hm, nil
}

// checkAllowed reports an outside id of m that is neither self nor in
// ranges, as newuidmap would refuse it.
func checkAllowed(m Map, self uint32, ranges []SubIDRange, file string) error {
	for i, e := range m.extents {
		if e.Count == 1 && e.HostID == self {
			continue
		}
		ok := false
		for _, r := range ranges {
			if e.HostID >= r.Start && uint64(e.HostID)+uint64(e.Count) <= uint64(r.Start)+uint64(r.Count) {
				ok = true
				break
			}
		}
		if !ok {
			return &MapError{
				Extent: i, Text: e.String(), Err: ErrUnmapped,
				Detail: fmt.Sprintf("outside ids are not the caller's own id %d nor inside one of its ranges in %s", self, file),
			}
		}
	}
	return nil
}

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
// nil). An error of the operation is a [*HelperOpError].
func (h *Helper) Call(op string, req, resp any) error {
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
	var res helperResult
	if err := h.read(&res); err != nil {
		return fmt.Errorf("helper op %s: %w", op, err)
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
	if err != nil {
		return fmt.Errorf("helper: %w", err)
	}
	return nil
}
