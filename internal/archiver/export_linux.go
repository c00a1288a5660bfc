package archiver

// What the tests of package backup, which drive the archiver through the
// public API, measure it by: the sizes at which it changes how it reads a
// file. Not for other use.
const (
	SmallFile   = smallFile
	StreamChunk = streamChunk
)
