package fcaps

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/nscap/nscap/xattrfmt"
)

func scopeText(s Scope) string {
	switch s.Kind {
	case ScopeAll:
		return "all user namespaces"
	case ScopeNone:
		return "no namespace"
	case ScopeUnknown:
		if s.InContainer {
			return containerScopeText(s)
		}
		return "unknown namespaces"
	case ScopeRelative:
		if s.RootID == 0 {
			return "the namespace the archive is restored into"
		}
		return fmt.Sprintf("the nested namespace whose root is uid %d of the restore target", s.RootID)
	case ScopeNamespaces:
	}
	live := strings.Join(s.Strings(), ", ")
	switch {
	case s.InContainer && len(s.Namespaces) == 0:
		return containerScopeText(s) + " (none live)"
	case s.InContainer:
		return containerScopeText(s) + ": " + live
	case len(s.Namespaces) == 0:
		return "no live namespace"
	}
	return live
}

// containerScopeText names the namespace of caps scoped inside a
// container, live or not.
func containerScopeText(s Scope) string {
	if s.ContainerRootID == 0 {
		return "the container's own namespace"
	}
	return fmt.Sprintf("the namespace whose root is container uid %d", s.ContainerRootID)
}

func malformedText(raw []byte, err error) string {
	switch {
	case len(raw) == 0:
		return "zero-length security.capability: every exec of the file fails with EINVAL, and chown or writes do not clear it"
	case errors.Is(err, xattrfmt.ErrBadFlags):
		return fmt.Sprintf("security.capability with stray flags (%v): refused by getxattr, yet honoured at exec (hidden capabilities)", err)
	}
	return fmt.Sprintf("malformed security.capability (%v): exec of the file fails with EINVAL", err)
}

func setNames(s xattrfmt.CapSet) string {
	var names []string
	for bit := range 64 {
		if s.Has(bit) {
			names = append(names, xattrfmt.Name(bit))
		}
	}
	return strings.Join(names, ", ")
}

func setidText(bits fs.FileMode) string {
	switch bits {
	case fs.ModeSetuid:
		return "setuid"
	case fs.ModeSetgid:
		return "setgid"
	}
	return "setuid and setgid"
}

// modeText formats the permission bits as ls does ("-rwsr-xr-x").
func modeText(m fs.FileMode) string {
	b := []byte(fs.FileMode(m & fs.ModePerm).String())
	if m.IsDir() {
		b[0] = 'd'
	}
	set := func(i int, on bool, lower, upper byte) {
		if !on {
			return
		}
		if b[i] == 'x' {
			b[i] = lower
		} else {
			b[i] = upper
		}
	}
	set(3, m&fs.ModeSetuid != 0, 's', 'S')
	set(6, m&fs.ModeSetgid != 0, 's', 'S')
	set(9, m&fs.ModeSticky != 0, 't', 'T')
	return string(b)
}

func typeText(m fs.FileMode) string {
	switch m.Type() {
	case fs.ModeDir:
		return "directory"
	case fs.ModeSymlink:
		return "symlink"
	case fs.ModeNamedPipe:
		return "fifo"
	case fs.ModeSocket:
		return "socket"
	case fs.ModeDevice | fs.ModeCharDevice:
		return "character device"
	case fs.ModeDevice:
		return "block device"
	}
	return "non-regular file"
}
