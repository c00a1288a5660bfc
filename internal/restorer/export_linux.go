package restorer

import "github.com/nscap/nscap/internal/jobstate"

// What the tests of package backup, which drive the restorer through the
// public API, measure it by: its limits, its temporary names and its state
// file. Not for other use.

// Limits of the parallel writer and of the hole finder.
const (
	SmallFile  = restoreSmallFile
	Inflight   = restoreInflight
	BatchBytes = restoreBatchBytes
	HoleBlock  = holeBlock
)

// Names the restorer gives what it creates.
const (
	TmpPrefix   = tmpPrefix
	StateHeader = stateHeader
)

// IsStagingName reports whether name is the name of a staging directory.
func IsStagingName(name string) bool { return isStagingName(name) }

// StagingName returns a new staging directory name.
func StagingName() string { return stagingName() }

// DestID returns the identity of the destination dir, as its state file
// records it.
func DestID(dir string) (jobstate.TreeID, error) {
	d, err := openDest(dir, false)
	if err != nil {
		return jobstate.TreeID{}, err
	}
	defer d.Close()
	return d.identify()
}
