package cli

import (
	"runtime/debug"

	"github.com/nscap/nscap/userns"
)

// version is the nscap version; release builds set it with
// -ldflags "-X github.com/nscap/nscap/internal/cli.version=v1.2.3".
var version = ""

// Version returns the version of this build: the ldflags value when set,
// else the main module version from the build info, else "dev".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// GlobalOptions are the flags every command accepts.
type GlobalOptions struct {
	JSON       bool // --json: JSON Lines on stdout
	Quiet      bool // -q: no progress, no informational messages
	NoProgress bool // --no-progress
}

// Factory holds what commands need from the outside world. Dependencies
// that touch the system are functions, so tests can replace them.
type Factory struct {
	IO      *IOStreams
	Version string
	Global  *GlobalOptions

	// RootOf returns the id, in the caller's user namespace, of the root of
	// the user namespace of process pid (see [userns.RootOf]).
	RootOf func(pid int) (uint32, error)
	// ReadMaps reads the uid and gid maps of the user namespace of
	// process pid (see [userns.ReadMaps]).
	ReadMaps func(pid int) (uid, gid userns.Map, err error)
	// Inspect describes the user namespace of process pid (see
	// [userns.Inspect]).
	Inspect func(pid int) (*userns.Namespace, error)
	// Namespaces lists every user namespace visible from /proc (see
	// [userns.Tree]).
	Namespaces func() ([]*userns.Node, error)
}

// NewFactory returns the factory of a real run on the given streams.
func NewFactory(ios *IOStreams) *Factory {
	return &Factory{
		IO:      ios,
		Version: Version(),
		Global:  &GlobalOptions{},
		RootOf:  userns.RootOf,

		ReadMaps:   userns.ReadMaps,
		Inspect:    userns.Inspect,
		Namespaces: userns.Tree,
	}
}
