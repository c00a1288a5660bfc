package cli

import (
	"errors"
	"fmt"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/xattrfmt"
)

// verifyRecord is the JSON output of set -v for one path.
type verifyRecord struct {
	Type       string  `json:"type"` // "check"
	Path       string  `json:"path"`
	PathBase64 string  `json:"path_base64,omitempty"` // when Path is not valid UTF-8
	OK         bool    `json:"ok"`
	Differs    string  `json:"differs,omitempty"`    // sets that differ, from "pie"
	RootIDGot  *uint32 `json:"rootid_got,omitempty"` // nil when the caps could not be read
	RootIDWant uint32  `json:"rootid_want"`
	Foreign    bool    `json:"foreign,omitempty"`
	Error      string  `json:"-"` // an "error" record in JSON
}

// verifyOne compares the caps of path, found by lookup as set finds it,
// with want; ok is false when they differ or cannot be read (reported).
// sum counts the --json records.
func verifyOne(opts *setOptions, lookup fcaps.Lookup, path string, want xattrfmt.FileCaps, sum *countSummary) (ok bool, err error) {
	rec := verifyRecord{Type: recCheck, Path: path, PathBase64: pathBase64(path), RootIDWant: rootIDOf(want)}
	var got xattrfmt.FileCaps
	f, gerr := openFile(lookup, opts.Root, path)
	if gerr == nil {
		got, gerr = f.Get()
		_ = f.Close()
	}
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
		gotID := rootIDOf(got)
		rec.RootIDGot = &gotID
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
		rec.OK = rec.Differs == "" && gotID == rec.RootIDWant
		switch {
		case rec.OK:
			line = path + ": OK"
		case gotID != rec.RootIDWant:
			line = fmt.Sprintf("nsowner[got=%d, want=%d],%s differs in [%s]", gotID, rec.RootIDWant, path, rec.Differs)
		default:
			line = fmt.Sprintf("%s differs in [%s]", path, rec.Differs)
		}
	}
	if opts.JSON {
		sum.Records++
		if rec.Error != "" {
			sum.Errors++
			return false, writeItem(opts.IO.Out, recError, path, rec.Error)
		}
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
