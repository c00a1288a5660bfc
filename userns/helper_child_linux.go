package userns

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/nscap/nscap/internal/sys"
)

// Descriptors of a helper process: fd 3 carries requests (parent to
// helper), fd 4 results, fd 5 the events of the running operation; the
// extra files of [HelperOptions.ExtraFiles] follow from fd 6 on, their
// number in helperFilesEnv.
const (
	helperReqFD   = 3
	helperResFD   = 4
	helperEventFD = 5
	helperFile0FD = 6
)

// helperFilesEnv tells the helper how many extra files it inherited.
const helperFilesEnv = "NSCAP_USERNS_HELPER_FILES"

// helperFiles are the extra files of this helper process (nil outside a
// helper), set up by helperMain.
var helperFiles []*os.File

// HelperFile returns extra file i of [HelperOptions.ExtraFiles] in the
// helper process that serves the operation calling it. Every call with
// the same i returns the same *os.File; an operation may close it, and
// then it is gone for later operations of that helper. Outside a helper,
// or for an i that was not passed, it returns an error.
func HelperFile(i int) (*os.File, error) {
	if i < 0 || i >= len(helperFiles) {
		return nil, fmt.Errorf("helper file %d: the helper has %d extra files", i, len(helperFiles))
	}
	return helperFiles[i], nil
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

// helper protocol: stage "1" waits for the line "go" on the request pipe
// (its maps are then written) and re-executes itself as stage "2": execve
// by uid 0 of the namespace is what grants the capabilities, which the
// first execve, made while no map was written, dropped. Stage 2 writes a
// hello result, then serves one request per line until the request pipe
// closes.
func helperMain(stage string) int {
	in := os.NewFile(helperReqFD, "helper-requests")
	out := os.NewFile(helperResFD, "helper-results")
	events := os.NewFile(helperEventFD, "helper-events")
	if in == nil || out == nil || events == nil {
		fmt.Fprintln(os.Stderr, "userns helper: missing fds 3, 4 and 5")
		return 2
	}
	switch stage {
	case "1":
		return helperStage1(in)
	case "2":
	default:
		fmt.Fprintf(os.Stderr, "userns helper: unknown stage %q\n", stage)
		return 2
	}
	if err := inheritFiles(); err != nil {
		fmt.Fprintf(os.Stderr, "userns helper: %v\n", err)
		return 2
	}
	return serveHelper(in, out, &eventSink{w: events})
}

// helperStage1 waits for "go" and re-executes the helper as stage 2.
func helperStage1(in *os.File) int {
	// Read byte by byte: nothing after the line may be consumed, since
	// the next stage reads the same pipe.
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
}

// inheritFiles sets up helperFiles and marks every descriptor of the
// protocol and every extra file close-on-exec: they were inherited across
// two execve, but a process an operation starts must not hold them.
func inheritFiles() error {
	n := 0
	if v := os.Getenv(helperFilesEnv); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			return fmt.Errorf("bad %s=%q", helperFilesEnv, v)
		}
	}
	for fd := helperReqFD; fd < helperFile0FD+n; fd++ {
		if err := sys.SetCloseOnExec(fd); err != nil {
			return fmt.Errorf("descriptor %d: %w", fd, err)
		}
	}
	for i := range n {
		helperFiles = append(helperFiles, os.NewFile(uintptr(helperFile0FD+i), "helper file "+strconv.Itoa(i)))
	}
	return nil
}

// serveHelper answers the requests read from in on out, one at a time.
func serveHelper(in, out *os.File, events *eventSink) int {
	enc := json.NewEncoder(out)
	if err := enc.Encode(helperResult{}); err != nil {
		return 2
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		res := serveRequest(sc.Bytes(), events)
		if err := enc.Encode(res); err != nil {
			return 2
		}
	}
	return 0
}

// serveRequest runs one request line and returns its result. The end of
// its events goes out before the result, whatever the outcome, so the
// parent has handled them all when it has the result.
func serveRequest(line []byte, events *eventSink) helperResult {
	events.begin()
	defer events.end()
	var req helperRequest
	var res helperResult
	if err := json.Unmarshal(line, &req); err != nil {
		res.Error = "decode request: " + err.Error()
		return res
	}
	opsMu.RLock()
	fn := ops[req.Op]
	opsMu.RUnlock()
	if fn == nil {
		res.Error = "unknown helper op " + strconv.Quote(req.Op)
		return res
	}
	resp, err := fn(req.Req, events.emit)
	if err != nil {
		res.Error = err.Error()
		res.Errno = int(errnoOf(err))
		return res
	}
	res.Resp = resp
	return res
}

// eventSink writes the events of the running operation, one JSON value a
// line; an empty line ends the events of an operation.
type eventSink struct {
	mu   sync.Mutex
	w    *os.File
	live bool
}

// errEventAfterOp is what emit returns once its operation has returned.
var errEventAfterOp = errors.New("helper event after its operation returned")

func (s *eventSink) begin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live = true
}

func (s *eventSink) emit(ev any) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode helper event: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.live {
		return errEventAfterOp
	}
	_, err = s.w.Write(append(b, '\n'))
	return err
}

func (s *eventSink) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live = false
	// With the parent gone there is no one to tell of a failed write;
	// the result write that follows fails too.
	_, _ = s.w.Write([]byte{'\n'})
}
