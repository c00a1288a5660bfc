package cli

import (
	"errors"
	"fmt"
	"strings"
)

// ExitCode is the exit status of nscap.
type ExitCode int

// Exit statuses. Every command documents which it uses in the EXIT STATUS
// section of its help.
const (
	ExitOK       ExitCode = 0 // success
	ExitError    ExitCode = 1 // an operation failed (the others still ran)
	ExitUsage    ExitCode = 2 // bad flags or arguments; nothing was done
	ExitFindings ExitCode = 3 // audit found findings at or above --fail-on

	// ExitPartial is returned when some of the items of a command failed
	// while the others succeeded; it is the same status as ExitError.
	ExitPartial = ExitError
)

// FlagError is a usage error: bad flags, bad arguments, or flags that
// exclude each other. Main prints it with the command's usage and exits
// with [ExitUsage].
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *FlagError) Unwrap() error { return e.Err }

// flagErrorf returns a *FlagError with a formatted message.
func flagErrorf(format string, args ...any) error {
	return &FlagError{Err: fmt.Errorf(format, args...)}
}

// errSilent reports a failure whose messages were already printed (per-item
// errors): Main exits with [ExitError] without printing anything more.
var errSilent = errors.New("silent error")

// exitError carries an explicit exit code (for example [ExitFindings]),
// after its messages were printed.
type exitError struct{ code ExitCode }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// exitCodeFor maps the error a command returned to an exit status.
func exitCodeFor(err error) ExitCode {
	var fe *FlagError
	var ee *exitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &fe), isCobraUsageError(err):
		return ExitUsage
	case errors.As(err, &ee):
		return ee.code
	default:
		return ExitError
	}
}

// isCobraUsageError recognises the usage errors cobra makes itself, which
// are plain errors: unknown commands (flag errors are converted to
// *FlagError by the root command's flag error function).
func isCobraUsageError(err error) bool {
	return strings.HasPrefix(err.Error(), "unknown command ")
}
