package archive

import (
	"fmt"
	"strings"
	"time"
)

// Action is what happened to one item of a backup, a restore or a
// verify.
type Action string

// Actions reported through [Reporter.CompleteItem].
const (
	ActionArchived Action = "archived" // written with its content and metadata
	ActionLinked   Action = "hardlink" // written as a hard link to an earlier entry
	ActionSkipped  Action = "skipped"  // not archivable (a socket); see Reporter.Warn
	ActionRestored Action = "restored" // written under its final name
	ActionKept     Action = "kept"     // an existing entry kept by the overwrite policy
	ActionVerified Action = "verified" // compared with the tree (differences go to the verify's callback)
)

// ItemStats describes one archived item.
type ItemStats struct {
	Size int64 // content bytes written
	Caps bool  // a security.capability was stored
}

// Reporter receives the events of a backup, a restore or a verify: the
// items done (for progress), the warnings and the per-item errors. The
// totals are what the run returns. Implementations MUST be safe for
// concurrent use: a restore calls them from several workers. Paths are
// archive names ("./usr/bin/ping") for a backup, paths under the
// destination for a restore or a verify.
type Reporter interface {
	// StartFile is called when work on an entry starts (a backup's
	// writer starts on it).
	StartFile(path string)
	// CompleteItem is called when an entry is done: archived, linked,
	// skipped, restored, kept or verified.
	CompleteItem(path string, action Action, stats ItemStats)
	// Warn reports something the user must know that does not fail the
	// run: a skipped socket, a foreign cap dropped under
	// [ForeignCapsSkip], a host-scoped cap restored verbatim, xattrs of a
	// hardlink member that differ from its target's.
	Warn(path string, err error)
	// Error reports an item that could not be handled faithfully: left
	// out of an archive (or, for a file that shrank while read, padded),
	// not restored. Returning nil continues the run, which then counts
	// the failure (a backup ends with an [*IncompleteError] listing every
	// such item); returning an error stops it with that error.
	Error(path string, err error) error
}

// NopReporter is a [Reporter] that ignores every event (Error returns
// nil). Embed it to implement only some events.
type NopReporter struct{}

// StartFile does nothing.
func (NopReporter) StartFile(string) {}

// CompleteItem does nothing.
func (NopReporter) CompleteItem(string, Action, ItemStats) {}

// Warn does nothing.
func (NopReporter) Warn(string, error) {}

// Error returns nil: continue.
func (NopReporter) Error(string, error) error { return nil }

// Summary totals a backup.
type Summary struct {
	Entries   int64         `json:"entries"`      // tar members written (the global header excluded)
	Files     int64         `json:"files"`        // regular files with content
	Dirs      int64         `json:"dirs"`         // directories
	Symlinks  int64         `json:"symlinks"`     // symbolic links
	Hardlinks int64         `json:"hardlinks"`    // hard-link members
	Specials  int64         `json:"specials"`     // fifos and devices
	Bytes     int64         `json:"bytes"`        // file content bytes
	Written   int64         `json:"written"`      // bytes of the (compressed) archive stream
	Caps      int64         `json:"caps"`         // security.capability values stored
	Xattrs    int64         `json:"xattrs"`       // xattrs stored, caps included
	Sparse    int64         `json:"sparse"`       // regular files archived with their holes
	Skipped   int64         `json:"skipped"`      // sockets and dropped foreign caps
	Excluded  int64         `json:"excluded"`     // entries left out by Options.Exclude (a directory counts once)
	Errors    int64         `json:"errors"`       // items reported through Reporter.Error
	Duration  time.Duration `json:"duration_ns"`  // wall time of the backup
	Verified  time.Duration `json:"verify_ns"`    // wall time of Options.Verify (0: not verified)
	Workers   int           `json:"workers"`      // read-ahead goroutines used
	ReadAhead int64         `json:"read_ahead_b"` // bytes read by workers ahead of the writer
}

// MBps returns the content throughput in MB/s (10^6 bytes per second).
func (s Summary) MBps() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Bytes) / 1e6 / s.Duration.Seconds()
}

// ItemError is one item that could not be archived faithfully.
type ItemError struct {
	Path string // archive name
	Err  error
}

// Error implements error.
func (e ItemError) Error() string { return e.Path + ": " + e.Err.Error() }

// String is Error (for Listed).
func (e ItemError) String() string { return e.Error() }

// Unwrap returns the cause.
func (e ItemError) Unwrap() error { return e.Err }

// IncompleteError is returned by a backup in which some items failed while
// the [Reporter] let it continue: the archive is not faithful, so
// backup.Archiver.WriteFile leaves no file. It unwraps to every item's error,
// so errors.Is(err, ErrForeignCaps) tells whether a foreign cap was among
// the causes.
type IncompleteError struct {
	Items []ItemError
}

// maxListed bounds the paths an IncompleteError prints.
const maxListed = 20

// Error lists the failed items (the first 20).
func (e *IncompleteError) Error() string {
	return Listed(fmt.Sprintf("backup incomplete: %d item(s) failed:", len(e.Items)), e.Items)
}

// Listed returns head followed by the first maxListed of items, one a
// line, and how many more there are.
func Listed[T fmt.Stringer](head string, items []T) string {
	var b strings.Builder
	b.WriteString(head)
	for i, it := range items {
		if i == maxListed {
			fmt.Fprintf(&b, "\n  ... and %d more", len(items)-maxListed)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(it.String())
	}
	return b.String()
}

// Unwrap returns the items' errors.
func (e *IncompleteError) Unwrap() []error {
	errs := make([]error, len(e.Items))
	for i, it := range e.Items {
		errs[i] = it.Err
	}
	return errs
}

// Paths returns the archive names of the failed items.
func (e *IncompleteError) Paths() []string {
	p := make([]string, len(e.Items))
	for i, it := range e.Items {
		p[i] = it.Path
	}
	return p
}
