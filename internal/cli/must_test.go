package cli

import "testing"

// mustOK fails the test at once when a setup step returns an error.
func mustOK(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// mustWrite returns a function that fails the test at once when the
// write whose results it is given failed: mustWrite(t)(w.Write(b)).
func mustWrite(tb testing.TB) func(int, error) {
	return func(_ int, err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
}
