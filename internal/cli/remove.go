package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

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
}

func newRemoveCmd(f *Factory, runF func(*removeOptions) error) *cobra.Command {
	opts := &removeOptions{IO: f.IO}
	var helper string
	cmd := &cobra.Command{
		Use:     "remove [--pid PID | --uidmap MAP [--gidmap MAP] | --oci-config FILE] [--helper auto|always|never] PATH...",
		Aliases: []string{"rm"},
		Short:   "Remove the capabilities of files, like setcap -r",
		Long: `Remove the security.capability extended attribute of each PATH, as
setcap -r does. Each PATH must be a regular file; symlinks are never
followed. A file without capabilities is an error, as with setcap -r.

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

With --json, each path is one JSON object on stdout: "path", and "error"
when it failed; a path that is not valid UTF-8 also has "path_base64", its
bytes in base64.

EXIT STATUS
  0  success
  1  a file could not be changed, or had no capabilities to remove (the
     other paths were still processed); or, before anything was removed,
     the process of --pid does not exist (or its namespace cannot be
     read) or the file of --oci-config cannot be read or parsed
  2  usage error: bad flags or arguments, nothing was done`,
		Example: `  nscap remove /usr/bin/ping
  nscap remove rootfs/usr/bin/*
  nscap remove --pid 4242 /var/lib/ct/rootfs/usr/bin/ping
  nscap remove --uidmap 0:100000:65536 --gidmap 0:300000:65536 rootfs/usr/bin/ping`,
		Args: minArgs(1, "PATH"),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			opts.Paths = args
			opts.JSON = f.Global.JSON
			opts.Maps.readMaps = f.ReadMaps
			if err := opts.Maps.validate(cmd.Flags()); err != nil {
				return err
			}
			if opts.Helper, err = fcaps.ParseHelperMode(helper); err != nil {
				return flagErrorf("--helper: %w", err)
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
	fl.StringVar(&helper, "helper", "auto", "remove through a helper user namespace: `auto`, always or never")
	return cmd
}

// removeRecord is the JSON output of remove for one path.
type removeRecord struct {
	Path       string `json:"path"`
	PathBase64 string `json:"path_base64,omitempty"` // when Path is not valid UTF-8
	Error      string `json:"error,omitempty"`
}

// removeScope is the namespace a scoped remove is restricted to.
type removeScope struct {
	name     string // "the user namespace of pid 42", "--uidmap M", ...
	uid, gid userns.Map
}

// scope resolves the scope flags; nil when none was given.
func (opts *removeOptions) scope() (*removeScope, error) {
	if !opts.Maps.given() {
		return nil, nil
	}
	uid, gid, err := opts.Maps.resolve()
	if err != nil {
		return nil, err
	}
	return &removeScope{name: opts.Maps.describe(), uid: uid, gid: gid}, nil
}

// check refuses path unless its owner, group and caps are within s.
func (s *removeScope) check(path string) error {
	refuse := func(format string, args ...any) error {
		return &fs.PathError{Op: "remove", Path: path, Err: fmt.Errorf("outside %s: %s; nothing removed", s.name, fmt.Sprintf(format, args...))}
	}
	c, err := fcaps.Get(path)
	switch {
	case errors.Is(err, fcaps.ErrNoCaps):
		return nil // remove reports it
	case errors.Is(err, fcaps.ErrNotVisible):
		return refuse("the capabilities belong to a user namespace the caller cannot see")
	case err != nil:
		return err // not a regular file, unreadable: reported as remove reports them
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if _, err := s.uid.ToNs(st.Uid); err != nil {
			return refuse("the file's owner uid %d is not mapped by its uid map %s", st.Uid, elide(s.uid.String()))
		}
		if _, err := s.gid.ToNs(st.Gid); err != nil {
			return refuse("the file's group gid %d is not mapped by its gid map %s", st.Gid, elide(s.gid.String()))
		}
	}
	if _, err := s.uid.ToNs(rootIDOf(c)); err != nil {
		if !c.HasRootID() {
			return refuse("the capabilities are host-wide (revision 2, rootid 0), not mapped by its uid map %s", elide(s.uid.String()))
		}
		return refuse("the capabilities have rootid %d, not mapped by its uid map %s", c.RootID, elide(s.uid.String()))
	}
	return nil
}

func runRemove(ctx context.Context, opts *removeOptions) error {
	scope, err := opts.scope()
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	so := fcaps.SetterOptions{Helper: opts.Helper}
	if scope != nil && opts.Helper != fcaps.HelperNever && os.Geteuid() == 0 {
		so.UIDMap, so.GIDMap = scope.uid, scope.gid
	}
	setter := fcaps.NewSetter(so)
	// Each set has reported its own result; the helper's exit
	// status adds nothing to them.
	defer func() { _ = setter.Close() }()
	failed := false
	for _, p := range opts.Paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec := removeRecord{Path: p, PathBase64: pathBase64(p)}
		var err error
		if scope != nil {
			err = scope.check(p)
		}
		if err == nil {
			err = setter.Remove(p)
		}
		if err != nil {
			failed = true
			printPathError(opts.IO.ErrOut, "remove", p, err)
			rec.Error = reason(err, p)
		}
		if opts.JSON {
			if err := writeJSON(opts.IO.Out, rec); err != nil {
				return err
			}
		}
	}
	if failed {
		return errSilent
	}
	return nil
}
