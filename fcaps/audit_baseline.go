package fcaps

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/nscap/nscap/xattrfmt"
)

// BaselineVersion is the version of the baseline file format.
const BaselineVersion = 1

// ErrBadBaseline is a baseline file that cannot be read.
var ErrBadBaseline = errors.New("fcaps: malformed baseline")

// Baseline records the capabilities of every file an audit saw, to compare
// a later audit with ([Baseline.Diff]). Its JSON form, the file of
// `nscap audit --write-baseline`, is
//
//	{"version":1,"files":{"PATH":{"caps":"cap_net_raw=ep","revision":3,"rootid":100000},...}}
//
// with "state":"unreadable" or "not-visible" (and no caps) for values that
// could not be read. A Baseline is not safe for concurrent use.
type Baseline struct {
	Version int                      `json:"version"`
	Files   map[string]BaselineEntry `json:"files"`

	// findings keeps, per path, the inventory finding Add saw.
	findings map[string]Finding
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

// NewBaseline returns an empty baseline.
func NewBaseline() *Baseline {
	return &Baseline{Version: BaselineVersion, Files: map[string]BaselineEntry{}}
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
	if _, ok := b.Files[f.Path]; ok && f.Caps == nil {
		return
	}
	b.Files[f.Path] = e
	if b.findings == nil {
		b.findings = map[string]Finding{}
	}
	b.findings[f.Path] = f
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

// ReadBaseline reads a baseline written by [Baseline.WriteTo]. It checks
// the version and every entry: an entry has either caps and a revision of
// 1, 2 or 3 (a rootid only with revision 3), or a known state.
func ReadBaseline(r io.Reader) (*Baseline, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	b := &Baseline{}
	if err := dec.Decode(b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBaseline, err)
	}
	if b.Version != BaselineVersion {
		return nil, fmt.Errorf("%w: version %d (want %d)", ErrBadBaseline, b.Version, BaselineVersion)
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
// or changed (NSCAP103) since old, sorted by path.
func (b *Baseline) Diff(old *Baseline) []Finding {
	var out []Finding
	for p, e := range b.Files {
		f := b.findings[p]
		f.Path = p
		o, ok := old.Files[p]
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
	for p, o := range old.Files {
		if _, ok := b.Files[p]; !ok {
			out = append(out, Finding{Rule: mustRule(RuleBaselineRemoved), Path: p, Scope: Scope{Kind: ScopeNone},
				Message: "capabilities removed since the baseline (were " + o.String() + ")"})
		}
	}
	slices.SortFunc(out, func(x, y Finding) int { return strings.Compare(x.Path, y.Path) })
	return out
}
