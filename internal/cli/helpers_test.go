package cli

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// parseCmd runs the command built by newCmd under a root command with argv
// (split on spaces), capturing the options its RunE hands to runF.
func parseCmd[T any](tb testing.TB, newCmd func(*Factory, func(*T) error) *cobra.Command, argv string) (*T, error) {
	tb.Helper()
	ios, _, _, _ := Test()
	f := NewFactory(ios)
	var got *T
	sub := newCmd(f, func(o *T) error { got = o; return nil })
	root := newRootCmd(f)
	root.AddCommand(sub)
	root.SetArgs(append([]string{sub.Name()}, strings.Fields(argv)...))
	_, err := root.ExecuteC()
	return got, err
}

// result is what one nscap run produced.
type result struct {
	Code   ExitCode
	Stdout string
	Stderr string
}

// nscap runs Main in-process with args and stdin.
func nscap(tb testing.TB, stdin string, args ...string) result {
	tb.Helper()
	ios, in, out, errOut := Test()
	in.WriteString(stdin)
	code := Main(context.Background(), args, ios)
	return result{Code: code, Stdout: out.String(), Stderr: errOut.String()}
}

// errString returns err's message, or "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// golden compares got with testdata/NAME.golden, rewriting it with -update.
func golden(tb testing.TB, name, got string) {
	tb.Helper()
	p := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		tb.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		tb.Errorf("%s mismatch (-want +got):\n%s", p, diff)
	}
}

// run runs a program and returns its stdout, failing the test on error.
func runTool(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%s %q: %v: %s", name, args, err, stderr.String())
	}
	return stdout.String()
}

// writeFile creates a regular file with some content.
func writeFile(tb testing.TB, path string) string {
	tb.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/true\n"), 0o755); err != nil {
		tb.Fatal(err)
	}
	return path
}

// firstLine returns the first line of s (the first record of --json
// output, before the summary).
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
