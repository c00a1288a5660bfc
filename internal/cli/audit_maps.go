package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/userns"
)

// auditMap is the uid map a tree was audited with, and why: a record of
// the --json summary.
type auditMap struct {
	Path string `json:"path"`
	fcaps.MapChoice
}

// auditMapFor chooses the container uid map of the tree at p: --uidmap,
// else --oci-config, else what fcaps.InferMap finds.
func auditMapFor(p string, opts *auditOptions, ns []*userns.Node) (fcaps.MapChoice, error) {
	if !opts.UIDMap.IsZero() {
		gid := opts.GIDMap
		if gid.IsZero() {
			gid = opts.UIDMap
		}
		return fcaps.MapChoice{Source: fcaps.MapGiven, UIDMap: opts.UIDMap, GIDMap: gid, Reason: "given with --uidmap"}, nil
	}
	if opts.PID != 0 {
		same, err := sameUserNS(opts.PID)
		if err != nil {
			return fcaps.MapChoice{}, err
		}
		if same {
			return fcaps.MapChoice{Source: fcaps.MapGiven, Reason: fmt.Sprintf("pid %d is in the auditor's own user namespace", opts.PID)}, nil
		}
		uid, gid, err := userns.ReadMaps(opts.PID)
		if err != nil {
			return fcaps.MapChoice{}, pidError(opts.PID, err)
		}
		return fcaps.MapChoice{Source: fcaps.MapGiven, UIDMap: uid, GIDMap: gid, Reason: fmt.Sprintf("the user namespace of pid %d (--pid)", opts.PID)}, nil
	}
	return fcaps.InferMap(p, fcaps.InferOptions{OCIConfig: opts.OCIConfig, Namespaces: ns})
}

// readAllSubIDs reads every range of a subuid file, whoever owns it; a
// missing file (or an empty name) gives none.
func readAllSubIDs(path string) ([]userns.SubIDRange, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// Validate every line with the library's rules (no owner matches
	// this name), then take every line's range.
	if _, err := userns.ParseSubID(bytes.NewReader(b), "\x00", userns.InvalidID); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	owners := map[string]bool{}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		owner, _, _ := strings.Cut(line, ":")
		owners[owner] = true
	}
	var out []userns.SubIDRange
	for _, o := range slices.Sorted(func(yield func(string) bool) {
		for k := range owners {
			if !yield(k) {
				return
			}
		}
	}) {
		r, err := userns.ParseSubID(bytes.NewReader(b), o, userns.InvalidID)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, r...)
	}
	return out, nil
}
