package cli

import (
	"context"
	"errors"
	"io/fs"
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
		{"unknown flag", []string{"get", "--frob", "x"}, ExitUsage, "nscap: unknown flag: --frob\n\nUsage:", ""},
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
