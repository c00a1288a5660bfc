package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

const exitStatusCommon = `EXIT STATUS
  0  success
  1  an operation failed (the other paths were still processed)
  2  usage error: bad flags or arguments, nothing was done`

// newRootCmd returns the root command with the global flags bound to
// f.Global, without subcommands.
func newRootCmd(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "nscap <command> [flags]",
		Short: "Namespaced Linux file capabilities",
		Long: `nscap reads, writes, decodes and encodes Linux file capabilities (the
security.capability extended attribute), including the revision-3 form whose
rootid ties the capabilities to one user namespace.

Output follows getcap and setcap where they overlap. With --json every
command writes JSON Lines on stdout: one object per record, snake_case fields,
a "type" in each, a "summary" record last, or a "fatal" record for the error
that stopped the command (docs/json.md).
Errors go to stderr as "nscap: <what> <path>: <reason>".

` + exitStatusCommon + `
  3  audit found findings at or above --fail-on`,
		Version:       f.Version,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetVersionTemplate("nscap {{.Version}}\n")
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	root.SetIn(f.IO.In)

	pf := root.PersistentFlags()
	pf.BoolVar(&f.Global.JSON, "json", false, "write JSON Lines on stdout (one object per record)")
	pf.BoolVarP(&f.Global.Quiet, "quiet", "q", false, "print no progress and no informational messages")
	pf.BoolVar(&f.Global.NoProgress, "no-progress", false, "do not draw progress on stderr")
	// Our own --version without the -v shorthand cobra would add: -v
	// belongs to the subcommands (get -v, set -v, as in getcap/setcap).
	root.Flags().Bool("version", false, "print the version and exit")

	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &FlagError{Err: err}
	})
	return root
}

// NewRootCmd returns the nscap command tree.
func NewRootCmd(f *Factory) *cobra.Command {
	root := newRootCmd(f)
	root.AddCommand(
		newGetCmd(f, nil),
		newBackupCmd(f, nil),
		newSetCmd(f, nil),
		newRemoveCmd(f, nil),
		newDecodeCmd(f, nil),
		newEncodeCmd(f, nil),
		newAuditCmd(f, nil),
		newUsernsCmd(f, nil),
		newRestoreCmd(f, nil),
		newVerifyCmd(f, nil),
		newShiftCmd(f, nil),
		newNormalizeCmd(f, nil),
		newListCmd(f, nil),
	)
	registerCompletions(root)
	return root
}

// Main runs nscap with args (without the program name) on the given
// streams and returns the exit status. It prints the error, if any, on
// ios.ErrOut.
func Main(ctx context.Context, args []string, ios *IOStreams) ExitCode {
	ios = inUserWords(ios)
	f := NewFactory(ios)
	return run(ctx, NewRootCmd(f), args, ios)
}

// run executes root with args and maps its error to an exit status.
func run(ctx context.Context, root *cobra.Command, args []string, ios *IOStreams) ExitCode {
	if args == nil {
		args = []string{} // cobra would read os.Args
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	code := exitCodeFor(err)
	var ee *exitError
	switch {
	case errors.Is(err, errSilent), errors.As(err, &ee):
		// Already reported.
	case code == ExitUsage:
		// One line for the error and one pointing to the help, not the
		// whole usage (which buries the error).
		fmt.Fprintf(ios.ErrOut, "nscap: %s\n", strings.TrimPrefix(usageMessage(err), "nscap: "))
		path := "nscap"
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(ios.ErrOut, "Run '%s --help' for usage.\n", path)
	default:
		fmt.Fprintf(ios.ErrOut, "nscap: %s\n", strings.TrimPrefix(err.Error(), "nscap: "))
	}
	if wantJSON(root, args) {
		writeFatal(ios, cmd, err, code)
	}
	return code
}

// wantJSON says whether --json was given: parsed, or on the command line
// of a usage error that stopped the parsing before it.
func wantJSON(root *cobra.Command, args []string) bool {
	if f := root.PersistentFlags().Lookup("json"); f != nil && f.Value.String() == "true" {
		return true
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--json" || a == "--json=true" {
			return true
		}
	}
	return false
}

// writeFatal writes the error that ended the command as a "fatal" record
// on stdout (its message also went to stderr), unless its messages were
// already written as records (errSilent, exitError).
func writeFatal(ios *IOStreams, cmd *cobra.Command, err error, code ExitCode) {
	var ee *exitError
	if errors.Is(err, errSilent) || errors.As(err, &ee) {
		return
	}
	rec := fatalRecord{Type: recFatal, Message: strings.TrimPrefix(err.Error(), "nscap: "), ExitCode: int(code)}
	if code == ExitUsage {
		rec.Message = strings.TrimPrefix(usageMessage(err), "nscap: ")
	}
	rec.Message = jsonText(rec.Message)
	if cmd != nil && cmd.HasParent() {
		rec.Command = strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
	}
	_ = writeJSON(ios.Out, rec)
}

// exactArgs, minArgs and rangeArgs are cobra argument validators that
// return a *FlagError, so that a wrong argument count is a usage error.
func minArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < n {
			return flagErrorf("missing %s", what)
		}
		return nil
	}
}

func rangeArgs(lo, hi int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) < lo:
			return flagErrorf("missing %s", what)
		case len(args) > hi:
			return flagErrorf("too many arguments: %q", args[hi:])
		}
		return nil
	}
}
