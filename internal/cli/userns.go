package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nscap/nscap/userns"
)

type usernsOptions struct {
	IO   *IOStreams
	PIDs []int // processes to describe; the caller's own when none given
	JSON bool

	Inspect func(pid int) (*userns.Namespace, error) // userns.Inspect
}

type usernsTreeOptions struct {
	IO   *IOStreams
	JSON bool

	Namespaces func() ([]*userns.Node, error) // userns.Tree
}

func newUsernsCmd(f *Factory, runF func(*usernsOptions) error) *cobra.Command {
	opts := &usernsOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "userns [PID|self...]",
		Short: "Show the user namespace of processes, and the rootid of their caps",
		Long: `Describe the user namespace of each PID as the caller sees it: its identity
(user:[INODE] as /proc shows it, the NS_GET_ID id when the kernel has it),
its depth below the caller's namespace, the uid of its owner (its creator),
its uid and gid maps as the caller reads them, the uid of its root in the
caller's namespace, and the chain of parent namespaces up to the caller's.

The root is the rootid "nscap set --pid PID" writes: capabilities with that
rootid are honoured in that namespace and the ones below it. Without PID, or
with "self", nscap describes its own process (depth 0, root 0; the kernel
shows a namespace's own maps relative to its parent).

"nscap userns tree" lists every user namespace visible from /proc.

With --json, each PID is one JSON object on stdout: "pid", "ns", "inode",
"id", "owner_uid", "depth", "self", "descendant" (the caller's namespace or
below it), "uid_map", "gid_map", "rootid" (null when the caller cannot see
it) and "chain" (the parents, the immediate one first).

` + exitStatusCommon,
		Example: `  nscap userns
  nscap userns $(pidof conmon) 4242
  nscap userns --json 4242 | jq .rootid
  nscap userns tree`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JSON = f.Global.JSON
			opts.Inspect = f.Inspect
			opts.PIDs = nil
			for _, a := range args {
				if a == "self" {
					opts.PIDs = append(opts.PIDs, os.Getpid())
					continue
				}
				pid, err := strconv.Atoi(a)
				if err != nil || pid <= 0 {
					return flagErrorf("%q: want a process id or self", a)
				}
				opts.PIDs = append(opts.PIDs, pid)
			}
			if len(opts.PIDs) == 0 {
				opts.PIDs = []int{os.Getpid()}
			}
			if runF != nil {
				return runF(opts)
			}
			return runUserns(cmd.Context(), opts)
		},
	}
	cmd.AddCommand(newUsernsTreeCmd(f, nil))
	return cmd
}

func newUsernsTreeCmd(f *Factory, runF func(*usernsTreeOptions) error) *cobra.Command {
	opts := &usernsTreeOptions{IO: f.IO}
	return &cobra.Command{
		Use:   "tree",
		Short: "Show every user namespace visible from /proc, as a tree",
		Long: `List every user namespace that a process in /proc is in, and their parents,
as a tree: the caller's own namespace first, its descendants below it, then
any namespace outside the caller's (which the caller can only see, not walk
up from). Each shows its identity, the uid of its root in the caller's
namespace (the rootid that "nscap set" writes for it), the uid of its owner,
and the processes in it: all of them when they are few, else their number
and the first 8 ("pids 412: 1,2,3,4,5,6,7,8 and 404 more"; --json lists
every pid). A namespace without processes (kept alive by a
child namespace) has its maps read through nsenter(1) when the caller may
join it.

With --json, each namespace is one JSON object on stdout, parents before
children: "ns", "inode", "id", "owner_uid", "depth" (0 for the roots of the
tree), "parent_inode", "self", "pids", "uid_map", "gid_map", "rootid" (null
when not visible) and "map_error" (why the maps could not be read).

` + exitStatusCommon,
		Example: `  nscap userns tree
  nscap userns tree --json | jq 'select(.depth > 0)'`,
		Args: rangeArgs(0, 0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.JSON = f.Global.JSON
			opts.Namespaces = f.Namespaces
			if runF != nil {
				return runF(opts)
			}
			return runUsernsTree(cmd.Context(), opts)
		},
	}
}

// nsLink is one namespace of a chain in the JSON output.
type nsLink struct {
	NS       string `json:"ns"`
	Inode    uint64 `json:"inode"`
	ID       uint64 `json:"id,omitempty"`
	OwnerUID uint32 `json:"owner_uid"`
}

func newNSLink(r userns.NSRef) nsLink {
	return nsLink{NS: r.String(), Inode: r.Inode, ID: r.ID, OwnerUID: r.OwnerUID}
}

// usernsRecord is the JSON output of userns for one pid. It is part of the
// documented --json interface: fields may be added, never renamed.
type usernsRecord struct {
	Type string `json:"type"` // "namespace"
	PID  int    `json:"pid"`
	nsLink
	Depth      int      `json:"depth"`
	Self       bool     `json:"self"`
	Descendant bool     `json:"descendant"`
	UIDMap     string   `json:"uid_map"`
	GIDMap     string   `json:"gid_map"`
	RootID     *uint32  `json:"rootid"`
	Chain      []nsLink `json:"chain"`
}

func newUsernsRecord(ns *userns.Namespace) usernsRecord {
	rec := usernsRecord{
		Type:       recNamespace,
		PID:        ns.PID,
		nsLink:     newNSLink(ns.NSRef),
		Depth:      ns.Depth,
		Self:       ns.Self,
		Descendant: ns.Descendant,
		UIDMap:     ns.UIDMap.String(),
		GIDMap:     ns.GIDMap.String(),
		Chain:      []nsLink{},
	}
	if ns.RootVisible {
		r := ns.RootID
		rec.RootID = &r
	}
	for _, p := range ns.Parents {
		rec.Chain = append(rec.Chain, newNSLink(p))
	}
	return rec
}

func runUserns(ctx context.Context, opts *usernsOptions) error {
	failed := false
	sum := countSummary{summaryHead: newSummaryHead("userns")}
	for i, pid := range opts.PIDs {
		if err := ctx.Err(); err != nil {
			return err
		}
		ns, err := opts.Inspect(pid)
		if err != nil {
			failed = true
			fmt.Fprintf(opts.IO.ErrOut, "nscap: userns %d: %s\n", pid, pidError(pid, err).Error())
			if opts.JSON {
				sum.Records++
				sum.Errors++
				if err := writeJSON(opts.IO.Out, itemRecord{Type: recError, PID: pid, Message: jsonText(pidError(pid, err).Error())}); err != nil {
					return err
				}
			}
			continue
		}
		rec := newUsernsRecord(ns)
		if opts.JSON {
			sum.Records++
			if err := writeJSON(opts.IO.Out, rec); err != nil {
				return err
			}
			continue
		}
		if i > 0 {
			fmt.Fprintln(opts.IO.Out)
		}
		if err := printUserns(opts.IO.Out, rec); err != nil {
			return err
		}
	}
	return endRun(opts.IO.Out, opts.JSON, sum, failed)
}

// mapText shows an empty map as "(none)".
func mapText(m string) string {
	if m == "" {
		return "(none)"
	}
	return m
}

func printUserns(w io.Writer, rec usernsRecord) error {
	var b strings.Builder
	fmt.Fprintf(&b, "pid %d\n", rec.PID)
	id := ""
	if rec.ID != 0 {
		id = fmt.Sprintf(" id %d", rec.ID)
	}
	where := fmt.Sprintf("depth %d", rec.Depth)
	switch {
	case rec.Self:
		where = "depth 0 (the caller's own)"
	case !rec.Descendant:
		where = "not below the caller's namespace"
	}
	fmt.Fprintf(&b, "  namespace  %s%s, %s, owner uid %d\n", rec.NS, id, where, rec.OwnerUID)
	note := ""
	if rec.Self {
		note = " (relative to the parent namespace)"
	}
	fmt.Fprintf(&b, "  uid map    %s%s\n", mapText(rec.UIDMap), note)
	fmt.Fprintf(&b, "  gid map    %s%s\n", mapText(rec.GIDMap), note)
	if rec.RootID != nil {
		fmt.Fprintf(&b, "  root       %d\n", *rec.RootID)
	} else {
		b.WriteString("  root       not visible from the caller's namespace\n")
	}
	chain := []string{rec.NS}
	for _, p := range rec.Chain {
		chain = append(chain, p.NS)
	}
	switch {
	case rec.Self:
		b.WriteString("  chain      " + rec.NS + " (the caller's)\n")
	case rec.Descendant:
		b.WriteString("  chain      " + strings.Join(chain, " < ") + " (the caller's)\n")
	default:
		b.WriteString("  chain      " + rec.NS + " (no path to the caller's namespace)\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// treeRecord is the JSON output of userns tree for one namespace. It is
// part of the documented --json interface: fields may be added, never
// renamed.
type treeRecord struct {
	Type string `json:"type"` // "namespace"
	nsLink
	Depth       int     `json:"depth"`
	ParentInode *uint64 `json:"parent_inode,omitempty"`
	Self        bool    `json:"self"`
	PIDs        []int   `json:"pids"`
	UIDMap      string  `json:"uid_map"`
	GIDMap      string  `json:"gid_map"`
	RootID      *uint32 `json:"rootid"`
	Error       string  `json:"map_error,omitempty"` // the maps could not be read
}

func newTreeRecord(n *userns.Node, depth int) treeRecord {
	rec := treeRecord{
		Type:   recNamespace,
		nsLink: newNSLink(n.NSRef),
		Depth:  depth,
		Self:   n.Self,
		PIDs:   n.PIDs,
		UIDMap: n.UIDMap.String(),
		GIDMap: n.GIDMap.String(),
	}
	if rec.PIDs == nil {
		rec.PIDs = []int{}
	}
	if n.Parent != nil {
		p := n.Parent.Inode
		rec.ParentInode = &p
	}
	if n.RootVisible && n.MapErr == nil {
		r := n.RootID
		rec.RootID = &r
	}
	if n.MapErr != nil {
		rec.Error = n.MapErr.Error()
	}
	return rec
}

func runUsernsTree(_ context.Context, opts *usernsTreeOptions) error {
	roots, err := opts.Namespaces()
	if err != nil {
		return fmt.Errorf("userns tree: %w", err)
	}
	var b strings.Builder
	sum := countSummary{summaryHead: newSummaryHead("userns tree")}
	var walk func(n *userns.Node, depth int, prefix string, last bool) error
	walk = func(n *userns.Node, depth int, prefix string, last bool) error {
		rec := newTreeRecord(n, depth)
		if opts.JSON {
			sum.Records++
			if err := writeJSON(&b, rec); err != nil {
				return err
			}
		} else {
			branch, next := "", ""
			if depth > 0 {
				branch, next = "├── ", "│   "
				if last {
					branch, next = "└── ", "    "
				}
			}
			b.WriteString(prefix + branch + treeLine(rec) + "\n")
			prefix += next
		}
		for i, c := range n.Children {
			if err := walk(c, depth+1, prefix, i == len(n.Children)-1); err != nil {
				return err
			}
		}
		return nil
	}
	for _, r := range roots {
		if err := walk(r, 0, "", true); err != nil {
			return err
		}
	}
	if opts.JSON {
		if err := writeJSON(&b, sum); err != nil {
			return err
		}
	}
	_, err = io.WriteString(opts.IO.Out, b.String())
	return err
}

// treeLine is the text of one namespace in the tree.
func treeLine(rec treeRecord) string {
	s := rec.NS
	switch {
	case rec.Self:
		s += " (the caller's)"
	case rec.Depth == 0:
		s += " (outside the caller's namespace)"
	}
	switch {
	case rec.Error != "":
		s += " root ? (" + rec.Error + ")"
	case rec.RootID != nil:
		s += " root " + strconv.FormatUint(uint64(*rec.RootID), 10)
	default:
		s += " root not visible"
	}
	s += " owner " + strconv.FormatUint(uint64(rec.OwnerUID), 10)
	if rec.UIDMap != "" && !rec.Self {
		s += " uid_map " + rec.UIDMap
	}
	if len(rec.PIDs) == 0 {
		return s + " pids none"
	}
	return s + " " + pidsText(rec.PIDs)
}

// treePIDs is how many pids a line of userns tree shows: a namespace of
// a busy host or container has thousands.
const treePIDs = 8

// pidsText shows the pids of a namespace: all of a few ("pids 1,7,9"), or
// their count and the first treePIDs ("pids 412: 1,2,3,... and 404 more").
func pidsText(pids []int) string {
	n := min(len(pids), treePIDs)
	ps := make([]string, n)
	for i, p := range pids[:n] {
		ps[i] = strconv.Itoa(p)
	}
	if len(pids) <= treePIDs {
		return "pids " + strings.Join(ps, ",")
	}
	return fmt.Sprintf("pids %d: %s and %d more", len(pids), strings.Join(ps, ","), len(pids)-n)
}
