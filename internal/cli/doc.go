// Package cli implements the nscap command line: the cobra commands, the
// IO streams they write to, and the mapping from errors to exit codes.
//
// Each command lives in its own file with an options struct, a
// constructor newXxxCmd(f, runF) that only parses and validates flags, and
// a runXxx(ctx, opts) function holding the behaviour. cmd/nscap only calls
// [Main].
package cli
