package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/pflag"
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

// FlagError is a usage error: bad flags, bad arguments, flags that exclude
// each other, or flag values that do not fit together (a --uidmap that does
// not map --ns-uid). Main prints it with a pointer to the command's help
// and exits with [ExitUsage].
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

// usageMessage returns the message Main prints for the usage error err.
// The flag library's "invalid argument" errors are reworded to name the
// flag and the rule broken, without the strconv internals:
// invalid --rootid "abc": not a number.
func usageMessage(err error) string {
	var ive *pflag.InvalidValueError
	if !errors.As(err, &ive) || ive.GetFlag() == nil {
		return err.Error()
	}
	why := "not valid"
	if cause := errors.Unwrap(ive); cause != nil {
		why = cause.Error()
	}
	if ne := (*strconv.NumError)(nil); errors.As(err, &ne) {
		switch {
		case ne.Func == "ParseBool":
			why = "want true or false"
		case errors.Is(ne.Err, strconv.ErrRange):
			why = "out of range"
		default:
			why = "not a number"
		}
	}
	return fmt.Sprintf("invalid --%s %q: %s", ive.GetFlag().Name, elide(ive.GetValue()), why)
}

// maxEcho is how much of an input (a flag value, an id map) an error
// message repeats.
const maxEcho = 64

// elide shortens s to about maxEcho bytes for an error message, saying how
// much was left out: a 341-extent --uidmap is not echoed whole.
func elide(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	cut := maxEcho
	if i := strings.LastIndexByte(s[:maxEcho], ','); i > maxEcho/2 {
		cut = i // end on an extent boundary
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes more)", s[:cut], len(s)-cut)
}

// elidedError is err with every occurrence of a long input in its message
// shortened by [elide]; errors.Is and errors.As still see err.
type elidedError struct {
	err   error
	input string
}

func (e *elidedError) Error() string {
	return strings.ReplaceAll(e.err.Error(), e.input, elide(e.input))
}

func (e *elidedError) Unwrap() error { return e.err }

// elideInput returns err with input shortened where its message repeats
// it; err itself when input is short.
func elideInput(err error, input string) error {
	if err == nil || len(input) <= maxEcho {
		return err
	}
	return &elidedError{err: err, input: input}
}
