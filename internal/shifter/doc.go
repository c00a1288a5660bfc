// Package shifter is the engine behind backup.Shift: it moves the owners,
// POSIX ACL ids and capability rootids of a tree from one id range to
// another in place (shift_linux.go), with a journal that covers the
// window between a chown and the caps it clears (shift_journal_linux.go).
package shifter
