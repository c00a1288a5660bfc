package testutil

import "testing"

// NoErr fails the test at once when a setup step returns an error.
func NoErr(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// WriteOK returns a function that fails the test at once when the write
// whose results it is given failed: testutil.WriteOK(t)(w.Write(b)).
func WriteOK(tb testing.TB) func(int, error) {
	return func(_ int, err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
}
