package cli

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"unicode/utf8"

	"github.com/nscap/nscap/xattrfmt"
)

// capsJSON is the JSON form of one security.capability value. It is part
// of the documented --json interface of get, decode and encode: fields may
// be added, never renamed.
type capsJSON struct {
	Caps        string   `json:"caps"`             // the text getcap prints
	Revision    int      `json:"revision"`         // 1, 2 or 3
	Effective   bool     `json:"effective"`        // the file's effective bit
	Permitted   []string `json:"permitted"`        // capability names (numbers above the last known)
	Inheritable []string `json:"inheritable"`      // capability names
	RootID      *uint32  `json:"rootid,omitempty"` // only for revision 3
}

// newCapsJSON converts c to its JSON form.
func newCapsJSON(c xattrfmt.FileCaps) *capsJSON {
	j := &capsJSON{
		Caps:        c.String(),
		Revision:    int(c.Revision),
		Effective:   c.Effective,
		Permitted:   capNames(c.Permitted),
		Inheritable: capNames(c.Inheritable),
	}
	if c.HasRootID() {
		r := c.RootID
		j.RootID = &r
	}
	return j
}

// capNames lists the names of the capabilities in s, never nil (so JSON
// shows []).
func capNames(s xattrfmt.CapSet) []string {
	names := []string{}
	for bit := range 64 {
		if s.Has(bit) {
			names = append(names, xattrfmt.Name(bit))
		}
	}
	return names
}

// pathBase64 returns the "path_base64" field of a JSON record: the bytes
// of path in standard base64 when path is not valid UTF-8 (encoding/json
// writes such a "path" with U+FFFD in place of the bad bytes, losing them),
// else "" (the field is left out).
func pathBase64(path string) string {
	if utf8.ValidString(path) {
		return ""
	}
	return base64.StdEncoding.EncodeToString([]byte(path))
}

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// endRun ends a command that reported each failed item itself: it writes
// the --json summary record sum (when jsonOut) on w, and returns errSilent
// (exit status 1) when an item failed.
func endRun(w io.Writer, jsonOut bool, sum any, failed bool) error {
	if jsonOut {
		if err := writeJSON(w, sum); err != nil {
			return err
		}
	}
	if failed {
		return errSilent
	}
	return nil
}

// reason returns the message of err without the "op path: " prefix of a
// *fs.PathError about path, which the caller prints itself.
func reason(err error, path string) string {
	msg := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == path {
		msg = strings.Replace(msg, pe.Op+" "+pe.Path+": ", "", 1)
	}
	return msg
}

// printPathError prints "nscap: <what> <path>: <reason>" on w.
func printPathError(w io.Writer, what, path string, err error) {
	fmt.Fprintf(w, "nscap: %s %s: %s\n", what, path, reason(err, path))
}
