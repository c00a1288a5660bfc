package restorer

import (
	"fmt"
	"strings"

	"github.com/nscap/nscap/internal/tarfmt"
)

// ErrNotInArchive is matched by a [*NotFoundError].
var ErrNotInArchive = fmt.Errorf("backup: not found in archive")

// NotFoundError lists the paths of [RestoreOptions.Paths] that no member
// of the archive matched (GNU tar: "Not found in archive"). The members
// that matched the others were restored.
type NotFoundError struct{ Paths []string }

func (e *NotFoundError) Error() string {
	return "not found in archive: " + strings.Join(e.Paths, ", ")
}

// Is matches [ErrNotInArchive].
func (e *NotFoundError) Is(target error) bool { return target == ErrNotInArchive }

// selection is the set of paths a restore is limited to.
type selection struct {
	paths []string        // cleaned ("etc/passwd")
	found map[string]bool // paths matched by a member
}

// newSelection cleans paths as member names are cleaned; nil paths select
// everything (a nil *selection).
func newSelection(paths []string) (*selection, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	s := &selection{found: map[string]bool{}}
	for _, p := range paths {
		c, err := tarfmt.CleanName(p)
		if err != nil {
			return nil, fmt.Errorf("path %q: %w", p, err)
		}
		s.paths = append(s.paths, c)
	}
	return s, nil
}

// match reports whether the member name (cleaned) is restored: it is one
// of the paths, lies below one, or is a directory above one (a parent,
// restored with its own metadata but not its other contents).
func (s *selection) match(name string, dir bool) bool {
	if s == nil {
		return true
	}
	ok := false
	for _, p := range s.paths {
		switch {
		case p == "." || name == p || strings.HasPrefix(name, p+"/"):
			s.found[p] = true
			ok = true
		case dir && (name == "." || strings.HasPrefix(p, name+"/")):
			ok = true
		}
	}
	return ok
}

// missing returns the error of the paths no member matched, or nil.
func (s *selection) missing() error {
	if s == nil {
		return nil
	}
	var out []string
	for _, p := range s.paths {
		if !s.found[p] {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return &NotFoundError{Paths: out}
}
