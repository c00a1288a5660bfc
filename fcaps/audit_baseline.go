package fcaps

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nscap/nscap/xattrfmt"
)

// BaselineVersion is the version of the baseline file format that
// [Baseline.WriteTo] writes. [ReadBaseline] also reads version 1, whose
// files are keyed by the path as the audit printed it.
const BaselineVersion = 2

// ErrBadBaseline is a baseline file that cannot be read.
var ErrBadBaseline = errors.New("fcaps: malformed baseline")

// Baseline records the capabilities of every file an audit saw, to compare
// a later audit with ([Baseline.Diff]). Its JSON form, the file of
// `nscap audit --write-baseline`, is
//
//	{"version":2,"roots":[{"path":"rootfs"}],
//	 "files":{"bin/ping":{"caps":"cap_net_raw=ep","revision":3,"rootid":100000},...}}
//
// with "state":"unreadable" or "not-visible" (and no caps) for values that
// could not be read. Files are keyed by their path relative to the audited
// root ([Finding.Rel]), so that "rootfs", "./rootfs", "rootfs/" and
// "/abs/rootfs" give the same keys, and an archive of the tree (members
// "./bin/ping" or "bin/ping") the same keys as the tree. When several roots
// are audited together, each key starts with a label of its root: the
// root's base name, or its absolute path without the leading "/" when two
// roots share a base name. The roots are recorded for information only.
// A Baseline is not safe for concurrent use.
type Baseline struct {
	Version int                      `json:"version"`
	Roots   []BaselineRoot           `json:"roots,omitempty"`
	Files   map[string]BaselineEntry `json:"files"`

	// findings keeps, per key, the inventory finding Add saw.
	findings map[string]Finding
	// labels maps a root's path to the prefix of its keys (several roots).
	labels map[string]string
}

// BaselineRoot is one root of the audit a [Baseline] records.
type BaselineRoot struct {
	// Path is the tree, file or archive as given to the audit.
	Path string `json:"path"`
	// Archive is set for an archive, whose findings are named
	// "ARCHIVE:MEMBER".
	Archive bool `json:"archive,omitempty"`
}

// BaselineEntry is the state of one file in a [Baseline].
type BaselineEntry struct {
	// Caps is the text getcap prints (without the rootid).
	Caps string `json:"caps,omitempty"`
	// Revision is 1, 2 or 3 (0 when unreadable).
	Revision int `json:"revision,omitempty"`
	// RootID is the rootid of a revision-3 value.
	RootID *uint32 `json:"rootid,omitempty"`
	// State is "unreadable" (the kernel refuses the value, or the raw value
	// is malformed) or "not-visible" (EOVERFLOW); empty when Caps is set.
	State string `json:"state,omitempty"`
}

// Baseline entry states.
const (
	BaselineUnreadable = "unreadable"
	BaselineNotVisible = "not-visible"
)

// NewBaseline returns an empty baseline of the audit of roots (which
// may be none, for findings that have no [Finding.Rel]: they are keyed by
// their path).
func NewBaseline(roots ...BaselineRoot) *Baseline {
	b := &Baseline{Version: BaselineVersion, Roots: slices.Clone(roots), Files: map[string]BaselineEntry{}}
	if len(roots) > 1 {
		b.labels = rootLabels(roots)
	}
	return b
}

// rootLabels gives each root the prefix of its keys: its base name, or,
// when another root has the same base name, its absolute path without the
// leading "/".
func rootLabels(roots []BaselineRoot) map[string]string {
	abs := map[string]string{}
	count := map[string]int{}
	for _, r := range roots {
		if _, ok := abs[r.Path]; ok {
			continue
		}
		a, err := filepath.Abs(r.Path)
		if err != nil {
			a = filepath.Clean(r.Path)
		}
		abs[r.Path] = a
		count[filepath.Base(a)]++
	}
	labels := map[string]string{}
	for p, a := range abs {
		l := filepath.Base(a)
		if count[l] > 1 || l == "/" || l == "." {
			l = strings.TrimPrefix(a, "/")
		}
		if l == "" {
			l = "/"
		}
		labels[p] = l
	}
	return labels
}

// key returns the key of f's file: its Rel, prefixed by its root's label
// when several roots were audited; its Path when it has no Rel.
func (b *Baseline) key(f Finding) string {
	if f.Rel == "" {
		return f.Path
	}
	if b.labels == nil {
		return f.Rel
	}
	l, ok := b.labels[f.Root]
	if !ok {
		return f.Path
	}
	return path.Join(l, f.Rel)
}

// display names the file of key k in a finding, as the audit of b's roots
// would: the inverse of key.
func (b *Baseline) display(k string) string {
	join := func(r BaselineRoot, rel string) string {
		switch {
		case r.Archive:
			return r.Path + ":" + rel
		case rel == ".":
			return r.Path
		case strings.HasSuffix(r.Path, "/"):
			return r.Path + rel
		}
		return r.Path + "/" + rel
	}
	if len(b.Roots) == 1 {
		return join(b.Roots[0], k)
	}
	for _, r := range b.Roots {
		l, ok := b.labels[r.Path]
		if !ok {
			continue
		}
		if k == l {
			return join(r, ".")
		}
		if rel, ok := strings.CutPrefix(k, l+"/"); ok {
			return join(r, rel)
		}
	}
	return k
}

// String formats e as "CAPS [rootid=N]" or its state.
func (e BaselineEntry) String() string {
	if e.State != "" {
		return "(" + e.State + ")"
	}
	s := e.Caps
	if e.RootID != nil && *e.RootID != 0 {
		s += fmt.Sprintf(" [rootid=%d]", *e.RootID)
	}
	return s + fmt.Sprintf(" (revision %d)", e.Revision)
}

func (e BaselineEntry) equal(o BaselineEntry) bool {
	if (e.RootID == nil) != (o.RootID == nil) || e.RootID != nil && *e.RootID != *o.RootID {
		return false
	}
	return e.Caps == o.Caps && e.Revision == o.Revision && e.State == o.State
}

// Add records the file of an audit finding. Every file with a
// security.capability yields at least one finding, so adding all the
// findings of an audit records all such files; findings of the baseline
// rules are ignored.
func (b *Baseline) Add(f Finding) {
	if strings.HasPrefix(f.Rule.ID, "NSCAP1") {
		return
	}
	var e BaselineEntry
	switch {
	case f.Caps != nil:
		e = BaselineEntry{Caps: f.Caps.String(), Revision: int(f.Caps.Revision)}
		if f.Caps.HasRootID() {
			r := f.Caps.RootID
			e.RootID = &r
		}
	case f.Rule.ID == RuleNotVisible:
		e.State = BaselineNotVisible
	default:
		e.State = BaselineUnreadable
	}
	if b.Files == nil {
		b.Files = map[string]BaselineEntry{}
	}
	k := b.key(f)
	if _, ok := b.Files[k]; ok && f.Caps == nil {
		return
	}
	b.Files[k] = e
	if b.findings == nil {
		b.findings = map[string]Finding{}
	}
	b.findings[k] = f
}

// WriteTo writes b as indented JSON, paths sorted.
func (b *Baseline) WriteTo(w io.Writer) (int64, error) {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return 0, err
	}
	n, err := w.Write(append(data, '\n'))
	return int64(n), err
}

// ReadBaseline reads a baseline written by [Baseline.WriteTo], of
// version 1 or 2. It checks the version and every entry: an entry has
// either caps and a revision of 1, 2 or 3 (a rootid only with revision 3),
// or a known state.
func ReadBaseline(r io.Reader) (*Baseline, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	b := &Baseline{}
	if err := dec.Decode(b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBaseline, err)
	}
	if b.Version != 1 && b.Version != BaselineVersion {
		return nil, fmt.Errorf("%w: version %d (want 1 or %d)", ErrBadBaseline, b.Version, BaselineVersion)
	}
	if b.Files == nil {
		return nil, fmt.Errorf("%w: no \"files\" object", ErrBadBaseline)
	}
	for p, e := range b.Files {
		switch {
		case e.State != "":
			if e.State != BaselineUnreadable && e.State != BaselineNotVisible {
				return nil, fmt.Errorf("%w: %s: unknown state %q", ErrBadBaseline, p, e.State)
			}
			if e.Caps != "" || e.Revision != 0 || e.RootID != nil {
				return nil, fmt.Errorf("%w: %s: state %q with caps", ErrBadBaseline, p, e.State)
			}
		case e.Revision < 1 || e.Revision > 3:
			return nil, fmt.Errorf("%w: %s: revision %d (want 1, 2 or 3)", ErrBadBaseline, p, e.Revision)
		case (e.RootID != nil) != (e.Revision == 3):
			return nil, fmt.Errorf("%w: %s: a rootid goes with revision 3 exactly", ErrBadBaseline, p)
		default:
			if _, err := xattrfmt.ParseText(e.Caps); err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrBadBaseline, p, err)
			}
		}
	}
	return b, nil
}

// Diff compares b (the current audit) with old and returns one finding
// per file whose capabilities were added (NSCAP101), removed (NSCAP102)
// or changed (NSCAP103) since old, sorted by path. Files are matched by
// key (see [Baseline]); with an old baseline of version 1, whose keys are
// the paths as printed, by the path of the current findings.
func (b *Baseline) Diff(old *Baseline) []Finding {
	files := b.Files
	display := b.display
	if old.Version == 1 {
		files = make(map[string]BaselineEntry, len(b.Files))
		byPath := make(map[string]Finding, len(b.Files))
		for k, e := range b.Files {
			p := b.pathOf(k)
			files[p] = e
			f := b.findings[k]
			f.Path = p
			byPath[p] = f
		}
		display = func(p string) string { return p }
		b = &Baseline{Files: files, findings: byPath}
	}
	var out []Finding
	for k, e := range files {
		f := b.findings[k]
		f.Path = b.pathOf(k)
		o, ok := old.Files[k]
		switch {
		case !ok:
			f.Rule = mustRule(RuleBaselineAdded)
			f.Message = "capabilities added since the baseline: " + e.String()
		case !e.equal(o):
			f.Rule = mustRule(RuleBaselineChanged)
			f.Message = fmt.Sprintf("capabilities changed since the baseline: was %s, now %s", o, e)
		default:
			continue
		}
		out = append(out, f)
	}
	for k, o := range old.Files {
		if _, ok := files[k]; !ok {
			out = append(out, Finding{
				Rule: mustRule(RuleBaselineRemoved), Path: display(k), Scope: Scope{Kind: ScopeNone},
				Message: "capabilities removed since the baseline (were " + o.String() + ")",
			})
		}
	}
	slices.SortFunc(out, func(x, y Finding) int { return strings.Compare(x.Path, y.Path) })
	return out
}

// pathOf returns the path of the finding recorded under key k, or k.
func (b *Baseline) pathOf(k string) string {
	if f, ok := b.findings[k]; ok && f.Path != "" {
		return f.Path
	}
	return k
}
