package cli

import (
	"io"
	"regexp"
	"strings"
)

// The library packages prefix their sentinel errors with their name, as
// archive/tar does ("userns: id not mapped"), for the programs that use
// them. nscap's own messages speak to the user, who knows commands and
// flags, not Go packages: userText drops those prefixes and the Go names
// that library messages carry for library callers. It is applied in one
// place, to everything nscap writes on stderr (see Main).

// pkgPrefix matches a package prefix that follows the context of a
// message ("nscap: set f: userns: ..."); a name at the start of a line is
// the CLI's own (the "backup: entries" of a progress line).
var pkgPrefix = regexp.MustCompile(`: (?:userns|xattrfmt|backup|fcaps|tarfmt): `)

// goWords are Go names in library messages and what the user reads
// instead.
var goWords = strings.NewReplacer(
	", RestoreOptions.HostScope)", ")",
	"archive/tar's limit", "the limit of the tar reader",
	"not hex: encoding/hex: ", "not hex: ",
)

// bareEOF is archive/tar's (or a decompressor's) io.ErrUnexpectedEOF
// ending a message about an archive, alone or after a member's name:
// "read archive: unexpected EOF" says nothing to a user whose archive was
// cut inside a member (a copy interrupted, a download cut short). (audit
// says "malformed archive: unexpected EOF", which tells it already.)
var bareEOF = regexp.MustCompile(`(read archive: (?:[^:\n]+: )?)unexpected EOF(\n|$)`)

// userText rewrites the messages in s in the user's words.
func userText(s string) string {
	for pkgPrefix.MatchString(s) { // "userns: backup: x" loses both
		s = pkgPrefix.ReplaceAllString(s, ": ")
	}
	s = bareEOF.ReplaceAllStringFunc(s, func(m string) string {
		if strings.Contains(m, "cut short") { // the compressed stream's end: said already
			return m
		}
		return bareEOF.ReplaceAllString(m, "${1}truncated archive: it ends inside a member (unexpected EOF)$2")
	})
	return goWords.Replace(s)
}

// jsonText is userText for the message of a JSON record, which starts
// with the library's words where a line of stderr starts with nscap's
// ("backup: id outside the map" in an "error" record).
func jsonText(s string) string {
	return strings.TrimPrefix(userText(": "+s), ": ")
}

// userWriter writes through userText. Each Write is rewritten on its own:
// nscap writes a message in one call (fmt.Fprintf).
type userWriter struct{ w io.Writer }

func (u userWriter) Write(p []byte) (int, error) {
	s := string(p)
	t := userText(s)
	if t == s {
		return u.w.Write(p)
	}
	if _, err := io.WriteString(u.w, t); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Fd returns the descriptor of the underlying stream, for a caller that
// asks the terminal its size; ^0 (no descriptor) when it has none.
func (u userWriter) Fd() uintptr {
	if f, ok := u.w.(interface{ Fd() uintptr }); ok {
		return f.Fd()
	}
	return ^uintptr(0)
}

// inUserWords returns ios with its error stream written in the user's
// words.
func inUserWords(ios *IOStreams) *IOStreams {
	if _, ok := ios.ErrOut.(userWriter); ok {
		return ios
	}
	c := *ios
	c.ErrOut = userWriter{ios.ErrOut}
	return &c
}
