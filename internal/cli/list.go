package cli

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/nscap/nscap/backup"
	"github.com/nscap/nscap/fcaps"
)

type listOptions struct {
	IO      *IOStreams
	Archive string // path, or "-" for stdin
	Maps    targetMapFlags
	JSON    bool
}

func newListCmd(f *Factory, runF func(*listOptions) error) *cobra.Command {
	opts := &listOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "list [--uidmap MAP [--gidmap MAP] | --pid PID | --oci-config FILE] [--source-uidmap MAP] [--foreign-caps fail|skip|host] ARCHIVE|-",
		Short: "List an archive's members as restore would write them, like tar -tv",
		Long: `List the members of ARCHIVE (an nscap, GNU tar or bsdtar archive; plain,
gzip, zstd or xz; - for stdin), one per line as tar -tv does: type and mode,
owner uid/gid, size (MAJOR,MINOR for a device), modification time and name
(" -> TARGET" for a symlink, " link to TARGET" for a hardlink), then the
capabilities as getcap -n shows them ("caps=cap_net_raw=ep [rootid=N]") and
"+acl" when a POSIX ACL goes beyond the mode bits.

Owners, modes and caps are those "nscap restore" with the same map flags
would write: with --uidmap/--gidmap, --pid or --oci-config they are
translated to the target container's host ids (an archive of raw host ids
needs --source-uidmap, as for restore); without them they are shown as
stored. A cap the restore would not write as translated (see --foreign-caps
in "nscap restore --help") is followed by a note; a member the restore
would refuse (an owner outside the target maps) is shown as stored and
named on stderr.

With --json each member is one JSON object on stdout: "name", "kind"
(file, dir, symlink, hardlink, fifo, char, block), "mode" (the permission
bits as a number), "uid", "gid", "size", "link", "dev", "mtime", "caps",
"caps_note" and "acl", followed by an "error" record when it cannot be
restored as shown.

EXIT STATUS
  0  every member listed, each restorable as shown
  1  the archive could not be read, or a member would be refused
  2  usage error: bad flags or arguments, nothing was done`,
		Example: `  nscap list ct.tar.zst
  nscap list --uidmap 0:200000:65536 ct.tar
  nscap list --json --source-uidmap 0:100000:65536 --uidmap 0:200000:65536 gnu.tar`,
		Args: rangeArgs(1, 1, "ARCHIVE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Archive = args[0]
			opts.JSON = f.Global.JSON
			if err := opts.Maps.validate(cmd.Flags(), fcaps.HelperNever); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runList(cmd.Context(), opts)
		},
	}
	opts.Maps.register(cmd.Flags())
	return cmd
}

func runList(ctx context.Context, opts *listOptions) error {
	in, err := openArchive(opts.IO, opts.Archive, &opts.Maps)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }() // read only
	failed := false
	sum := countSummary{summaryHead: newSummaryHead("list")}
	err = backup.List(ctx, in.R, in.listOptions(), func(e backup.ListEntry) error {
		if e.Error != "" {
			failed = true
			fmt.Fprintf(opts.IO.ErrOut, "nscap: list %s: %s\n", e.Name, e.Error)
		}
		if opts.JSON {
			sum.Records++
			if err := writeJSON(opts.IO.Out, listRecord{Type: recEntry, Kind: e.Type, ListEntry: e}); err != nil {
				return err
			}
			if e.Error != "" {
				sum.Records++
				sum.Errors++
				return writeItem(opts.IO.Out, recError, e.Name, e.Error)
			}
			return nil
		}
		_, err := fmt.Fprintln(opts.IO.Out, listLine(e))
		return err
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", opts.Archive, err)
	}
	return endRun(opts.IO.Out, opts.JSON, sum, failed)
}

// listRecord is the --json form of one member: the fields of
// backup.ListEntry, its "type" renamed "kind" (the record's "type" is
// "entry") and its error a separate "error" record.
type listRecord struct {
	Type  string `json:"type"`            // "entry"
	Kind  string `json:"kind"`            // "file", "dir", "symlink", "hardlink", "fifo", "char", "block"
	Error string `json:"error,omitempty"` // never set: hides ListEntry.Error
	backup.ListEntry
}

// listLine formats e as tar -tv does, numeric owners, then the caps.
func listLine(e backup.ListEntry) string {
	size := strconv.FormatInt(e.Size, 10)
	if e.Dev != "" {
		size = e.Dev
	}
	s := fmt.Sprintf("%s %d/%d %9s %s %s", modeString(e.Type, e.Mode), e.UID, e.GID, size, e.MTime.Local().Format("2006-01-02 15:04"), e.Name)
	switch e.Type {
	case "symlink":
		s += " -> " + e.Link
	case "hardlink":
		s += " link to " + e.Link
	}
	if e.Caps != "" {
		s += "  caps=" + e.Caps
	}
	if e.CapsNote != "" {
		s += " (" + e.CapsNote + ")"
	}
	if e.ACL {
		s += "  +acl"
	}
	return s
}

// modeString is tar -tv's (and ls -l's) mode column.
func modeString(typ string, mode uint32) string {
	t := map[string]byte{"dir": 'd', "symlink": 'l', "hardlink": 'h', "fifo": 'p', "char": 'c', "block": 'b'}[typ]
	if t == 0 {
		t = '-'
	}
	b := []byte{t}
	const rwx = "rwxrwxrwx"
	for i := range 9 {
		if mode&(1<<uint(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	special := func(bit uint32, pos int, set, unset byte) {
		if mode&bit == 0 {
			return
		}
		if b[pos] == '-' {
			b[pos] = unset
		} else {
			b[pos] = set
		}
	}
	special(0o4000, 3, 's', 'S') // setuid
	special(0o2000, 6, 's', 'S') // setgid
	special(0o1000, 9, 't', 'T') // sticky
	return string(b)
}
