package restorer

import (
	"errors"
	"runtime"

	"github.com/nscap/nscap/internal/archive"

	"github.com/nscap/nscap/userns"
)

// ErrDirectNotEmpty is returned by [Restore] with [RestoreOptions.Direct]
// into a destination that holds files (other than the output of a killed
// direct restore into it, which it completes): files created under their
// final names would be mixed with what is there, and a killed restore
// would leave partial files among them. Nothing is written.
var ErrDirectNotEmpty = errors.New("the destination holds files: --direct restores only into an empty directory (without it, each file is written on an unnamed inode and linked in)")

// ErrHostScope is returned by [Restore] for an archive that records the
// source maps it was made with (its owners and caps are container-relative)
// when no target map is given: restoring it as is would turn
// container-scoped capabilities into host-scoped ones. Pass
// [RestoreOptions.HostScope] to do it anyway.
var ErrHostScope = errors.New("backup: archive is namespace-relative; restoring it without a target map would make its caps host-scoped")

// OverwritePolicy says what [Restore] does with an entry that already
// exists under the destination.
type OverwritePolicy string

// Overwrite policies.
const (
	// OverwriteAlways replaces every existing entry (the default): a
	// restore over a partial one completes it.
	OverwriteAlways OverwritePolicy = "always"
	// OverwriteIfChanged keeps an existing regular file whose size and
	// modification time match the archive's, and replaces the rest.
	OverwriteIfChanged OverwritePolicy = "if-changed"
	// OverwriteNever keeps every existing entry.
	OverwriteNever OverwritePolicy = "never"
)

// Actions of a restore, reported to [archive.Reporter.CompleteItem].
const (
	ActionRestored = archive.ActionRestored
	ActionKept     = archive.ActionKept
)

// RestoreSummary counts what a restore did.
type RestoreSummary struct {
	Files    int64 `json:"files"`    // regular files written
	Dirs     int64 `json:"dirs"`     // directories
	Links    int64 `json:"links"`    // symlinks and hardlinks
	Others   int64 `json:"others"`   // fifos and devices
	Skipped  int64 `json:"skipped"`  // entries kept by the overwrite policy
	Bytes    int64 `json:"bytes"`    // file content written
	Caps     int64 `json:"caps"`     // capability xattrs written
	Failures int64 `json:"failures"` // entries that failed (reported to Reporter.Error)
	Warnings int64 `json:"warnings"` // notices (reported to Reporter.Warn)
	// XattrsSkipped counts, by name, the xattrs of the archive left out
	// by [RestoreOptions.XattrsInclude].
	XattrsSkipped map[string]int64 `json:"xattrs_skipped,omitempty"`
}

// RestoreOptions tunes [Restore].
type RestoreOptions struct {
	// UIDMap and GIDMap are the maps of the target container: owners, ACL
	// ids and capability rootids in the archive are container ids and are
	// translated to host ids through them. Zero maps restore ids as stored.
	// GIDMap defaults to UIDMap.
	UIDMap, GIDMap userns.Map
	// SourceUIDMap and SourceGIDMap describe an archive of raw host ids
	// (made by tar on the host, or by nscap without maps): its ids are
	// first brought into the source container through them. They are
	// ignored when the archive records its own maps. SourceGIDMap defaults
	// to SourceUIDMap.
	SourceUIDMap, SourceGIDMap userns.Map
	// HostScope allows restoring a namespace-relative archive without a
	// target map (see [ErrHostScope]), and restores the caps the backup
	// kept host-scoped verbatim (as [ForeignCapsHost] does).
	HostScope bool
	// archive.ForeignCaps is the policy for caps the target cannot hold as
	// translated: those the backup kept host-scoped ([HostScopedComment])
	// and those whose rootid the target maps do not cover. Fail (the
	// default) restores the file without a host-scoped cap and fails the
	// entry of a foreign one, both counted as failures; skip restores the
	// file without the cap, host with the archive's value (host-scoped,
	// honoured outside the container), each with a warning.
	ForeignCaps archive.ForeignCaps
	// Paths limits the restore to these members (names as in the
	// archive, "./" and a leading "/" ignored), everything below those
	// that are directories, and the directories above them (their
	// metadata only), as tar -x NAME... does. A path that no member
	// matches makes Restore return a [*NotFoundError] after restoring
	// the others. nil restores every member.
	Paths []string
	// ShownUIDMap and ShownGIDMap are the target maps as the caller of a
	// rootless restore gave them, for messages (the helper's maps are
	// its own view); zero: UIDMap and GIDMap.
	ShownUIDMap, ShownGIDMap userns.Map
	// Overwrite is the policy for existing entries; default
	// [OverwriteAlways].
	Overwrite OverwritePolicy
	// Direct creates the small files of a restore into an empty dest
	// directly under their final names, instead of in the staging
	// directory that a restore into an empty dest otherwise fills and then
	// renames into place (see [Restore]): a restore killed meanwhile
	// leaves partly written files under their final names until a restore
	// into the same dest is run again (the restore's state says so and
	// [Verify] reports it). Off by default; it saves only the renames.
	Direct bool
	// StateDir is the directory where the restore keeps its state while
	// it runs (what a restore into the same dest needs to clean up after
	// it when it is killed), outside dest so that nothing planted in dest
	// passes for it. It must be the caller's and writable by no one
	// else; it is created (mode 0700) when missing. Empty means
	// /var/lib/nscap/restore for root and $XDG_STATE_HOME/nscap/restore
	// or ~/.local/state/nscap/restore otherwise (/var/tmp/nscap-restore-UID
	// for a user without a home it can write).
	StateDir string
	// Workers is the number of goroutines writing files; 0 means one per
	// CPU, at least 2 and at most 8.
	Workers int
	// XattrsInclude lists the glob patterns (path.Match) of the xattr
	// names restored besides POSIX ACLs and security.capability, which
	// are always restored, translated. nil means user.*, GNU tar's
	// default: trusted.* (overlayfs redirects, for one) and security.*
	// values (SELinux labels, IMA) of an archive are skipped unless asked
	// for, and counted in RestoreSummary.XattrsSkipped. []string{"*"}
	// restores every xattr.
	XattrsInclude []string
	// Sparse writes every regular file with holes where its data has
	// runs of zeros as long as a filesystem block (aligned in the file),
	// as GNU tar -S and restic --sparse do. Members stored sparse (GNU
	// sparse formats, as nscap backup and tar -S write them) get their
	// holes back whatever this says.
	Sparse bool
	// Reporter receives the events of the restore (see
	// [archive.Reporter]): every entry in place or kept; what the
	// restore did as the archive asked but must not do silently
	// (host-scoped caps restored verbatim under HostScope, xattrs of a
	// hardlink member that differ from its target's, ignored as GNU tar
	// and bsdtar ignore them) to Warn, not a failure; every entry that
	// cannot be restored to Error, with its path under the destination:
	// returning nil continues with the next entry, an error aborts the
	// restore with it. nil: none.
	Reporter archive.Reporter
}

// ApplyDefaults fills in the zero fields of o.
func (o *RestoreOptions) ApplyDefaults() {
	if o.GIDMap.IsZero() {
		o.GIDMap = o.UIDMap
	}
	if o.SourceGIDMap.IsZero() {
		o.SourceGIDMap = o.SourceUIDMap
	}
	if o.Overwrite == "" {
		o.Overwrite = OverwriteAlways
	}
	if o.Workers <= 0 {
		o.Workers = min(max(runtime.GOMAXPROCS(0), 2), 8)
	}
	if o.Reporter == nil {
		o.Reporter = archive.NopReporter{}
	}
}
