// Package ui renders progress for the nscap command line.
//
// Engines (fcaps, backup) never print: they report events through
// callbacks, and the command picks a printer from this package at the top
// of its run function. Printers here write only to the writer they are
// given, normally stderr, so stdout keeps carrying results only.
package ui
