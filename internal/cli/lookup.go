package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"

	"github.com/nscap/nscap/fcaps"
)

// pathsHelp is the PATHS section of the help of set and remove.
const pathsHelp = `
PATHS
Outside a container's root no symlink is followed in any component of a
PATH (a relative PATH starts at the working directory): a symlink met is
refused, naming it, and nothing is done. A container's root user owns the
directories of its rootfs and could plant one (rootfs/usr/bin -> /usr/sbin)
to turn a write on its files into a write on the host's. So /bin/ping is
refused where /bin is a symlink to usr/bin: write /usr/bin/ping.

  --root DIR  DIR is a container's root directory, its "/": each PATH
              must be written below DIR (DIR/usr/bin/ping), or reach DIR's
              directory when walked without symlinks, and the rest of it
              is resolved as the container resolves it: symlinks are
              followed, but an absolute link and ".." start and stop at DIR
              (openat2(2) RESOLVE_IN_ROOT), so nothing leads out of it.
              DIR itself is opened as named. Other PATHs are refused.
  --pid PID   without --root, the root directory of process PID
              (/proc/PID/root) serves as DIR, for a PATH written below
              /proc/PID/root (the container's /usr/bin/ping is
              /proc/PID/root/usr/bin/ping) or one that reaches that
              directory (/var/lib/ct/rootfs/usr/bin/ping when the container
              runs in /var/lib/ct/rootfs); other PATHs are walked without
              symlinks. A process whose root is the caller's own serves
              only for PATHs below /proc/PID/root.

The last component of a PATH is never followed, with or without a root.
`

// openLookup returns how set and remove find their files: inside the
// --root DIR, confined to it; else inside the root directory of the --pid
// process where a path leads there; else without following any symlink.
// done releases the root.
func openLookup(root string, pid int) (l fcaps.Lookup, done func(), err error) {
	switch {
	case root != "":
		r, err := fcaps.OpenRoot(root)
		if err != nil {
			return l, nil, fmt.Errorf("--root %s: %w", root, err)
		}
		return fcaps.Lookup{Root: r, Confine: true}, func() { _ = r.Close() }, nil
	case pid != 0:
		r, err := fcaps.OpenRoot("/proc/" + strconv.Itoa(pid) + "/root")
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return l, nil, pidError(pid, err)
			}
			return l, nil, fmt.Errorf("the root directory of pid %d: %w", pid, err)
		}
		return fcaps.Lookup{Root: r}, func() { _ = r.Close() }, nil
	}
	return l, func() {}, nil
}

// openFile opens path as lookup says; a symlink it refuses to follow gets
// a word on what the user can do (root is --root, or "").
func openFile(lookup fcaps.Lookup, root, path string) (*fcaps.File, error) {
	f, err := lookup.Open(path)
	if err == nil || !errors.Is(err, fcaps.ErrSymlink) {
		return f, err
	}
	if root == "" {
		return nil, fmt.Errorf("%w; give a path without symlinks, or name a container's root with --root DIR to resolve PATH inside it as the container does", err)
	}
	return nil, fmt.Errorf("%w; only a PATH written below --root %s is resolved inside it", err, root)
}
