package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/userns"
)

type removeOptions struct {
	IO    *IOStreams
	Paths []string
	JSON  bool

	Helper fcaps.HelperMode
	Maps   mapFlags // --uidmap, --gidmap, --pid, --oci-config: the scope
	Root   string   // --root: the container root the PATHs are resolved in
}

func newRemoveCmd(f *Factory, runF func(*removeOptions) error) *cobra.Command {
	opts := &removeOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:     "remove [--pid PID | --uidmap MAP [--gidmap MAP] | --oci-config FILE] [--root DIR] [--helper auto|always|never] PATH...",
		Aliases: []string{"rm"},
		Short:   "Remove the capabilities of files, like setcap -r",
		Long: `Remove the security.capability extended attribute of each PATH, as
setcap -r does. Each PATH must be a regular file; symlinks are never
followed (see PATHS below). A file without capabilities is an error, as with
setcap -r.

--pid PID, --uidmap MAP (with --gidmap MAP when the gid map differs) or
--oci-config FILE restrict the removal to one
user namespace (a container's), as its root would see it: a file is refused,
and left unchanged, unless its owner and group are mapped by that namespace
and its capabilities are honoured there (their rootid is mapped by its uid
map: the container's own caps or a nested container's, never host-wide caps
or another container's). Run as root with --helper always, the removal
itself is made in a helper namespace with those maps, so the kernel enforces
the same scope.

--helper auto|always|never works as for set: an unprivileged user owning
subordinate ids (/etc/subuid, /etc/subgid) removes caps from files owned by
its ids through a helper user namespace (auto: when the direct removal is
refused for lack of privilege; without subordinate ids, only its own uid and
gid are mapped). Files owned by ids outside its ranges are refused and left
unchanged.
` + pathsHelp + `
With --json, each path is one JSON object on stdout: "path", or an "error"
record when it failed; a path that is not valid UTF-8 also has
"path_base64", its bytes in base64.

EXIT STATUS
  0  success
  1  a file could not be changed, or had no capabilities to remove (the
     other paths were still processed); or, before anything was removed,
     the process of --pid does not exist (or its namespace or root
     directory cannot be read), the --root DIR cannot be opened, or the
     file of --oci-config cannot be read or parsed
  2  usage error: bad flags or arguments, nothing was done`,
		Example: `  nscap remove /usr/bin/ping
  nscap remove rootfs/usr/bin/*
  nscap remove --pid 4242 /var/lib/ct/rootfs/usr/bin/ping
  nscap remove --pid 4242 /proc/4242/root/usr/bin/ping
  nscap remove --uidmap 0:100000:65536 --root rootfs rootfs/usr/bin/ping
  nscap remove --uidmap 0:100000:65536 --gidmap 0:300000:65536 rootfs/usr/bin/ping`,
		Args: minArgs(1, "PATH"),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			opts.Paths = args
			opts.JSON = f.Global.JSON
			opts.Maps.readMaps = f.ReadMaps
			if err := opts.Maps.validate(cmd.Flags()); err != nil {
				return err
			}
			if cmd.Flags().Changed("root") && opts.Root == "" {
				return flagErrorf("--root: empty directory name")
			}
			if runF != nil {
				return runF(opts)
			}
			return runRemove(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	opts.Maps.register(fl,
		"remove only caps of the namespace with uid map `MAP` (INSIDE:OUTSIDE:COUNT,...)",
		"with --uidmap: the gid map of that namespace (`MAP`; default: the uid map)",
		"remove only caps of the user namespace of process `PID`",
		"remove only caps of the namespace of the OCI config `FILE`")
	fl.StringVar(&opts.Root, "root", "", "resolve each PATH inside the container root directory `DIR` (see PATHS)")
	addHelperFlag(fl, &opts.Helper, "remove through a helper user namespace")
	return cmd
}

// removeRecord is the JSON output of remove for one path.
type removeRecord struct {
	Type       string `json:"type"` // "file"
	Path       string `json:"path"`
	PathBase64 string `json:"path_base64,omitempty"` // when Path is not valid UTF-8
}

// nsScope is the user namespace the map flags of set and remove name:
// they refuse a file whose owner or group it does not map, and remove
// also one whose caps are not honoured there.
type nsScope struct {
	name     string // "the user namespace of pid 42", "--uidmap M", ...
	uid, gid userns.Map
	// own: --pid names a process in the caller's own user namespace. Its
	// maps are relative to the parent namespace, while the ids the caller
	// sees are its own namespace's, every one of which is mapped there.
	own bool
}

// newScope resolves the map flags; nil when none was given.
func newScope(m *mapFlags) (*nsScope, error) {
	if !m.given() {
		return nil, nil
	}
	uid, gid, err := m.resolve()
	if err != nil {
		return nil, err
	}
	s := &nsScope{name: m.describe(), uid: uid, gid: gid}
	if m.PID != 0 {
		if s.own, err = sameUserNS(m.PID); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// refuse is the error of a file outside s; nothing is "written" or
// "removed".
func (s *nsScope) refuse(op, path, nothing, format string, args ...any) error {
	return &fs.PathError{Op: op, Path: path, Err: fmt.Errorf("outside %s: %s; nothing %s", s.name, fmt.Sprintf(format, args...), nothing)}
}

// checkOwner refuses f unless s maps its owner and group. A file that is
// not regular passes: the operation refuses it, saying why.
func (s *nsScope) checkOwner(op string, f *fcaps.File, nothing string) error {
	if s.own || f.Type() != 0 {
		return nil
	}
	uid, gid := f.Owner()
	if _, err := s.uid.ToNs(uid); err != nil {
		return s.refuse(op, f.Name(), nothing, "the file's owner uid %d is not mapped by its uid map %s", uid, elide(s.uid.String()))
	}
	if _, err := s.gid.ToNs(gid); err != nil {
		return s.refuse(op, f.Name(), nothing, "the file's group gid %d is not mapped by its gid map %s", gid, elide(s.gid.String()))
	}
	return nil
}

// checkRemove refuses f unless its owner, group and caps are within s.
func (s *nsScope) checkRemove(f *fcaps.File) error {
	path := f.Name()
	c, err := f.Get()
	switch {
	case errors.Is(err, fcaps.ErrNoCaps):
		return nil // remove reports it
	case errors.Is(err, fcaps.ErrNotVisible):
		return s.refuse("remove", path, "removed", "the capabilities belong to a user namespace the caller cannot see")
	case err != nil:
		return err // not a regular file, unreadable: reported as remove reports them
	}
	if err := s.checkOwner("remove", f, "removed"); err != nil || s.own {
		return err
	}
	if _, err := s.uid.ToNs(rootIDOf(c)); err != nil {
		if !c.HasRootID() {
			return s.refuse("remove", path, "removed", "the capabilities are host-wide (revision 2, rootid 0), not mapped by its uid map %s", elide(s.uid.String()))
		}
		return s.refuse("remove", path, "removed", "the capabilities have rootid %d, not mapped by its uid map %s", c.RootID, elide(s.uid.String()))
	}
	return nil
}

func runRemove(ctx context.Context, opts *removeOptions) error {
	scope, err := newScope(&opts.Maps)
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	if opts.Helper != fcaps.HelperNever {
		if err := opts.Maps.checkRootless(); err != nil {
			return fmt.Errorf("remove: %w", err)
		}
	}
	lookup, done, err := openLookup(opts.Root, opts.Maps.PID)
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	defer done()
	so := fcaps.SetterOptions{Helper: opts.Helper}
	if scope != nil && opts.Helper != fcaps.HelperNever && os.Geteuid() == 0 {
		so.UIDMap, so.GIDMap = scope.uid, scope.gid
	}
	setter := fcaps.NewSetter(so)
	// Each set has reported its own result; the helper's exit
	// status adds nothing to them.
	defer func() { _ = setter.Close() }()
	failed := false
	sum := countSummary{summaryHead: newSummaryHead("remove")}
	for _, p := range opts.Paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec := removeRecord{Type: recFile, Path: p, PathBase64: pathBase64(p)}
		f, err := openFile(lookup, opts.Root, p)
		if err == nil {
			if scope != nil {
				err = scope.checkRemove(f)
			}
			if err == nil {
				err = setter.RemoveFile(f)
			}
			_ = f.Close()
		}
		if err != nil {
			failed = true
			printPathError(opts.IO.ErrOut, "remove", p, err)
		}
		if opts.JSON {
			sum.Records++
			var werr error
			if err != nil {
				sum.Errors++
				werr = writeItem(opts.IO.Out, recError, p, reason(err, p))
			} else {
				werr = writeJSON(opts.IO.Out, rec)
			}
			if werr != nil {
				return werr
			}
		}
	}
	return endRun(opts.IO.Out, opts.JSON, sum, failed)
}
