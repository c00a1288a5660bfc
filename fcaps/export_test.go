package fcaps

// SetXattrat forces Scan to use (or not) getxattrat(2) and returns a
// function restoring the probe. Not for parallel tests.
func SetXattrat(use bool) (restore func()) {
	old := hasXattrat
	hasXattrat = func() bool { return use && old() }
	return func() { hasXattrat = old }
}
