package userns

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

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
// outside id outside the caller's ranges ([ErrUnmapped], see
// [OwnedIDs.Check]), or the tool's own message.
func StartHelper(ctx context.Context, opts HelperOptions) (*Helper, error) {
	hm, err := helperMaps(opts)
	if err != nil {
		return nil, fmt.Errorf("start helper: %w", err)
	}
	tools, err := hm.tools()
	if err != nil {
		return nil, fmt.Errorf("start helper: %w", err)
	}
	h, err := spawnHelper(ctx, opts, hm)
	if err != nil {
		return nil, fmt.Errorf("start helper: %w", err)
	}
	if err := hm.write(h.cmd.Process.Pid, tools); err != nil {
		_ = h.Close() // the first error is the one to report
		return nil, fmt.Errorf("start helper: %w", err)
	}
	if _, err := io.WriteString(h.req, "go\n"); err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("start helper: %w", err)
	}
	var hello helperResult
	if err := h.read(&hello); err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("start helper: helper did not start: %w", err)
	}
	return h, nil
}

// spawnHelper starts the helper process, stage 1, in a new user
// namespace, with its pipes and opts.ExtraFiles. For root the runtime
// writes the maps between clone and execve.
func spawnHelper(ctx context.Context, opts HelperOptions, hm resolvedMaps) (*Helper, error) {
	var pipes [6]*os.File // request, result and event pipes: read, write
	closeAll := func() {
		for _, f := range pipes {
			if f != nil {
				f.Close()
			}
		}
	}
	for i := 0; i < len(pipes); i += 2 {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, err
		}
		pipes[i], pipes[i+1] = r, w
	}
	reqR, reqW, resR, resW, evR, evW := pipes[0], pipes[1], pipes[2], pipes[3], pipes[4], pipes[5]
	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	cmd.Args = []string{os.Args[0]}
	cmd.Env = append(os.Environ(), HelperEnv+"=1", helperFilesEnv+"="+strconv.Itoa(len(opts.ExtraFiles)))
	cmd.ExtraFiles = append([]*os.File{reqR, resW, evW}, opts.ExtraFiles...)
	cmd.Stderr = opts.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER,
		Pdeathsig:  syscall.SIGKILL,
	}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.UidMappings = idMappings(hm.uid)
		cmd.SysProcAttr.GidMappings = idMappings(hm.gid)
		cmd.SysProcAttr.GidMappingsEnableSetgroups = true
		// Root's own kuid is usually not in the map: become uid 0 of
		// the namespace, so the execve grants its capabilities.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	err := cmd.Start()
	reqR.Close()
	resW.Close()
	evW.Close()
	if err != nil {
		reqW.Close()
		resR.Close()
		evR.Close()
		return nil, err
	}
	return &Helper{
		cmd: cmd, req: reqW, res: bufio.NewReader(resR), resFile: resR,
		ev: bufio.NewReader(evR), evFile: evR, uid: hm.uid, gid: hm.gid,
	}, nil
}

// idMapTools are the paths of newuidmap and newgidmap, empty when the map
// is written otherwise.
type idMapTools struct{ uid, gid string }

// tools looks up the setuid tools that the maps of an unprivileged
// caller need.
func (hm resolvedMaps) tools() (idMapTools, error) {
	var t idMapTools
	if os.Geteuid() == 0 {
		return t, nil
	}
	var err error
	if !hm.uidSingle {
		if t.uid, err = exec.LookPath("newuidmap"); err != nil {
			return t, fmt.Errorf("%w (install the uidmap package)", err)
		}
	}
	if !hm.gidSingle {
		if t.gid, err = exec.LookPath("newgidmap"); err != nil {
			return t, fmt.Errorf("%w (install the uidmap package)", err)
		}
	}
	return t, nil
}

// write writes the maps of an unprivileged caller's helper, process pid:
// with the tools, or the single-id maps directly.
func (hm resolvedMaps) write(pid int, t idMapTools) error {
	if os.Geteuid() == 0 {
		return nil
	}
	p := strconv.Itoa(pid)
	var err error
	if hm.uidSingle {
		err = writeSingleMap(p, "uid_map", hm.uid)
	} else {
		err = runIDMapTool(t.uid, p, hm.uid)
	}
	if err != nil {
		return err
	}
	if hm.gidSingle {
		// An unprivileged gid_map needs setgroups denied first.
		if err := writeProcFile(p, "setgroups", "deny"); err != nil {
			return err
		}
		return writeSingleMap(p, "gid_map", hm.gid)
	}
	return runIDMapTool(t.gid, p, hm.gid)
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
