// Package shape holds the test that keeps the code readable in one
// sitting (issue 13): no non-test Go file over 500 lines, no non-test
// function over 80 lines. `go test ./internal/tools/shape -v` lists the
// largest files and functions.
package shape
