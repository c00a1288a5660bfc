package cli

import (
	"io"

	"github.com/nscap/nscap/backup"
)

// The --json interface is JSON Lines on stdout, documented in docs/json.md.
// Every record has a "type", one of the record types below; a field has
// the same name and meaning in every record that carries it. Fields may be
// added, never renamed.
const (
	recFile       = "file"       // get, set, remove: one path
	recCheck      = "check"      // set -v: one path compared with the caps wanted
	recValue      = "value"      // decode, encode: one security.capability value
	recFinding    = "finding"    // audit: one finding
	recNamespace  = "namespace"  // userns, userns tree: one user namespace
	recEntry      = "entry"      // list: one archive member
	recDifference = "difference" // verify: one difference between archive and tree
	recChange     = "change"     // shift: one inode changed
	recMember     = "member"     // normalize, restore --dry-run: one archive member
	recWarning    = "warning"    // a notice about one item; the command goes on
	recError      = "error"      // one item failed; the command goes on
	recSummary    = "summary"    // the last record of a command that ran to its end
	recFatal      = "fatal"      // the error that ended the command
)

// itemRecord is a "warning" or "error" record about one item (a path, or
// an archive member name).
type itemRecord struct {
	Type       string `json:"type"`
	PID        int    `json:"pid,omitempty"` // userns: the pid that failed
	Path       string `json:"path,omitempty"`
	PathBase64 string `json:"path_base64,omitempty"` // when Path is not valid UTF-8
	Message    string `json:"message"`
}

// writeItem writes a "warning" or "error" record.
func writeItem(w io.Writer, typ, path, msg string) error {
	return writeJSON(w, newItemRecord(typ, path, msg))
}

// newItemRecord returns the record of a warning or an error about path,
// its message in the user's words.
func newItemRecord(typ, path, msg string) itemRecord {
	return itemRecord{Type: typ, Path: path, PathBase64: pathBase64(path), Message: jsonText(msg)}
}

// summaryHead starts every "summary" record: the command it sums up.
type summaryHead struct {
	Type    string `json:"type"`    // "summary"
	Command string `json:"command"` // "get", "userns tree", ...
}

func newSummaryHead(command string) summaryHead {
	return summaryHead{Type: recSummary, Command: command}
}

// countSummary is the summary of the commands that only count their
// records: get, set, remove, decode, encode, userns, list, verify.
type countSummary struct {
	summaryHead
	Records int `json:"records"` // records written before the summary, errors and warnings included
	Errors  int `json:"errors"`  // "error" records
}

// fatalRecord is the error that ended a command, written by run when
// --json is given (the message also goes to stderr).
type fatalRecord struct {
	Type     string `json:"type"`    // "fatal"
	Command  string `json:"command"` // "" when no command was recognised
	Message  string `json:"message"`
	ExitCode int    `json:"exit_code"`
}

// archiveSummary is the summary of backup and restore: the keys they
// share mean the same in both, and both always write them.
type archiveSummary struct {
	summaryHead
	Archive  string `json:"archive"` // the archive written or read ("" for a backup --dry-run, "-" for stdin/stdout)
	Dest     string `json:"dest"`    // the tree read (backup) or written (restore)
	DryRun   bool   `json:"dry_run"`
	Entries  int64  `json:"entries"`  // members written or restored
	Files    int64  `json:"files"`    // regular files
	Dirs     int64  `json:"dirs"`     // directories
	Links    int64  `json:"links"`    // symlinks and hardlinks
	Specials int64  `json:"specials"` // fifos and devices
	Bytes    int64  `json:"bytes"`    // file content bytes
	Caps     int64  `json:"caps"`     // security.capability values stored or written
	Skipped  int64  `json:"skipped"`  // backup: sockets and dropped foreign caps; restore: entries kept by the overwrite policy
	Errors   int64  `json:"errors"`   // items that failed ("error" records)
	Warnings int64  `json:"warnings"` // "warning" records
}

// backupSummary is the summary record of backup.
type backupSummary struct {
	archiveSummary
	Symlinks   int64   `json:"symlinks"`
	Hardlinks  int64   `json:"hardlinks"`
	Written    int64   `json:"written"` // bytes of the (compressed) archive stream
	Xattrs     int64   `json:"xattrs"`  // xattrs stored, caps included
	Sparse     int64   `json:"sparse"`
	Excluded   int64   `json:"excluded"`
	DurationNS int64   `json:"duration_ns"`
	VerifyNS   int64   `json:"verify_ns"`
	Workers    int     `json:"workers"`
	ReadAheadB int64   `json:"read_ahead_b"`
	MBps       float64 `json:"mb_per_s"`
}

func newBackupSummary(s backup.Summary, archive, root string, dryRun bool, warnings int64) backupSummary {
	return backupSummary{
		archiveSummary: archiveSummary{
			summaryHead: newSummaryHead("backup"),
			Archive:     archive, Dest: root, DryRun: dryRun,
			Entries: s.Entries, Files: s.Files, Dirs: s.Dirs, Links: s.Symlinks + s.Hardlinks, Specials: s.Specials,
			Bytes: s.Bytes, Caps: s.Caps, Skipped: s.Skipped, Errors: s.Errors, Warnings: warnings,
		},
		Symlinks: s.Symlinks, Hardlinks: s.Hardlinks, Written: s.Written, Xattrs: s.Xattrs, Sparse: s.Sparse,
		Excluded: s.Excluded, DurationNS: int64(s.Duration), VerifyNS: int64(s.Verified), Workers: s.Workers,
		ReadAheadB: s.ReadAhead, MBps: s.MBps(),
	}
}

// restoreSummary is the summary record of restore.
type restoreSummary struct {
	archiveSummary
	XattrsSkipped map[string]int64 `json:"xattrs_skipped,omitempty"` // xattrs of the archive not restored, by name
}

func newRestoreSummary(s backup.RestoreSummary, archive, dest string, dryRun bool) restoreSummary {
	return restoreSummary{
		archiveSummary: archiveSummary{
			summaryHead: newSummaryHead("restore"),
			Archive:     archive, Dest: dest, DryRun: dryRun,
			Entries: s.Files + s.Dirs + s.Links + s.Others, Files: s.Files, Dirs: s.Dirs, Links: s.Links, Specials: s.Others,
			Bytes: s.Bytes, Caps: s.Caps, Skipped: s.Skipped, Errors: s.Failures, Warnings: s.Warnings,
		},
		XattrsSkipped: s.XattrsSkipped,
	}
}

// shiftSummary is the summary record of shift.
type shiftSummary struct {
	summaryHead
	Root     string `json:"root"`
	DryRun   bool   `json:"dry_run"`
	Entries  int64  `json:"entries"`  // inodes looked at
	Changed  int64  `json:"changed"`  // inodes changed (or to change, under --dry-run)
	Caps     int64  `json:"caps"`     // capabilities rewritten
	ACLs     int64  `json:"acls"`     // POSIX ACL xattrs rewritten
	Mounts   int64  `json:"mounts"`   // mount points left alone
	Replayed int64  `json:"replayed"` // inodes completed from the journal of an interrupted run
	Errors   int64  `json:"errors"`   // inodes or ids left as they were ("error" records)
	Warnings int64  `json:"warnings"`
}
