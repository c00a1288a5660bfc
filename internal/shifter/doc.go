// Package shifter is the engine behind backup.Shift: it moves the owners,
// POSIX ACL ids and capability rootids of a tree from one id range to
// another in place:
//
//   - shift_linux.go: the parallel walk over the directories;
//   - inode_linux.go: the plan of one inode (its new owner, ACLs, cap)
//     and its change, through a descriptor of the inode;
//   - shift_journal_linux.go and replay_linux.go: the journal that covers
//     the window between a chown and the caps and setuid bits it clears,
//     and its replay by the next run;
//   - shift.go: the options, the reporter and the pure moves of ids.
package shifter
