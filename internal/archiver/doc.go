// Package archiver is the backup engine behind backup.Archiver: a walk of
// the tree by directory descriptors (walk_linux.go), workers that stat,
// read the xattrs and read ahead the small files of each entry
// (entry_linux.go), and the single tar writer that emits the members in
// walk order (writer_linux.go), sparse files as GNU tar's PAX 1.0 sparse
// members (sparse_linux.go).
package archiver
