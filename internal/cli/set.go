package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
	"github.com/spf13/cobra"
)

// noRootID marks --rootid as not given.
const noRootID = -1

type setOptions struct {
	IO *IOStreams

	Caps  string // capability text, or "-" to read it from stdin
	Paths []string

	RootID int64      // --rootid; noRootID when not given
	PID    int        // --pid; 0 when not given
	UIDMap string     // --uidmap, as given (joined with ",")
	uidMap userns.Map // UIDMap parsed
	NsUID  uint32     // --ns-uid: the uid inside the map whose host id is the rootid
	Verify bool       // -v

	JSON  bool
	Quiet bool

	RootOf func(pid int) (uint32, error) // userns.RootOf
}

func newSetCmd(f *Factory, runF func(*setOptions) error) *cobra.Command {
	opts := &setOptions{IO: f.IO, RootID: noRootID}
	var uidMaps []string
	cmd := &cobra.Command{
		Use:   "set [--rootid N | --pid PID | --uidmap MAP [--ns-uid U]] [-v] CAPS PATH...",
		Short: "Set the capabilities of files, like setcap",
		Long: `Set the file capabilities CAPS on each PATH, as setcap does. CAPS is libcap
text (cap_from_text(3)): "cap_net_raw+ep", "cap_chown,cap_fowner=eip",
"all=p", numbers for names ("13+ep"). CAPS "-" reads the text from stdin, as
setcap does: lines up to the first empty line or the end of input, joined by
spaces. File capabilities have a single effective bit, so a non-empty
effective set must include every permitted and inheritable capability.

Each PATH must be a regular file; symlinks are never followed (a symlink is
refused and its target left untouched), and directories, devices, fifos and
sockets are refused.

Without a rootid option the capabilities are written as revision 2 (honoured
in the user namespace owning the filesystem and the ones below it). The
options below write revision 3, honoured only in the user namespace whose root
has the given id (and the ones below it):

  --rootid N        rootid N, a uid in the caller's user namespace, as
                    setcap -n N. Unlike setcap, --rootid 0 is accepted: it
                    writes revision 3 with rootid 0, which the kernel keeps on
                    disk but reads back as revision 2 (they mean the same).
  --pid PID         the root of the user namespace of process PID (a
                    container's): its uid 0 as the caller sees it.
  --uidmap MAP      the host id of uid U (--ns-uid, default 0) in the uid map
                    MAP, written INSIDE:OUTSIDE:COUNT[,...] as podman's
                    --uidmap (the flag may repeat).

A rootid from --pid or --uidmap that is 0 (the caller's own root) is written
as revision 2.

With -v the files are not changed: each is compared with CAPS (and the
rootid), printing "PATH: OK" or, as setcap -v does, "PATH differs in [pie]"
(the sets that differ), prefixed with "nsowner[got=G, want=W]," when the
rootids differ; any difference makes the exit status 1.

With --json, each path is one JSON object on stdout: "path" with the caps
fields as in get (set), or "ok", "differs", "rootid_got", "rootid_want"
(set -v), and "error" when it failed.

` + exitStatusCommon + `, CAPS is not valid text, or with -v a file differs`,
		Example: `  nscap set cap_net_raw+ep /usr/bin/ping
  nscap set --pid 4242 cap_net_raw=ep /var/lib/ct/rootfs/usr/bin/ping
  nscap set --uidmap 0:100000:65536 cap_net_bind_service+ep rootfs/usr/sbin/httpd
  nscap set -v --rootid 100000 cap_net_raw+ep rootfs/usr/bin/ping
  echo cap_chown+ep | nscap set - ./tool`,
		Args: minArgs(2, "CAPS and PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Caps, opts.Paths = args[0], args[1:]
			opts.JSON, opts.Quiet = f.Global.JSON, f.Global.Quiet
			opts.RootOf = f.RootOf
			fl := cmd.Flags()
			n := 0
			for _, name := range []string{"rootid", "pid", "uidmap"} {
				if fl.Changed(name) {
					n++
				}
			}
			if n > 1 {
				return flagErrorf("--rootid, --pid and --uidmap exclude each other")
			}
			if fl.Changed("rootid") && (opts.RootID < 0 || opts.RootID >= math.MaxUint32) {
				return flagErrorf("--rootid %d: want a uid from 0 to %d", opts.RootID, uint32(math.MaxUint32-1))
			}
			if fl.Changed("pid") && opts.PID <= 0 {
				return flagErrorf("--pid %d: want a positive process id", opts.PID)
			}
			if fl.Changed("ns-uid") && !fl.Changed("uidmap") {
				return flagErrorf("--ns-uid needs --uidmap")
			}
			if fl.Changed("uidmap") {
				opts.UIDMap = strings.Join(uidMaps, ",")
				m, err := userns.ParseMap(opts.UIDMap)
				if err != nil {
					return flagErrorf("--uidmap %s: %w", opts.UIDMap, err)
				}
				opts.uidMap = m
			}
			if runF != nil {
				return runF(opts)
			}
			return runSet(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.Int64Var(&opts.RootID, "rootid", noRootID, "write revision 3 with this rootid (`N`, a uid in the caller's namespace)")
	fl.IntVar(&opts.PID, "pid", 0, "write revision 3 for the user namespace of process `PID`")
	fl.StringArrayVar(&uidMaps, "uidmap", nil, "write revision 3 for the namespace with uid map `MAP` (INSIDE:OUTSIDE:COUNT,...)")
	fl.Uint32Var(&opts.NsUID, "ns-uid", 0, "with --uidmap: the uid `U` inside the map that owns the caps")
	fl.BoolVarP(&opts.Verify, "verify", "v", false, "verify the capabilities instead of writing them")
	return cmd
}

// resolveRootID returns the rootid to write: ok is false for revision 2.
func (opts *setOptions) resolveRootID() (rootid uint32, ok bool, err error) {
	switch {
	case opts.RootID != noRootID:
		return uint32(opts.RootID), true, nil
	case opts.PID != 0:
		r, err := opts.RootOf(opts.PID)
		if err != nil {
			return 0, false, fmt.Errorf("root of the user namespace of pid %d: %w", opts.PID, err)
		}
		return r, r != 0, nil
	case opts.UIDMap != "":
		r, err := opts.uidMap.ToHost(opts.NsUID)
		if err != nil {
			return 0, false, fmt.Errorf("uid %d in --uidmap %s: %w", opts.NsUID, opts.UIDMap, err)
		}
		return r, r != 0, nil
	}
	return 0, false, nil
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
		if text, err = readCapsText(opts.IO.In); err != nil {
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
	failed := false
	for _, p := range opts.Paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		var ok bool
		if opts.Verify {
			ok, err = verifyOne(opts, p, want)
		} else {
			ok, err = setOne(opts, p, want)
		}
		if err != nil {
			return err
		}
		if !ok {
			failed = true
		}
	}
	if failed {
		return errSilent
	}
	return nil
}

// setRecord is the JSON output of set for one path.
type setRecord struct {
	Path string `json:"path"`
	*capsJSON
	Error string `json:"error,omitempty"`
}

// setOne writes want on path; ok is false when it failed (reported).
func setOne(opts *setOptions, path string, want xattrfmt.FileCaps) (ok bool, err error) {
	serr := fcaps.Set(path, want)
	if serr != nil {
		printPathError(opts.IO.ErrOut, "set", path, serr)
	}
	if opts.JSON {
		rec := setRecord{Path: path}
		if serr != nil {
			rec.Error = reason(serr, path)
		} else {
			rec.capsJSON = newCapsJSON(want)
		}
		return serr == nil, writeJSON(opts.IO.Out, rec)
	}
	return serr == nil, nil
}

// verifyRecord is the JSON output of set -v for one path.
type verifyRecord struct {
	Path       string `json:"path"`
	OK         bool   `json:"ok"`
	Differs    string `json:"differs,omitempty"` // sets that differ, from "pie"
	RootIDGot  uint32 `json:"rootid_got"`
	RootIDWant uint32 `json:"rootid_want"`
	Foreign    bool   `json:"foreign,omitempty"`
	Error      string `json:"error,omitempty"`
}

// verifyOne compares the caps of path with want; ok is false when they
// differ or cannot be read (reported).
func verifyOne(opts *setOptions, path string, want xattrfmt.FileCaps) (ok bool, err error) {
	rec := verifyRecord{Path: path, RootIDWant: rootIDOf(want)}
	got, gerr := fcaps.Get(path)
	switch {
	case gerr == nil:
	case errors.Is(gerr, fcaps.ErrNoCaps):
		got = xattrfmt.FileCaps{Revision: xattrfmt.Revision2}
	case errors.Is(gerr, fcaps.ErrNotVisible):
		rec.Foreign = true
	default:
		printPathError(opts.IO.ErrOut, "verify", path, gerr)
		rec.Error = reason(gerr, path)
	}
	var line string
	switch {
	case rec.Error != "":
	case rec.Foreign:
		line = path + " differs: capabilities of another user namespace"
	default:
		rec.RootIDGot = rootIDOf(got)
		g, w := got.Caps(), want.Caps()
		if g.Permitted != w.Permitted {
			rec.Differs += "p"
		}
		if g.Inheritable != w.Inheritable {
			rec.Differs += "i"
		}
		if g.Effective != w.Effective {
			rec.Differs += "e"
		}
		rec.OK = rec.Differs == "" && rec.RootIDGot == rec.RootIDWant
		switch {
		case rec.OK:
			line = path + ": OK"
		case rec.RootIDGot != rec.RootIDWant:
			line = fmt.Sprintf("nsowner[got=%d, want=%d],%s differs in [%s]", rec.RootIDGot, rec.RootIDWant, path, rec.Differs)
		default:
			line = fmt.Sprintf("%s differs in [%s]", path, rec.Differs)
		}
	}
	if opts.JSON {
		return rec.OK, writeJSON(opts.IO.Out, rec)
	}
	if line != "" {
		_, err = fmt.Fprintln(opts.IO.Out, line)
	}
	return rec.OK, err
}

// rootIDOf returns the rootid of c, 0 for revision 2.
func rootIDOf(c xattrfmt.FileCaps) uint32 {
	if c.HasRootID() {
		return c.RootID
	}
	return 0
}
