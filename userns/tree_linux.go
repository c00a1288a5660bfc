package userns

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// Node is one user namespace in the tree that [Tree] returns.
type Node struct {
	NSRef
	// PIDs are the processes found in the namespace, ascending. It is
	// empty for a namespace that is only held by a child namespace.
	PIDs []int `json:"pids"`
	// Self is true for the caller's own namespace.
	Self bool `json:"self"`
	// UIDMap, GIDMap, RootID and RootVisible are as in [Namespace]. For a
	// namespace without processes they are read through a helper process
	// that joins the namespace (see [Tree]).
	UIDMap      Map    `json:"uid_map"`
	GIDMap      Map    `json:"gid_map"`
	RootID      uint32 `json:"rootid"`
	RootVisible bool   `json:"root_visible"`
	// MapErr says why the maps could not be read, or is nil.
	MapErr error `json:"-"`
	// Parent is nil for a root of the tree.
	Parent *Node `json:"-"`
	// Children are the child namespaces, ordered by inode.
	Children []*Node `json:"children,omitempty"`
}

// Tree returns every user namespace visible from /proc/[0-9]*/ns/user,
// grouped, with member pids, owner, maps and root uid, linked to their
// parents with the NS_GET_PARENT ioctl. The first root returned is the
// caller's own namespace; any further roots are namespaces outside the
// caller's scope (not descendants of its namespace), each with the
// descendants it has among the visible ones.
//
// A namespace with no process left but a child still alive is found
// through its child's parent link. Its maps cannot be read from /proc, so
// Tree starts a helper that joins it: nsenter(1) (util-linux) runs
// setns(CLONE_NEWUSER) on an fd of the namespace and execs cat(1), whose
// /proc/PID/uid_map is then read from the caller. A single-threaded C
// program is needed because setns into a user namespace fails for a
// multithreaded process, and every Go process is multithreaded before its
// first line of Go runs. Joining needs CAP_SYS_ADMIN over the namespace:
// without it (or without nsenter) the node's MapErr is set and the tree is
// still returned.
//
// Processes that exit during the scan are skipped.
func Tree() ([]*Node, error) {
	self, err := selfKey()
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	nodes := map[nsKey]*Node{}
	held := map[nsKey]*os.File{} // fds of namespaces without processes
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	for _, de := range ents {
		pid, err := strconv.Atoi(de.Name())
		if err != nil || pid <= 0 {
			continue
		}
		path := procPath(pid, "ns/user")
		f, err := os.Open(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) || errors.Is(err, fs.ErrPermission) {
				continue
			}
			return nil, err
		}
		err = addNamespace(nodes, held, f, path, pid)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	var roots []*Node
	for k, n := range nodes {
		n.Self = k == self
		slices.Sort(n.PIDs)
		slices.SortFunc(n.Children, func(a, b *Node) int { return cmp.Compare(a.Inode, b.Inode) })
		if n.Parent == nil {
			roots = append(roots, n)
		}
		n.readMaps(held[k])
	}
	slices.SortFunc(roots, func(a, b *Node) int {
		if a.Self != b.Self {
			if a.Self {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Inode, b.Inode)
	})
	return roots, nil
}

// addNamespace records pid in the namespace open as f, and the chain of
// parents of that namespace not seen yet.
func addNamespace(nodes map[nsKey]*Node, held map[nsKey]*os.File, f *os.File, path string, pid int) error {
	ref, err := nsRefOf(f, path)
	if err != nil {
		return err
	}
	if n, ok := nodes[ref.key()]; ok {
		n.PIDs = append(n.PIDs, pid)
		if h := held[ref.key()]; h != nil {
			h.Close()
			delete(held, ref.key())
		}
		return nil
	}
	n := &Node{NSRef: ref, PIDs: []int{pid}}
	nodes[ref.key()] = n
	cur := f
	for range maxDepth {
		p, err := parentOf(cur, path)
		if cur != f {
			// Keep the fd only for a namespace without processes so
			// far: a helper may need to join it.
			if len(n.PIDs) == 0 {
				held[n.key()] = cur
			} else {
				cur.Close()
			}
		}
		if err != nil || p == nil {
			return err
		}
		pref, err := nsRefOf(p, path)
		if err != nil {
			p.Close()
			return err
		}
		if pn, ok := nodes[pref.key()]; ok {
			pn.Children = append(pn.Children, n)
			n.Parent = pn
			p.Close()
			return nil
		}
		pn := &Node{NSRef: pref}
		nodes[pref.key()] = pn
		pn.Children = append(pn.Children, n)
		n.Parent = pn
		n, cur = pn, p
	}
	if cur != f {
		if len(n.PIDs) == 0 {
			held[n.key()] = cur
		} else {
			cur.Close()
		}
	}
	return nil
}

// readMaps fills the maps of n, from /proc for a member pid or through a
// helper joining nsFile.
func (n *Node) readMaps(nsFile *os.File) {
	for _, pid := range n.PIDs {
		uid, gid, err := ReadMaps(pid)
		if err != nil {
			n.MapErr = err
			continue
		}
		n.UIDMap, n.GIDMap, n.MapErr = uid, gid, nil
		n.RootID, n.RootVisible = rootFromMap(uid, n.Self)
		return
	}
	if len(n.PIDs) > 0 {
		return
	}
	if nsFile == nil {
		n.MapErr = errors.New("userns: no process and no namespace fd")
		return
	}
	uid, gid, err := joinAndReadMaps(nsFile, n.key())
	if err != nil {
		n.MapErr = err
		return
	}
	n.UIDMap, n.GIDMap = uid, gid
	n.RootID, n.RootVisible = rootFromMap(uid, n.Self)
}

// joinAndReadMaps starts nsenter(1) to join the namespace open as nsFile,
// waits until the process is in it, reads its maps from the caller and
// ends it.
func joinAndReadMaps(nsFile *os.File, want nsKey) (uid, gid Map, err error) {
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return Map{}, Map{}, fmt.Errorf("join user namespace: %w", err)
	}
	cat, err := exec.LookPath("cat")
	if err != nil {
		return Map{}, Map{}, fmt.Errorf("join user namespace: %w", err)
	}
	cmd := exec.Command(nsenter, "--user=/proc/self/fd/3", "--preserve-credentials", "--", cat)
	cmd.ExtraFiles = []*os.File{nsFile}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return Map{}, Map{}, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return Map{}, Map{}, err
	}
	if err := cmd.Start(); err != nil {
		return Map{}, Map{}, fmt.Errorf("join user namespace: %w", err)
	}
	done := make(chan error, 1)
	var msg []byte
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			msg = append(msg, sc.Bytes()...)
		}
		done <- cmd.Wait()
	}()
	path := procPath(cmd.Process.Pid, "ns/user")
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-done:
			return Map{}, Map{}, fmt.Errorf("join user namespace: nsenter: %v: %s", err, msg)
		default:
		}
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err == nil && (nsKey{st.Dev, st.Ino}) == want {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill() // it may have exited meanwhile
			<-done                 //nolint:errcheck // the error is nsenter's death by the kill
			return Map{}, Map{}, errors.New("join user namespace: nsenter did not enter the namespace in time")
		}
		time.Sleep(2 * time.Millisecond)
	}
	uid, gid, err = ReadMaps(cmd.Process.Pid)
	_ = stdin.Close() // nsenter's cat exits on EOF; its status is checked below
	if werr := <-done; werr != nil && err == nil {
		err = fmt.Errorf("join user namespace: nsenter: %v: %s", werr, msg)
	}
	return uid, gid, err
}
