package cli

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nscap/nscap/internal/testutil"
)

// jsonSchema is the --json schema as docs/json.md documents it.
type jsonSchema struct {
	keys    map[string]map[string]bool // record type -> its keys (not "summary")
	summary map[string]map[string]bool // command -> the keys of its summary
	records map[string]map[string]bool // command -> the record types it writes
}

var (
	schemaHeading = regexp.MustCompile(`^### type: ([a-z]+)(?: \(command: (.+)\))?$`)
	schemaKey     = regexp.MustCompile("^\\| `([a-z0-9_]+)` \\|")
	schemaCommand = regexp.MustCompile("^\\| `([a-z ]+)` \\| (.+) \\|$")
	backticked    = regexp.MustCompile("`([a-z_]+)`")
)

// readJSONSchema parses docs/json.md: the table of "## Commands" (command,
// record types) and, under each "### type: T" or "### type: summary
// (command: C, ...)" heading, the keys of its table.
func readJSONSchema(t *testing.T) *jsonSchema {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "docs", "json.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := &jsonSchema{keys: map[string]map[string]bool{}, summary: map[string]map[string]bool{}, records: map[string]map[string]bool{}}
	var section string
	var cur []map[string]bool // the key sets the current table fills
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			section, cur = line, nil
			continue
		}
		if m := schemaHeading.FindStringSubmatch(line); m != nil {
			cur = nil
			if m[1] != "summary" {
				s.keys[m[1]] = map[string]bool{}
				cur = append(cur, s.keys[m[1]])
				continue
			}
			for c := range strings.SplitSeq(m[2], ",") {
				c = strings.TrimSpace(c)
				s.summary[c] = map[string]bool{}
				cur = append(cur, s.summary[c])
			}
			continue
		}
		if m := schemaKey.FindStringSubmatch(line); m != nil && cur != nil {
			for _, set := range cur {
				set[m[1]] = true
			}
			continue
		}
		if m := schemaCommand.FindStringSubmatch(line); m != nil && section == "## Commands" {
			s.records[m[1]] = map[string]bool{}
			for _, tm := range backticked.FindAllStringSubmatch(m[2], -1) {
				s.records[m[1]][tm[1]] = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(s.keys) < 10 || len(s.records) < 14 || len(s.summary) < 14 {
		t.Fatalf("docs/json.md: %d record types, %d commands, %d summaries: the parser and the page disagree", len(s.keys), len(s.records), len(s.summary))
	}
	return s
}

// check checks the --json output of command against the schema and
// returns the types of its records.
func (s *jsonSchema) check(t *testing.T, command, stdout string) []string {
	t.Helper()
	allowed, ok := s.records[command]
	if !ok {
		t.Fatalf("docs/json.md lists no records for command %q", command)
	}
	var types []string
	for line := range strings.Lines(stdout) {
		var rec map[string]json.RawMessage
		d := json.NewDecoder(strings.NewReader(line))
		if err := d.Decode(&rec); err != nil || d.More() || rec == nil {
			t.Errorf("%s: not one JSON object: %q (%v)", command, line, err)
			continue
		}
		var typ string
		if err := json.Unmarshal(rec["type"], &typ); err != nil || typ == "" {
			t.Errorf("%s: no string \"type\": %s", command, line)
			continue
		}
		types = append(types, typ)
		if !allowed[typ] {
			t.Errorf("%s: type %q is not documented for the command: %s", command, typ, line)
		}
		keys := s.keys[typ]
		if typ == "summary" {
			keys = s.summary[command]
		}
		if keys == nil {
			t.Errorf("%s: type %q is not documented: %s", command, typ, line)
			continue
		}
		for k := range rec {
			if !keys[k] {
				t.Errorf("%s: key %q is not documented for type %q: %s", command, k, typ, line)
			}
		}
		if typ == "summary" || typ == "fatal" {
			var c string
			if err := json.Unmarshal(rec["command"], &c); err != nil || c != command {
				t.Errorf("%s: \"command\" %s in %s", command, rec["command"], line)
			}
		}
	}
	return types
}

// TestJSONSchema runs every command with --json, once successfully and at
// least once failing, on real files, and checks each line of its output
// against docs/json.md: one JSON object with a documented "type" that the
// command may write, only documented keys, a summary last after a run to
// the end and a fatal record last after an error that stopped it.
func TestJSONSchema(t *testing.T) {
	s := readJSONSchema(t)
	dir := testutil.TempDir(t)
	p := func(rel string) string { return filepath.Join(dir, rel) }
	testutil.RequireXattrFS(t, dir)
	// A tree of the caller's own files, without caps, for any user.
	for _, rel := range []string{"tree/etc/passwd", "tree/usr/bin/tool", "plain"} {
		if err := os.MkdirAll(filepath.Dir(p(rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, p(rel))
	}
	const v3 = "0x0100000300200000000000000000000000000000a0860100" // cap_net_raw=ep, rootid 100000

	type tc struct {
		command string
		args    []string
		stdin   string
		ok      bool // exit 0 (audit: or 3) and a summary last; else exit != 0
		root    bool // needs root (skipped unprivileged)
	}
	cases := []tc{
		{"get", []string{"get", "-r", "-v", p("tree")}, "", true, false},
		{"get", []string{"get", p("missing"), p("plain")}, "", false, false},
		{"get", []string{"get", "--bogus"}, "", false, false},
		{"set", []string{"set", "--helper", "never", "cap_chown+p", p("missing")}, "", false, false},
		{"set", []string{"set", "not-a-cap", p("plain")}, "", false, false},
		{"set", []string{"set", "-v", "cap_chown+p", p("plain"), p("missing")}, "", false, false},
		{"remove", []string{"remove", "--helper", "never", p("missing")}, "", false, false},
		{"decode", []string{"decode", v3}, "", true, false},
		{"decode", []string{"decode", "0x01"}, "", false, false},
		{"encode", []string{"encode", "--rootid", "100000", "cap_net_raw+ep"}, "", true, false},
		{"encode", []string{"encode", "cap_bogus+ep"}, "", false, false},
		{"audit", []string{"audit", p("tree")}, "", true, false},
		{"audit", []string{"audit", p("missing")}, "", false, false},
		{"userns", []string{"userns", "self"}, "", true, false},
		{"userns", []string{"userns", "self", "2147483647"}, "", false, false},
		{"userns tree", []string{"userns", "tree"}, "", true, false},
		{"userns tree", []string{"userns", "tree", "extra"}, "", false, false},
		{"backup", []string{"backup", "-o", p("a.tar"), p("tree")}, "", true, false},
		{"backup", []string{"backup", "-n", p("tree")}, "", true, false},
		{"backup", []string{"backup", "-o", p("b.tar"), p("missing")}, "", false, false},
		{"list", []string{"list", p("a.tar")}, "", true, false},
		{"list", []string{"list", p("missing.tar")}, "", false, false},
		{"restore", []string{"restore", p("a.tar"), p("dest")}, "", true, false},
		{"restore", []string{"restore", "-n", p("a.tar"), p("dest-n")}, "", true, false},
		{"restore", []string{"restore", p("a.tar"), p("dest2"), "nope"}, "", false, false},
		{"restore", []string{"restore", p("missing.tar"), p("dest3")}, "", false, false},
		{"verify", []string{"verify", p("a.tar"), p("dest")}, "", true, false},
		{"verify", []string{"verify", p("a.tar"), p("dest2")}, "", false, false},
		{"verify", []string{"verify", p("missing.tar"), p("dest")}, "", false, false},
		{"normalize", []string{"normalize", "--uidmap", "0:100000:65536", "-o", p("n.tar"), p("a.tar")}, "", true, false},
		{"normalize", []string{"normalize", "--uidmap", "0:100000:65536", "-o", p("n2.tar"), p("missing.tar")}, "", false, false},
		{"shift", []string{"shift", "--from", "0:100000:65536", "--to", "0:200000:65536", p("missing")}, "", false, false},

		// As root: caps, maps and owners of a container's range.
		{"set", []string{"set", "--rootid", "100000", "cap_net_raw+ep", p("root/f")}, "", true, true},
		{"set", []string{"set", "-v", "--rootid", "100000", "cap_net_raw+ep", p("root/f")}, "", true, true},
		{"get", []string{"get", "-n", p("root/f"), p("root/g")}, "", true, true},
		{"audit", []string{"audit", "--uidmap", "0:100000:65536", p("root")}, "", true, true},
		{"backup", []string{"backup", "--uidmap", "0:100000:65536", "-o", p("r.tar"), p("root")}, "", true, true},
		{"list", []string{"list", "--source-uidmap", "0:100000:65536", "--uidmap", "0:200000:65536", p("r.tar")}, "", true, true},
		{"restore", []string{"restore", "--uidmap", "0:200000:65536", p("r.tar"), p("rdest")}, "", true, true},
		{"verify", []string{"verify", "--uidmap", "0:200000:65536", p("r.tar"), p("rdest")}, "", true, true},
		{"restore", []string{"restore", p("r.tar"), p("rdest2")}, "", false, true},
		{"normalize", []string{"normalize", "--uidmap", "0:100000:65536", "-o", p("rn.tar"), p("r.tar")}, "", true, true},
		{"shift", []string{"shift", "--dry-run", "--from", "0:200000:65536", "--to", "0:300000:65536", p("rdest")}, "", true, true},
		{"shift", []string{"shift", "--from", "0:200000:65536", "--to", "0:300000:65536", p("rdest")}, "", true, true},
		// A host-scoped cap in the container's tree: warnings.
		{"backup", []string{"backup", "--uidmap", "0:100000:65536", "--foreign-caps", "skip", "-o", p("w.tar"), p("host")}, "", true, true},
		{"backup", []string{"backup", "--uidmap", "0:100000:65536", "--foreign-caps", "host", "-o", p("w2.tar"), p("host")}, "", true, true},
		{"restore", []string{"restore", "--uidmap", "0:200000:65536", "--foreign-caps", "skip", p("w2.tar"), p("wdest")}, "", true, true},
		{"backup", []string{"backup", "--uidmap", "0:100000:65536", "-o", p("w3.tar"), p("host")}, "", false, true},
		{"remove", []string{"remove", p("root/f")}, "", true, true},
		{"remove", []string{"remove", p("root/f")}, "", false, true},
	}
	if testutil.IsRoot() {
		if err := os.MkdirAll(p("root"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, rel := range []string{"root", "root/f", "root/g"} {
			if rel != "root" {
				writeFile(t, p(rel))
			}
			if err := os.Chown(p(rel), 100000, 100000); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(p("host"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, p("host/h"))
		for _, rel := range []string{"host", "host/h"} {
			if err := os.Chown(p(rel), 100000, 100000); err != nil {
				t.Fatal(err)
			}
		}
		if err := unix.Setxattr(p("host/h"), "security.capability", []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0); err != nil {
			t.Fatal(err)
		}
		if err := unix.Setxattr(p("root/g"), "security.capability", []byte{1, 0, 0, 3, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa0, 0x86, 0x01, 0}, 0); err != nil {
			t.Fatal(err)
		}
	}

	seen, seenType := map[string]bool{}, map[string]bool{}
	for _, c := range cases {
		name := strings.Join(c.args, " ")
		if c.root && !testutil.IsRoot() {
			t.Logf("skipped unprivileged (needs root): %s", name)
			continue
		}
		r := nscap(t, c.stdin, append([]string{"--json"}, c.args...)...)
		out := strings.ReplaceAll(r.Stdout, dir, "$DIR")
		types := s.check(t, c.command, r.Stdout)
		seen[c.command] = true
		for _, typ := range types {
			seenType[typ] = true
		}
		if len(types) == 0 {
			t.Errorf("nscap --json %s: no records (exit %d, stderr %q)", name, r.Code, r.Stderr)
			continue
		}
		last := types[len(types)-1]
		switch {
		case c.ok && (r.Code == ExitOK || (c.command == "audit" && r.Code == ExitFindings)):
			if last != "summary" {
				t.Errorf("nscap --json %s: exit %d, last record %q, want a summary:\n%s", name, r.Code, last, out)
			}
		case c.ok:
			t.Errorf("nscap --json %s: exit %d, want 0:\n%s%s", name, r.Code, out, r.Stderr)
		case r.Code == ExitOK:
			t.Errorf("nscap --json %s: exit 0, want a failure:\n%s", name, out)
		case last != "summary" && last != "fatal":
			t.Errorf("nscap --json %s: exit %d, last record %q, want a summary or a fatal record:\n%s", name, r.Code, last, out)
		case last == "summary" && !slices.ContainsFunc(types, func(t string) bool { return t == "error" || t == "difference" }):
			t.Errorf("nscap --json %s: exit %d with a summary but no error record:\n%s", name, r.Code, out)
		case last == "fatal" && slices.Index(types, "fatal") != len(types)-1:
			t.Errorf("nscap --json %s: records after the fatal one:\n%s", name, out)
		}
		if last == "fatal" {
			var f fatalRecord
			if err := json.Unmarshal([]byte(lastLine(r.Stdout)), &f); err != nil || f.ExitCode != int(r.Code) || f.Message == "" {
				t.Errorf("nscap --json %s: exit %d, fatal record %s", name, r.Code, lastLine(r.Stdout))
			}
		}
		if testing.Verbose() {
			t.Logf("nscap --json %s: exit %d\n%s", name, r.Code, out)
		}
	}
	for c := range s.records {
		if !seen[c] {
			t.Errorf("command %q of docs/json.md was not run", c)
		}
	}
	// As root every documented record type is written at least once.
	if testutil.IsRoot() {
		for typ := range s.keys {
			if !seenType[typ] {
				t.Errorf("record type %q of docs/json.md was never written", typ)
			}
		}
	}
	// The fatal record also comes when no command was recognised.
	r := nscap(t, "", "--json", "nosuchcommand")
	var f fatalRecord
	if err := json.Unmarshal([]byte(r.Stdout), &f); err != nil || f.Type != "fatal" || f.Command != "" || f.ExitCode != int(ExitUsage) || r.Code != ExitUsage {
		t.Errorf("nscap --json nosuchcommand = %+v, want one fatal record, exit 2", r)
	}
}

// lastLine returns the last line of s, without its newline.
func lastLine(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}
