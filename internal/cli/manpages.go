package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manSeeAlso are the pages of other projects every nscap page refers to.
const manSeeAlso = `\fBgetcap(8)\fP, \fBsetcap(8)\fP, \fBcapabilities(7)\fP, \fBuser_namespaces(7)\fP`

// WriteManPages writes a section-1 man page for root and for each of its
// available subcommands into dir, named after the command path
// (nscap-restore.1 for "nscap restore"). The EXIT STATUS block that ends
// a command's long help becomes the page's own EXIT STATUS section, and
// SEE ALSO names getcap(8), setcap(8), capabilities(7) and
// user_namespaces(7) besides the related nscap pages.
func WriteManPages(root *cobra.Command, version, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root.DisableAutoGenTag = true // reproducible output: no generation date
	hdr := &doc.GenManHeader{Title: "NSCAP", Section: "1", Source: "nscap " + version, Manual: "nscap manual"}
	return writeManTree(root, hdr, dir)
}

func writeManTree(cmd *cobra.Command, hdr *doc.GenManHeader, dir string) error {
	for _, c := range cmd.Commands() {
		if !c.IsAvailableCommand() || c.IsAdditionalHelpTopicCommand() {
			continue
		}
		if err := writeManTree(c, hdr, dir); err != nil {
			return err
		}
	}
	page, err := manPage(cmd, hdr)
	if err != nil {
		return fmt.Errorf("man page of %s: %w", cmd.CommandPath(), err)
	}
	name := strings.ReplaceAll(cmd.CommandPath(), " ", "-") + "." + hdr.Section
	return os.WriteFile(filepath.Join(dir, name), page, 0o644)
}

// manPage renders the page of cmd.
func manPage(cmd *cobra.Command, hdr *doc.GenManHeader) ([]byte, error) {
	long := cmd.Long
	desc, status := splitExitStatus(long)
	cmd.Long = desc
	defer func() { cmd.Long = long }()
	h := *hdr // GenMan fills in the title of a header it is given
	h.Title = strings.ToUpper(strings.ReplaceAll(cmd.CommandPath(), " ", "-"))
	var buf bytes.Buffer
	if err := doc.GenMan(cmd, &h, &buf); err != nil {
		return nil, err
	}
	page := buf.String()
	section := exitStatusRoff(status)
	i := strings.Index(page, ".SH SEE ALSO\n")
	if i < 0 {
		return []byte(page + section + ".SH SEE ALSO\n" + manSeeAlso + "\n"), nil
	}
	rest := strings.TrimRight(page[i:], "\n")
	return []byte(page[:i] + section + rest + ", " + manSeeAlso + "\n"), nil
}

// splitExitStatus splits a long help into the text before its EXIT
// STATUS block and the lines of that block (without the heading). A help
// without the block gets the statuses common to all commands.
func splitExitStatus(long string) (desc string, status []string) {
	const head = "EXIT STATUS\n"
	i := strings.Index(long, "\n"+head)
	if i < 0 && strings.HasPrefix(long, head) {
		i = -1
	} else if i < 0 {
		return long, strings.Split(strings.TrimPrefix(exitStatusCommon, head), "\n")
	}
	block := long[i+1+len(head):]
	after := ""
	if j := strings.Index(block, "\n\n"); j >= 0 {
		block, after = block[:j], block[j:]
	}
	desc = strings.TrimRight(long[:i+1], "\n") + after
	return desc, strings.Split(block, "\n")
}

var statusLine = regexp.MustCompile(`^\s*(\d+)\s+(.*)$`)

// exitStatusRoff renders the lines of an EXIT STATUS block ("  0  text",
// continued on more-indented lines) as a roff section of tagged
// paragraphs.
func exitStatusRoff(lines []string) string {
	var b strings.Builder
	b.WriteString(".SH EXIT STATUS\n")
	for _, l := range lines {
		if m := statusLine.FindStringSubmatch(l); m != nil {
			fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", m[1], roffEscape(m[2]))
		} else if t := strings.TrimSpace(l); t != "" {
			b.WriteString(roffEscape(t) + "\n")
		}
	}
	b.WriteString("\n")
	return b.String()
}

// roffEscape escapes backslashes and a leading dot or quote of a line.
func roffEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}
