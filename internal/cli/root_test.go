package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExitCodeFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want ExitCode
	}{
		{"nil", nil, ExitOK},
		{"flag error", flagErrorf("bad"), ExitUsage},
		{"wrapped flag error", errors.Join(errors.New("x"), &FlagError{Err: errors.New("y")}), ExitUsage},
		{"unknown command", errors.New(`unknown command "x" for "nscap"`), ExitUsage},
		{"silent", errSilent, ExitError},
		{"findings", &exitError{code: ExitFindings}, ExitFindings},
		{"path error", &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist}, ExitError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := exitCodeFor(tc.err); got != tc.want {
				t.Errorf("exitCodeFor(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

func TestMainUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantCode   ExitCode
		wantStderr string // prefix
		wantStdout string // prefix
	}{
		{"no args prints help", nil, ExitOK, "", "nscap reads, writes"},
		{"unknown command", []string{"frob"}, ExitUsage, `nscap: unknown command "frob" for "nscap"`, ""},
		{"unknown flag", []string{"get", "--frob", "x"}, ExitUsage, "nscap: unknown flag: --frob\nRun 'nscap get --help' for usage.\n", ""},
		{"missing path", []string{"get"}, ExitUsage, "nscap: missing PATH\n", ""},
		{"version", []string{"--version"}, ExitOK, "", "nscap dev\n"},
		{"help has exit status", []string{"get", "--help"}, ExitOK, "", "Print the file capabilities"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := nscap(t, "", tc.args...)
			if r.Code != tc.wantCode {
				t.Errorf("nscap %q: exit %d, want %d (stderr %q)", tc.args, r.Code, tc.wantCode, r.Stderr)
			}
			if !strings.HasPrefix(r.Stderr, tc.wantStderr) {
				t.Errorf("nscap %q: stderr %q, want prefix %q", tc.args, r.Stderr, tc.wantStderr)
			}
			if !strings.HasPrefix(r.Stdout, tc.wantStdout) {
				t.Errorf("nscap %q: stdout %q, want prefix %q", tc.args, r.Stdout, tc.wantStdout)
			}
		})
	}
}

// Every command's help ends with an EXIT STATUS section (style.md 2.5).
func TestHelpExitStatus(t *testing.T) {
	t.Parallel()
	ios, _, _, _ := Test()
	root := NewRootCmd(NewFactory(ios))
	for _, c := range append(root.Commands(), root) {
		if c.Name() == "completion" || c.Name() == "help" {
			continue
		}
		if !strings.Contains(c.Long, "\nEXIT STATUS\n") {
			t.Errorf("nscap %s: Long help has no EXIT STATUS section", c.Name())
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	if got := Version(); got == "" {
		t.Error("Version() is empty")
	}
	r := nscap(t, "", "--version")
	if diff := cmp.Diff(result{Stdout: "nscap " + Version() + "\n"}, r); diff != "" {
		t.Errorf("nscap --version mismatch (-want +got):\n%s", diff)
	}
}

func TestMainCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ios, _, _, errOut := Test()
	if code := Main(ctx, []string{"remove", "/nonexistent"}, ios); code != ExitError {
		t.Errorf("canceled Main = %d, want %d (stderr %q)", code, ExitError, errOut.String())
	}
}

// A usage error prints exactly two lines: the error, worded without the
// internals of the flag library, and where to find the help.
func TestUsageErrorMessages(t *testing.T) {
	t.Parallel()
	long := make([]string, 341)
	for i := range long {
		long[i] = fmt.Sprintf("%d:%d:5", i*10, 100000+i*10)
	}
	longMap := strings.Join(long, ",")
	cut := strings.LastIndexByte(longMap[:maxEcho], ',')
	elided := fmt.Sprintf("%s... (%d bytes more)", longMap[:cut], len(longMap)-cut)
	tests := []struct {
		args []string
		want string // first line
	}{
		{[]string{"get", "--frob", "x"}, "nscap: unknown flag: --frob"},
		{[]string{"get"}, "nscap: missing PATH"},
		{[]string{"set", "--rootid", "abc", "=", "f"}, `nscap: invalid --rootid "abc": not a number`},
		{[]string{"set", "--rootid", "1e3", "=", "f"}, `nscap: invalid --rootid "1e3": not a number`},
		{[]string{"set", "--pid", "x", "=", "f"}, `nscap: invalid --pid "x": not a number`},
		{[]string{"set", "--uidmap", "0:1:1", "--ns-uid", "4294967296", "=", "f"}, `nscap: invalid --ns-uid "4294967296": out of range`},
		{[]string{"set", "--uidmap", "0:1:1", "--ns-uid", "-3", "=", "f"}, `nscap: invalid --ns-uid "-3": not a number`},
		{[]string{"--json=maybe", "get", "f"}, `nscap: invalid --json "maybe": want true or false`},
		{[]string{"set", "--rootid", "-1", "=", "f"}, "nscap: --rootid -1: want a uid from 0 to 4294967294"},
		// --helper is one flag value on every command: one message.
		{[]string{"set", "--helper", "maybe", "=", "f"}, `nscap: invalid --helper "maybe": want auto, always or never`},
		{[]string{"remove", "--helper", "maybe", "f"}, `nscap: invalid --helper "maybe": want auto, always or never`},
		{[]string{"backup", "--helper", "maybe", "-o", "a", "r"}, `nscap: invalid --helper "maybe": want auto, always or never`},
		{[]string{"restore", "--helper", "maybe", "a", "d"}, `nscap: invalid --helper "maybe": want auto, always or never`},
		{[]string{"verify", "--helper", "maybe", "a", "d"}, `nscap: invalid --helper "maybe": want auto, always or never`},
		{[]string{"shift", "--helper", "maybe", "--from", "0:1:1", "--to", "0:2:1", "r"}, `nscap: invalid --helper "maybe": want auto, always or never`},
		// A map too long to repeat: its start, and how much was left out.
		{[]string{"set", "--uidmap", longMap, "=", "f"}, `nscap: --uidmap ` + elided + `: too many extents: extent 340 "3400:103400:5": at most 340 extents`},
		{[]string{"remove", "--uidmap", longMap, "f"}, `nscap: --uidmap ` + elided + `: too many extents: extent 340 "3400:103400:5": at most 340 extents`},
		// uid 0 (or --ns-uid U) not mapped by --uidmap: a usage error.
		{[]string{"set", "--uidmap", "1:100000:5", "cap_chown+p", "/nonexistent/f"}, "nscap: set: uid 0 in the user namespace of --uidmap 1:100000:5: namespace id 0 not mapped by 1:100000:5"},
		{[]string{"set", "--uidmap", "0:100000:65536", "--ns-uid", "65536", "cap_chown+p", "/nonexistent/f"}, "nscap: set: uid 65536 in the user namespace of --uidmap 0:100000:65536: namespace id 65536 not mapped by 0:100000:65536"},
		{[]string{"set", "--uidmap", strings.Join(long[1:300], ","), "cap_chown+p", "/nonexistent/f"}, "nscap: set: uid 0 in the user namespace of --uidmap " + elide(strings.Join(long[1:300], ",")) + ": namespace id 0 not mapped by " + elide(strings.Join(long[1:300], ","))},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " ")[:min(60, len(strings.Join(tc.args, " ")))], func(t *testing.T) {
			t.Parallel()
			r := nscap(t, "", tc.args...)
			cmd := "nscap"
			for _, a := range tc.args {
				if !strings.HasPrefix(a, "-") {
					cmd += " " + a
					break
				}
			}
			want := result{Code: ExitUsage, Stderr: tc.want + "\nRun '" + cmd + " --help' for usage.\n"}
			if diff := cmp.Diff(want, r); diff != "" {
				t.Errorf("nscap %.80q mismatch (-want +got):\n%s", tc.args, diff)
			}
		})
	}
}

func TestElide(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{strings.Repeat("a", maxEcho), strings.Repeat("a", maxEcho)},
		{strings.Repeat("a", maxEcho+1), strings.Repeat("a", maxEcho) + "... (1 bytes more)"},
		// Cut at the last comma in the second half, else at maxEcho.
		{strings.Repeat("a", 40) + "," + strings.Repeat("b", 40), strings.Repeat("a", 40) + "... (41 bytes more)"},
		{"a," + strings.Repeat("b", 80), "a," + strings.Repeat("b", maxEcho-2) + "... (18 bytes more)"},
		// Never in the middle of a UTF-8 sequence.
		{strings.Repeat("a", maxEcho-1) + "é" + "zz", strings.Repeat("a", maxEcho-1) + "... (4 bytes more)"},
	}
	for _, tc := range tests {
		if got := elide(tc.in); got != tc.want {
			t.Errorf("elide(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// No flag shows a sentinel as its default (--rootid N ... (default -1)).
func TestHelpNoSentinelDefault(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"set", "encode"} {
		r := nscap(t, "", cmd, "--help")
		if r.Code != ExitOK {
			t.Fatalf("nscap %s --help: exit %d", cmd, r.Code)
		}
		if strings.Contains(r.Stdout, "(default -1)") {
			t.Errorf("nscap %s --help shows (default -1):\n%s", cmd, r.Stdout)
		}
		if !strings.Contains(r.Stdout, "--rootid N ") {
			t.Errorf("nscap %s --help has no --rootid N:\n%s", cmd, r.Stdout)
		}
	}
}

// exitStatusSection parses the EXIT STATUS section of a help text into
// the text documented for each status.
func exitStatusSection(tb testing.TB, help string) map[ExitCode]string {
	tb.Helper()
	_, sec, ok := strings.Cut(help, "\nEXIT STATUS\n")
	if !ok {
		tb.Fatalf("no EXIT STATUS in %q", help)
	}
	if i := strings.Index(sec, "\n\n"); i >= 0 {
		sec = sec[:i]
	}
	m := map[ExitCode]string{}
	var cur ExitCode = -1
	for line := range strings.SplitSeq(sec, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && len(f[0]) == 1 && f[0][0] >= '0' && f[0][0] <= '9' {
			cur = ExitCode(f[0][0] - '0')
			line = strings.Join(f[1:], " ")
		}
		if cur < 0 {
			tb.Fatalf("EXIT STATUS line %q before any status", line)
		}
		m[cur] += " " + strings.Join(strings.Fields(line), " ")
	}
	return m
}

// Each EXIT STATUS section says what the command does: every case below
// runs, exits with the status it names, and that status's line in the
// help mentions it.
func TestHelpExitStatusTrue(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := writeFile(t, filepath.Join(dir, "f"))
	tests := []struct {
		args    []string
		stdin   string
		code    ExitCode
		mention string // in the help's line for code
	}{
		{[]string{"set", "cap_chown+ep cap_net_raw=i", f}, "", ExitError, "CAPS is not valid text"},
		{[]string{"set", "-", f}, "", ExitError, `"-" read none`},
		{[]string{"set", "-v", "cap_chown+ep", f}, "", ExitError, "a file differs"},
		{[]string{"set", "--pid", "2147483647", "cap_chown+ep", f}, "", ExitError, "--pid does not exist"},
		{[]string{"set", "--oci-config", filepath.Join(dir, "none.json"), "cap_chown+ep", f}, "", ExitError, "--oci-config cannot be read"},
		{[]string{"set", "--uidmap", "1:100000:5", "cap_chown+ep", f}, "", ExitUsage, "does not map uid 0"},
		{[]string{"set", "--uidmap", "0:100000:5", "--ns-uid", "5", "cap_chown+ep", f}, "", ExitUsage, "--ns-uid U"},
		{[]string{"set", "--rootid", "x", "=", f}, "", ExitUsage, "bad flags"},
		{[]string{"get", filepath.Join(dir, "none")}, "", ExitError, "could not be read"},
		{[]string{"get", "-v", f}, "", ExitOK, "without capabilities"},
		{[]string{"remove", f}, "", ExitError, "no capabilities to remove"},
		{[]string{"remove", "--pid", "2147483647", f}, "", ExitError, "--pid does not exist"},
		{[]string{"remove"}, "", ExitUsage, "bad flags or arguments"},
		{[]string{"decode", "0x01"}, "", ExitError, "malformed"},
		{[]string{"decode", "zz"}, "", ExitError, "not hex"},
		{[]string{"encode", "cap_chown"}, "", ExitError, "CAPS is not valid text"},
		{[]string{"encode", "-"}, "\n", ExitError, `"-" read no`},
		{[]string{"encode", "a", "b"}, "", ExitUsage, "usage error"},
		{[]string{"userns", "x"}, "", ExitUsage, "usage error"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			r := nscap(t, tc.stdin, tc.args...)
			if r.Code != tc.code {
				t.Errorf("nscap %q: exit %d, want %d (stderr %q)", tc.args, r.Code, tc.code, r.Stderr)
			}
			h := nscap(t, "", tc.args[0], "--help")
			sec := exitStatusSection(t, h.Stdout)
			if !strings.Contains(sec[tc.code], tc.mention) {
				t.Errorf("nscap %s --help: status %d says %q, want it to mention %q", tc.args[0], tc.code, sec[tc.code], tc.mention)
			}
			for code, text := range sec {
				if code != tc.code && strings.Contains(text, tc.mention) && tc.code != ExitOK {
					t.Errorf("nscap %s --help: status %d also says %q", tc.args[0], code, tc.mention)
				}
			}
		})
	}
}
