package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

// noRootID marks --rootid as not given.
const noRootID = -1

// rootIDValue is the pflag value of --rootid: an int64 whose "not given"
// sentinel, noRootID, is not shown as a default in the help. Set returns
// strconv's error unchanged; Main words it for the user (usageMessage).
type rootIDValue struct{ p *int64 }

func (v rootIDValue) String() string {
	if v.p == nil || *v.p == noRootID {
		return ""
	}
	return strconv.FormatInt(*v.p, 10)
}

func (v rootIDValue) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		return err
	}
	*v.p = n
	return nil
}

func (v rootIDValue) Type() string { return "uid" }

// errNoStdinCaps is returned when CAPS is "-" and stdin holds no text: an
// empty set must be asked for explicitly ("="), as setcap refuses it.
var errNoStdinCaps = errors.New(`no capability text before the first empty line or the end of input (write "=" for an empty set)`)

// readStdinCaps reads CAPS "-" from r (see readCapsText) and refuses
// input that holds no text.
func readStdinCaps(r io.Reader) (string, error) {
	text, err := readCapsText(r)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(text) == "" {
		return "", errNoStdinCaps
	}
	return text, nil
}

type setOptions struct {
	IO *IOStreams

	Caps  string // capability text, or "-" to read it from stdin
	Paths []string

	RootID int64    // --rootid; noRootID when not given
	Maps   mapFlags // --uidmap, --gidmap, --pid, --oci-config
	Root   string   // --root: the container root the PATHs are resolved in
	NsUID  uint32   // --ns-uid: the uid inside the namespace whose host id is the rootid
	Host   bool     // --host: a --pid of the caller's own namespace is meant
	Verify bool     // -v
	Helper fcaps.HelperMode

	JSON  bool
	Quiet bool

	RootOf   func(pid int) (uint32, error)                  // userns.RootOf
	ReadMaps func(pid int) (uid, gid userns.Map, err error) // userns.ReadMaps
	PIDNS    func(pid int) (pidNS, error)                   // readPIDNS
}

const setLong = `Set the file capabilities CAPS on each PATH, as setcap does. CAPS is libcap
text (cap_from_text(3)): "cap_net_raw+ep", "cap_chown,cap_fowner=eip",
"all=p", numbers for names ("13+ep"). CAPS "-" reads the text from stdin, as
setcap does: lines up to the first empty line or the end of input, joined by
spaces; input with no text before the first empty line is refused, and
nothing is written (as setcap does; CAPS "=" writes an empty set). File
capabilities have a single effective bit, so a non-empty
effective set must include every permitted and inheritable capability.

Each PATH must be a regular file; symlinks are never followed (a symlink is
refused and its target left untouched), and directories, devices, fifos and
sockets are refused. How a PATH is found is told under PATHS below.

Without a rootid option the capabilities are written as revision 2 (honoured
in the user namespace owning the filesystem and the ones below it). The
options below write revision 3, honoured only in the user namespace whose root
has the given id (and the ones below it):

  --rootid N        rootid N, a uid in the caller's user namespace, as
                    setcap -n N. Unlike setcap, --rootid 0 is accepted: it
                    writes revision 3 with rootid 0, which the kernel keeps on
                    disk but reads back as revision 2 (they mean the same).
  --pid PID         the root of the user namespace of process PID (a
                    container's): its uid 0 as the caller sees it, or its
                    uid U with --ns-uid U (a nested container's root). A
                    process of the caller's own user namespace (conmon, a
                    shell, a mistyped pid: the host's caps) or of one whose
                    root is the caller's root is refused, naming its
                    namespace, unless --host is given too.
  --uidmap MAP      the host id of uid U (--ns-uid, default 0) in the uid map
                    MAP, written INSIDE:OUTSIDE:COUNT[,...] as podman's
                    --uidmap (the flag may repeat).
  --oci-config FILE the same with the uid map of an OCI runtime config.json
                    (linux.uidMappings).

A rootid from --pid, --uidmap or --oci-config that is 0 (the caller's own
root) is written as revision 2. "nscap userns PID" shows what --pid uses.
With one of these three, a file whose owner or group that namespace does not
map is refused and left unchanged, as remove refuses it (the group is
checked against --gidmap, by default the uid map): the caps of a container
belong on the container's files. With --rootid N, whose map nscap cannot
know, a file whose owner is outside N to N+65535 (the usual range of a
container whose root is N) gets a warning, and is written.
` + pathsHelp + `
HELPER USER NAMESPACE
An unprivileged user cannot write security.capability on files it does not
own, but may own subordinate ids (/etc/subuid, /etc/subgid), the ids of its
rootless containers. With --helper auto (the default), when the direct write
is refused for lack of privilege, nscap re-executes itself in a new user
namespace whose maps newuidmap(1) and newgidmap(1) set from the caller's own
id and its ranges, and writes there; the kernel stores the rootid as the host
sees it. A caller with no subordinate ids gets a helper that maps only its
own uid and gid (as "unshare -r" does; no newuidmap needed), enough for caps
on its own files. One helper serves every file of the command. The file's owner and
group and the rootid must be the caller's own ids or in its ranges, else the
file is refused and left unchanged; revision 2 (host-wide) caps cannot be
written that way. A map named with --uidmap, --gidmap, --pid or
--oci-config must lie within those ids too: an unprivileged caller's whole
map is checked against /etc/subuid and /etc/subgid before anything is done
(exit 2), and the error names the ranges the caller owns. --helper always
uses the helper only (root must then name
its maps with --pid, --uidmap or --oci-config: the helper gets that
namespace's maps; with --uidmap, --gidmap gives its gid map, by default the
uid map); --helper never writes directly only.

With -v the files are not changed: each is compared with CAPS (and the
rootid), printing "PATH: OK" or, as setcap -v does, "PATH differs in [pie]"
(the sets that differ), prefixed with "nsowner[got=G, want=W]," when the
rootids differ; any difference makes the exit status 1.

With --json, each path is one JSON object on stdout: "path" with the caps
fields as in get (set), or "ok", "differs", "rootid_got", "rootid_want"
(set -v; "rootid_got" is left out when the file's caps could not be read),
and a failure is an "error" record. A path that is not valid UTF-8 also has
"path_base64", its bytes in base64 ("path" then has U+FFFD in their place).

EXIT STATUS
  0  success; with -v, every file matches
  1  an operation failed (the other paths were still processed); with -v,
     a file differs; or, before anything was written: CAPS is not valid
     text or "-" read none (setcap also exits 1), the process of --pid does
     not exist (or its namespace or root directory cannot be read), the
     --root DIR cannot be opened, or the file of --oci-config cannot be
     read or parsed
  2  usage error, nothing was done: bad flags or arguments, or flag values
     that do not fit together: a --pid in the caller's own user namespace
     without --host, an unprivileged caller's map (with --helper auto or
     always) reaching ids it does not own, a --uidmap (or the map of --oci-config) that
     does not map uid 0 (or --ns-uid U), a --ns-uid U that the namespace of
     --pid does not map`

func newSetCmd(f *Factory, runF func(*setOptions) error) *cobra.Command {
	opts := &setOptions{IO: f.IO, RootID: noRootID}
	cmd := &cobra.Command{
		Use:   "set [--rootid N | --pid PID [--host] | --uidmap MAP [--gidmap MAP] | --oci-config FILE] [--ns-uid U] [--root DIR] [--helper auto|always|never] [-v] CAPS PATH...",
		Short: "Set the capabilities of files, like setcap",
		Long:  setLong,
		Example: `  nscap set cap_net_raw+ep /usr/bin/ping
  nscap set --pid 4242 cap_net_raw=ep /var/lib/ct/rootfs/usr/bin/ping
  nscap set --pid 4242 cap_net_raw=ep /proc/4242/root/usr/bin/ping
  nscap set --uidmap 0:100000:65536 --root rootfs cap_net_bind_service+ep rootfs/usr/sbin/httpd
  nscap set --oci-config ct/config.json --ns-uid 1000 cap_net_raw+ep ct/rootfs/app
  nscap set -v --rootid 100000 cap_net_raw+ep rootfs/usr/bin/ping
  echo cap_chown+ep | nscap set - ./tool`,
		Args: minArgs(2, "CAPS and PATH"),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			opts.Caps, opts.Paths = args[0], args[1:]
			opts.JSON, opts.Quiet = f.Global.JSON, f.Global.Quiet
			opts.RootOf, opts.ReadMaps, opts.PIDNS = f.RootOf, f.ReadMaps, readPIDNS
			opts.Maps.readMaps = f.ReadMaps
			fl := cmd.Flags()
			if err := opts.Maps.validate(fl, "rootid"); err != nil {
				return err
			}
			if fl.Changed("rootid") && (opts.RootID < 0 || opts.RootID >= math.MaxUint32) {
				return flagErrorf("--rootid %d: want a uid from 0 to %d", opts.RootID, uint32(math.MaxUint32-1))
			}
			if fl.Changed("ns-uid") && !opts.Maps.given() {
				return flagErrorf("--ns-uid needs --pid, --uidmap or --oci-config")
			}
			if opts.Host && opts.Maps.PID == 0 {
				return flagErrorf("--host needs --pid")
			}
			if fl.Changed("root") && opts.Root == "" {
				return flagErrorf("--root: empty directory name")
			}
			if runF != nil {
				return runF(opts)
			}
			return runSet(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.Var(rootIDValue{&opts.RootID}, "rootid", "write revision 3 with this rootid (`N`, a uid in the caller's namespace)")
	opts.Maps.register(fl,
		"write revision 3 for the namespace with uid map `MAP` (INSIDE:OUTSIDE:COUNT,...)",
		"with --uidmap: the gid map of that namespace (`MAP`; default: the uid map), for the owner check and the helper",
		"write revision 3 for the user namespace of process `PID`",
		"write revision 3 for the namespace with the uid map of the OCI config `FILE`")
	fl.Uint32Var(&opts.NsUID, "ns-uid", 0, "with --pid, --uidmap or --oci-config: the uid `U` inside the namespace that owns the caps")
	fl.BoolVar(&opts.Host, "host", false, "with --pid: the process may be one of the caller's own user namespace (the host's); its caps are then honoured on the whole host")
	fl.StringVar(&opts.Root, "root", "", "resolve each PATH inside the container root directory `DIR` (see PATHS)")
	addHelperFlag(fl, &opts.Helper, "write through a helper user namespace")
	fl.BoolVarP(&opts.Verify, "verify", "v", false, "verify the capabilities instead of writing them")
	return cmd
}

// resolveRootID returns the rootid to write: ok is false for revision 2.
// A uid (0, or --ns-uid) that the named map does not cover is a
// *FlagError: the flag values do not fit together.
func (opts *setOptions) resolveRootID() (rootid uint32, ok bool, err error) {
	switch {
	case opts.RootID != noRootID:
		return uint32(opts.RootID), true, nil
	case !opts.Maps.given():
		return 0, false, nil
	case opts.Maps.PID != 0:
		r, err := opts.pidRootID()
		return r, r != 0, err
	}
	return opts.mapRootID()
}

// mapRootID returns the host id of --ns-uid in the uid map the flags name.
// A uid that the map does not cover is a *FlagError.
func (opts *setOptions) mapRootID() (rootid uint32, ok bool, err error) {
	uid, _, err := opts.Maps.resolve()
	if err != nil {
		return 0, false, err
	}
	r, err := uid.ToHost(opts.NsUID)
	if err != nil {
		// A flag value problem, found before anything is done.
		return 0, false, &FlagError{Err: fmt.Errorf("uid %d in %s: %w", opts.NsUID, opts.Maps.describe(), elideInput(err, uid.String()))}
	}
	return r, r != 0, nil
}

// pidRootID returns the rootid --pid names: the host id of uid 0 (or
// --ns-uid) of the process's user namespace. A process of the caller's own
// namespace, or of one whose root is the caller's root, is refused without
// --host: conmon, a shell or a mistyped pid would otherwise get caps
// honoured on the whole host.
func (opts *setOptions) pidRootID() (uint32, error) {
	pid := opts.Maps.PID
	ns, err := opts.PIDNS(pid)
	if err != nil {
		return 0, pidError(pid, err)
	}
	var r uint32
	switch {
	case ns.Self:
		// In the caller's own namespace, uid U is the caller's U.
		r = opts.NsUID
	case opts.NsUID == 0:
		if r, err = opts.RootOf(pid); err != nil {
			return 0, pidError(pid, err)
		}
	default:
		if r, _, err = opts.mapRootID(); err != nil {
			return 0, err
		}
	}
	if opts.Host || (!ns.Self && r != 0) {
		return r, nil
	}
	where := "nscap's own user namespace " + ns.Ref
	switch {
	case ns.Initial:
		where = "the initial user namespace " + ns.Ref + " (the host's)"
	case !ns.Self:
		where = "the user namespace " + ns.Ref + ", whose root is nscap's own root (uid 0)"
	}
	what := "caps for it are revision 2, honoured on the whole host"
	if r != 0 {
		what = fmt.Sprintf("its uid %d is uid %d of the host", opts.NsUID, r)
	}
	return 0, flagErrorf("--pid %d: the process is in %s, not in a container's: %s; give the pid of a process inside the container, or add --host to write them anyway", pid, where, what)
}

// helperMaps returns the maps a root caller's helper namespace gets: those
// of the namespace the flags name (an unprivileged caller always uses its
// own rootless map, the zero maps).
func helperMaps(m *mapFlags) (uid, gid userns.Map, err error) {
	if os.Geteuid() != 0 {
		return uid, gid, nil
	}
	return m.resolve()
}

// readCapsText reads capability text from r as setcap does: lines up to
// the first empty one (or the end), joined by spaces.
func readCapsText(r io.Reader) (string, error) {
	var lines []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			break
		}
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return strings.Join(lines, " "), nil
}

// wantCaps returns the value CAPS and the rootid options describe.
func (opts *setOptions) wantCaps() (xattrfmt.FileCaps, error) {
	text := opts.Caps
	if text == "-" {
		if opts.IO.IsStdinTTY && !opts.Quiet {
			fmt.Fprintln(opts.IO.ErrOut, "Please enter caps [empty line to end]:")
		}
		var err error
		if text, err = readStdinCaps(opts.IO.In); err != nil {
			return xattrfmt.FileCaps{}, fmt.Errorf("read caps from stdin: %w", err)
		}
	}
	c, err := xattrfmt.ParseFileText(text)
	if err != nil {
		return xattrfmt.FileCaps{}, fmt.Errorf("caps %q: %w", text, err)
	}
	rootid, ok, err := opts.resolveRootID()
	if err != nil {
		return xattrfmt.FileCaps{}, err
	}
	if ok {
		c.Revision, c.RootID = xattrfmt.Revision3, rootid
	}
	return c, nil
}

func runSet(ctx context.Context, opts *setOptions) error {
	want, err := opts.wantCaps()
	if err != nil {
		return fmt.Errorf("set: %w", err)
	}
	lookup, done, err := openLookup(opts.Root, opts.Maps.PID)
	if err != nil {
		return fmt.Errorf("set: %w", err)
	}
	defer done()
	var setter *fcaps.Setter
	var scope *nsScope
	if !opts.Verify {
		if scope, err = newScope(&opts.Maps); err != nil {
			return fmt.Errorf("set: %w", err)
		}
		so := fcaps.SetterOptions{Helper: opts.Helper}
		if opts.Helper != fcaps.HelperNever {
			if err := opts.Maps.checkRootless(); err != nil {
				return fmt.Errorf("set: %w", err)
			}
			so.UIDMap, so.GIDMap, err = helperMaps(&opts.Maps)
			if err != nil {
				return fmt.Errorf("set: %w", err)
			}
		}
		setter = fcaps.NewSetter(so)
		// Each set has reported its own result; the helper's exit
		// status adds nothing to them.
		defer func() { _ = setter.Close() }()
	}
	failed := false
	sum := countSummary{summaryHead: newSummaryHead("set")}
	for _, p := range opts.Paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		var ok bool
		if opts.Verify {
			ok, err = verifyOne(opts, lookup, p, want, &sum)
		} else {
			ok, err = setOne(opts, setter, lookup, scope, p, want, &sum)
		}
		if err != nil {
			return err
		}
		if !ok {
			failed = true
		}
	}
	return endRun(opts.IO.Out, opts.JSON, sum, failed)
}

// setRecord is the JSON output of set for one path.
type setRecord struct {
	Type       string `json:"type"` // "file"
	Path       string `json:"path"`
	PathBase64 string `json:"path_base64,omitempty"` // when Path is not valid UTF-8
	*capsJSON
}

// setOne writes want on path, found by lookup and within scope (when
// not nil); ok is false when it failed (reported).
// sum counts the --json records.
func setOne(opts *setOptions, setter *fcaps.Setter, lookup fcaps.Lookup, scope *nsScope, path string, want xattrfmt.FileCaps, sum *countSummary) (ok bool, err error) {
	f, serr := openFile(lookup, opts.Root, path)
	if serr == nil {
		if scope != nil {
			serr = scope.checkOwner("set", f, "written")
		} else if !opts.Quiet {
			warnOwnerOutside(opts.IO.ErrOut, path, f, want)
		}
		if serr == nil {
			serr = setter.SetFile(f, want)
		}
		_ = f.Close()
	}
	if serr != nil {
		printPathError(opts.IO.ErrOut, "set", path, serr)
	}
	if opts.JSON {
		sum.Records++
		if serr != nil {
			sum.Errors++
			return false, writeItem(opts.IO.Out, recError, path, reason(serr, path))
		}
		rec := setRecord{Type: recFile, Path: path, PathBase64: pathBase64(path), capsJSON: newCapsJSON(want)}
		return true, writeJSON(opts.IO.Out, rec)
	}
	return serr == nil, nil
}

// usualRangeSize is the number of ids a container's namespace usually
// maps (useradd's SUB_UID_COUNT, podman's and LXD's default range).
const usualRangeSize = 65536

// warnOwnerOutside warns when want has a rootid (--rootid N, whose map
// nscap cannot know) and the owner of f lies outside the usual range of a
// namespace whose root is N: a file of the container at 100000 given caps
// for the container at 200000 is most likely a mistake.
func warnOwnerOutside(w io.Writer, path string, f *fcaps.File, want xattrfmt.FileCaps) {
	if !want.HasRootID() || want.RootID == 0 || f.Type() != 0 {
		return
	}
	uid, _ := f.Owner()
	lo, hi := uint64(want.RootID), uint64(want.RootID)+usualRangeSize-1
	if uint64(uid) >= lo && uint64(uid) <= hi {
		return
	}
	fmt.Fprintf(w, "nscap: warning: set %s: the file's owner uid %d is outside %d-%d, the usual %d ids of a user namespace whose root is %d: a file of another container? (written; name the map with --uidmap, --pid or --oci-config to have such files refused)\n",
		path, uid, lo, hi, usualRangeSize, want.RootID)
}
