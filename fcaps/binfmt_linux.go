package fcaps

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/nscap/nscap/internal/sys"
)

// HostBinfmtDir is where the host's binfmt_misc is mounted.
const HostBinfmtDir = "/proc/sys/fs/binfmt_misc"

// ReadBinfmt reads the binfmt_misc instance that applies to the audited
// files: with pid > 0, that of process pid's namespaces when it has one
// mounted at /proc/sys/fs/binfmt_misc in its root (Linux 6.7 lets a user
// namespace mount its own instance; read through /proc/PID/root), else the
// host's /proc/sys/fs/binfmt_misc. Each entry's interpreter is examined
// in the same root (owner, mode, directories, capabilities); symlinks are
// resolved inside that root, as the kernel resolves them for a process of
// the container. The host's machine comes from /proc/self/exe's ELF
// header. A missing binfmt_misc mount is no error: Mounted is false.
func ReadBinfmt(pid int) (*Binfmt, error) {
	host, err := hostMachine()
	if err != nil {
		return nil, err
	}
	root, dir, instance := "/", HostBinfmtDir, "the host's instance"
	if pid > 0 {
		proot := "/proc/" + strconv.Itoa(pid) + "/root"
		d := proot + HostBinfmtDir
		if _, err := os.Lstat(d + "/register"); err == nil {
			root, dir, instance = proot, d, fmt.Sprintf("the instance of pid %d", pid)
		} else if errors.Is(err, fs.ErrPermission) {
			return nil, err
		}
	}
	b := &Binfmt{Dir: dir, Instance: instance, Host: host, Interpreters: map[string]Interpreter{}}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, de := range ents {
		switch de.Name() {
		case "register":
			b.Mounted = true
			continue
		case "status":
			st, err := os.ReadFile(filepath.Join(dir, "status"))
			if err != nil {
				return nil, err
			}
			b.Enabled = strings.TrimSpace(string(st)) == "enabled"
			continue
		}
		f, err := os.Open(filepath.Join(dir, de.Name()))
		if err != nil {
			return nil, err
		}
		e, err := ParseBinfmtEntry(de.Name(), f)
		f.Close()
		if err != nil {
			return nil, err
		}
		b.Entries = append(b.Entries, e)
	}
	if !b.Mounted {
		b.Entries = nil
	}
	for _, e := range b.Entries {
		if _, ok := b.Interpreters[e.Interpreter]; !ok {
			b.Interpreters[e.Interpreter] = examineInterpreter(root, e.Interpreter)
		}
	}
	return b, nil
}

// hostMachine returns the ELF machine of the running program.
func hostMachine() (elf.Machine, error) {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	head := make([]byte, 64)
	if _, err := io.ReadFull(f, head); err != nil {
		return 0, fmt.Errorf("read /proc/self/exe: %w", err)
	}
	mm, ok := ELFMachine(head)
	if !ok {
		return 0, errors.New("/proc/self/exe is no ELF file")
	}
	return mm, nil
}

// examineInterpreter looks at the interpreter p inside root: its owner,
// mode, capabilities and the directories above it (the lexical parents,
// each resolved inside root).
func examineInterpreter(root, p string) Interpreter {
	in := Interpreter{Path: p}
	if root != "/" {
		in.Path = root + p
	}
	// /proc/PID/root is a magic link: followed here, on purpose.
	rfd, err := sys.Openat(sys.AtFdcwd, root, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		in.Err = &fs.PathError{Op: "open", Path: root, Err: err}
		return in
	}
	defer sys.Close(rfd)
	fd, err := sys.OpenInRoot(rfd, p, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK)
	if err != nil {
		in.Err = &fs.PathError{Op: "open", Path: in.Path, Err: err}
		return in
	}
	f := os.NewFile(uintptr(fd), in.Path)
	defer f.Close()
	st, err := sys.Fstat(fd)
	if err != nil {
		in.Err = &fs.PathError{Op: "fstat", Path: in.Path, Err: err}
		return in
	}
	in.Mode, in.UID, in.GID = statMode(st), st.Uid, st.Gid
	if c, err := FGet(f); err == nil {
		in.Caps = &c
	}
	for d := path.Dir(path.Clean("/" + p)); ; d = path.Dir(d) {
		dfd, err := sys.OpenInRoot(rfd, d, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC|syscall.O_NONBLOCK)
		if err != nil {
			break
		}
		dst, err := sys.Fstat(dfd)
		sys.Close(dfd)
		if err != nil {
			break
		}
		name := d
		if root != "/" {
			name = root + d
		}
		in.Dirs = append(in.Dirs, DirInfo{Path: name, Mode: statMode(dst), UID: dst.Uid, GID: dst.Gid})
		if d == "/" {
			break
		}
	}
	return in
}

// readHead returns the first HeadLen bytes of the regular file at p (not
// following a final symlink), nil when it cannot be read.
func readHead(p string) []byte {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	b := make([]byte, HeadLen)
	n, _ := io.ReadFull(f, b)
	return slices.Clip(b[:n])
}
