// Package restorer is the engine behind backup.Restore, backup.Verify and
// backup.List, split by concern:
//
//   - restore_linux.go: the reading loop, one member after another;
//   - schedule.go: which worker writes a small file and when the reader
//     waits (pure, unit-tested without root); bufpool.go: their buffers;
//   - worker_linux.go and write_linux.go: the writers per member type;
//   - meta_linux.go: the metadata of a member, translated, and applied
//     through a descriptor of the inode;
//   - extract_linux.go: the destination, every path resolved beneath it;
//   - staging_linux.go and state_linux.go: the staging directory and the
//     state file that let a killed restore be cleaned up;
//   - restore_translate.go: the target maps and the xattr policy;
//   - verify_linux.go, list_linux.go: comparing a tree with an archive,
//     listing an archive.
package restorer
