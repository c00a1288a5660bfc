package cli

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"

	"github.com/nscap/nscap/backup"
	"github.com/nscap/nscap/internal/ui"
)

// itemReporter renders the events of a backup, a restore or a verify
// (one [backup.Reporter] for the three): the entries done on the progress
// line, warnings and per-item errors on stderr, or as JSON Lines records
// on stdout with --json.
type itemReporter struct {
	io          *IOStreams
	verb        string // "backup", "restore", "verify": the word of the messages
	json, quiet bool
	progress    *ui.Progress
	// show turns a path of the engine into the one messages name (nil:
	// as given).
	show func(string) string
	// sizes adds the items' sizes to the progress line (a restore and a
	// verify count the bytes of the archive read instead).
	sizes bool

	mu       sync.Mutex
	warnings int64 // --json "warning" records, for the summary
	eperm    int   // items that failed with EPERM, for the hint
}

func (r *itemReporter) path(name string) string {
	if r.show == nil {
		return name
	}
	return r.show(name)
}

// StartFile shows nothing: the progress line counts finished items.
func (r *itemReporter) StartFile(string) {}

func (r *itemReporter) CompleteItem(_ string, _ backup.Action, st backup.ItemStats) {
	if r.sizes {
		r.progress.Add(1, st.Size)
	} else {
		r.progress.Add(1, 0)
	}
}

func (r *itemReporter) Warn(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.json {
		r.warnings++
		_ = writeItem(r.io.Out, recWarning, r.path(name), reason(err, name))
		return
	}
	if r.quiet {
		return
	}
	r.progress.Clear()
	fmt.Fprintf(r.io.ErrOut, "nscap: warning: %s %s: %s\n", r.verb, r.path(name), reason(err, name))
}

func (r *itemReporter) Error(name string, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if errors.Is(err, syscall.EPERM) {
		r.eperm++
	}
	if r.json {
		return writeItem(r.io.Out, recError, r.path(name), reason(err, name))
	}
	r.progress.Clear()
	// An item may fail for several reasons (errors.Join): one line.
	msg := strings.ReplaceAll(reason(err, name), "\n", "; ")
	fmt.Fprintf(r.io.ErrOut, "nscap: %s %s: %s\n", r.verb, r.path(name), msg)
	return nil
}
