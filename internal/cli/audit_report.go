package cli

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/nscap/nscap/fcaps"
)

// sortFindings orders findings by path, the most severe first, then by
// rule: the stable order of every output format.
func sortFindings(fs []fcaps.Finding) {
	slices.SortStableFunc(fs, func(a, b fcaps.Finding) int {
		return cmp.Or(
			strings.Compare(a.Path, b.Path),
			cmp.Compare(b.Severity(), a.Severity()),
			strings.Compare(a.Rule.ID, b.Rule.ID))
	})
}

// countText summarises findings by severity: "3 findings (1 critical, 2 info)".
func countText(fs []fcaps.Finding) string {
	counts := map[fcaps.Severity]int{}
	for _, f := range fs {
		counts[f.Severity()]++
	}
	var parts []string
	for s := fcaps.SeverityCritical; ; s-- {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
		if s == fcaps.SeverityInfo {
			break
		}
	}
	noun := "findings"
	if len(fs) == 1 {
		noun = "finding"
	}
	if len(parts) == 0 {
		return "0 findings"
	}
	return fmt.Sprintf("%d %s (%s)", len(fs), noun, strings.Join(parts, ", "))
}

// auditRecord is the --json form of one finding: a documented interface
// (fields may be added, never renamed).
type auditRecord struct {
	Type       string   `json:"type"` // "finding"
	Rule       string   `json:"rule"`
	RuleName   string   `json:"rule_name"`
	Severity   string   `json:"severity"`
	Path       string   `json:"path"`
	Message    string   `json:"message"`
	HonouredIn []string `json:"honoured_in"` // the spelling of the table's HONOURED-IN
	Caps       string   `json:"caps,omitempty"`
	Revision   int      `json:"revision,omitempty"`
	RootID     *uint32  `json:"rootid,omitempty"`
	// The owner uid as audited (host ids for a tree) and, when the file
	// lies in a container whose map is known, the owner and the rootid
	// as the container sees them.
	OwnerUID          uint32  `json:"owner_uid"`
	OwnerContainerUID *uint32 `json:"owner_container_uid,omitempty"`
	RootIDContainer   *uint32 `json:"rootid_container,omitempty"`
	// MapGuessed: the verdict depends on a guessed uid map; the severity
	// is capped at low.
	MapGuessed bool `json:"map_guessed,omitempty"`
	// Layer is the digest of the image layer that wrote the file.
	Layer string `json:"layer,omitempty"`
	// Binfmt says how binfmt_misc runs a foreign binary.
	Binfmt *fcaps.BinfmtMatch `json:"binfmt,omitempty"`
}

// auditSummary is the last --json record.
type auditSummary struct {
	summaryHead
	Findings   int            `json:"findings"`
	BySeverity map[string]int `json:"by_severity"`
	Files      int            `json:"files_with_caps"`
	Errors     int            `json:"errors"` // "error" records (paths that could not be audited)
	// Maps are the uid maps the trees were audited with, and why.
	Maps []auditMap `json:"maps"`
	// Binfmt is the binfmt_misc instance foreign binaries were checked
	// against.
	Binfmt *auditBinfmt `json:"binfmt,omitempty"`
}

// auditBinfmt is the binfmt_misc instance of the --json summary.
type auditBinfmt struct {
	Dir      string              `json:"dir"`
	Instance string              `json:"instance"`
	Mounted  bool                `json:"mounted"`
	Enabled  bool                `json:"enabled"`
	Host     string              `json:"host_machine"`
	Entries  []fcaps.BinfmtEntry `json:"entries"`
}

func newAuditRecord(f fcaps.Finding) auditRecord {
	r := auditRecord{
		Type: recFinding, Rule: f.Rule.ID, RuleName: f.Rule.Name, Severity: f.Severity().String(),
		Path: f.Path, Message: f.Message, HonouredIn: f.Scope.Strings(),
		OwnerUID: f.Owner, OwnerContainerUID: f.OwnerInContainer, RootIDContainer: f.RootIDInContainer, MapGuessed: f.MapGuessed,
		Layer: f.Layer, Binfmt: f.Binfmt,
	}
	if f.Caps != nil {
		r.Caps, r.Revision = f.Caps.String(), int(f.Caps.Revision)
		if f.Caps.HasRootID() {
			id := f.Caps.RootID
			r.RootID = &id
		}
	}
	return r
}

func writeAuditJSON(w io.Writer, errs []itemRecord, fs []fcaps.Finding, files int, maps []auditMap, b *fcaps.Binfmt) error {
	if maps == nil {
		maps = []auditMap{}
	}
	for _, e := range errs {
		if err := writeJSON(w, e); err != nil {
			return err
		}
	}
	sum := auditSummary{summaryHead: newSummaryHead("audit"), Findings: len(fs), BySeverity: map[string]int{}, Files: files, Maps: maps, Errors: len(errs)}
	if b != nil {
		sum.Binfmt = &auditBinfmt{Dir: b.Dir, Instance: b.Instance, Mounted: b.Mounted, Enabled: b.Enabled, Host: b.Host.String(), Entries: b.Entries}
		if sum.Binfmt.Entries == nil {
			sum.Binfmt.Entries = []fcaps.BinfmtEntry{}
		}
	}
	for _, f := range fs {
		sum.BySeverity[f.Severity().String()]++
		if err := writeJSON(w, newAuditRecord(f)); err != nil {
			return err
		}
	}
	return writeJSON(w, sum)
}

func writeAuditTable(w io.Writer, fs []fcaps.Finding) error {
	if len(fs) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SEVERITY\tRULE\tPATH\tCAPS\tHONOURED-IN\tMESSAGE")
	for _, f := range fs {
		caps := f.CapsText()
		if caps == "" {
			caps = "-"
		}
		in := strings.Join(f.Scope.Strings(), ",")
		if in == "" {
			in = "-"
		}
		msg := f.Message
		if f.Layer != "" && !strings.Contains(msg, f.Layer) {
			msg += " (layer " + shortDigest(f.Layer) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Severity(), f.Rule.ID, f.Path, caps, in, msg)
	}
	return tw.Flush()
}

// shortDigest shortens "sha256:HEX" to 12 hex digits, as docker prints
// image ids; other names are left as they are.
func shortDigest(d string) string {
	alg, hexs, ok := strings.Cut(d, ":")
	if !ok || len(hexs) <= 12 {
		return d
	}
	return alg + ":" + hexs[:12]
}
