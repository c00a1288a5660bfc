package ui

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Progress draws the status line of a long command (backup, restore,
// verify) on a terminal, as restic and pv do: elapsed time, percent,
// entries, bytes, rate and ETA. Percent and ETA are shown only when the
// total is known ([Progress.SetTotal] with final set). The line is redrawn
// in place at most once per interval; [Progress.Clear] erases it before
// other output, and [Progress.Done] leaves the final state on its own line.
// A Progress with interval 0 draws nothing, so commands can call it
// unconditionally. It is safe for concurrent use.
type Progress struct {
	mu       sync.Mutex
	w        io.Writer
	label    string
	interval time.Duration
	now      func() time.Time
	width    int    // terminal columns; 0: unknown, the line is not cut
	noun     string // after the byte counts: "" or "of archive"

	start                    time.Time
	entries, bytes           int64
	totalEntries, totalBytes int64
	totalFinal               bool // the totals are complete

	last      time.Time
	drawn     bool // a status line is on screen
	everDrawn bool
	done      bool
}

// NewProgress returns a status line labelled label ("backup") drawn on w.
// An interval of 0 disables drawing (see [Interval]).
func NewProgress(w io.Writer, label string, interval time.Duration) *Progress {
	return &Progress{w: w, label: label, interval: interval, now: time.Now, start: time.Now()}
}

// SetClock replaces the clock (for tests); the elapsed time starts again
// from now().
func (p *Progress) SetClock(now func() time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.now = now
	p.start = now()
}

// SetWidth sets the width of the terminal in columns: longer lines are cut
// so that they never wrap (a wrapped line cannot be redrawn in place).
func (p *Progress) SetWidth(cols int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.width = cols
}

// SetBytesNoun names what the bytes count ("of archive"); by default
// nothing is said.
func (p *Progress) SetBytesNoun(noun string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.noun = noun
}

// Add counts entries done and bytes processed, and redraws when the
// interval has passed since the last redraw.
func (p *Progress) Add(entries, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.entries += entries
	p.bytes += bytes
	p.tick()
}

// SetTotal sets the totals the counts go to (0: unknown). final says the
// totals are complete (a scan of the tree ended, the size of the archive
// file): only then are percent and ETA shown; before, the totals are shown
// as lower bounds ("1.2 GiB+").
func (p *Progress) SetTotal(entries, bytes int64, final bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.totalEntries, p.totalBytes, p.totalFinal = entries, bytes, final
	p.tick()
}

// Counts returns the entries and bytes counted so far.
func (p *Progress) Counts() (entries, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.entries, p.bytes
}

// Clear erases the status line, if one is drawn, so that other output can
// be written to the terminal. The next event draws it again.
func (p *Progress) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
}

// Done draws the final state and ends the line, so it stays above what
// follows (the summary). Nothing is drawn if nothing was. Later events
// draw nothing.
func (p *Progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	p.done = true
	if p.interval <= 0 || !p.everDrawn {
		return
	}
	p.draw()
	fmt.Fprint(p.w, "\n")
	p.drawn = false
}

// Writer returns a writer that erases the status line before each write
// to w (normally the same terminal): for output that does not go through
// the command, such as a helper process's stderr.
func (p *Progress) Writer(w io.Writer) io.Writer {
	return clearingWriter{p: p, w: w}
}

type clearingWriter struct {
	p *Progress
	w io.Writer
}

func (c clearingWriter) Write(b []byte) (int, error) {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	c.p.clear()
	return c.w.Write(b)
}

// Line returns the status line as it would be drawn now.
func (p *Progress) Line() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.line()
}

func (p *Progress) tick() {
	if p.interval <= 0 || p.done {
		return
	}
	t := p.now()
	if p.drawn && t.Sub(p.last) < p.interval {
		return
	}
	p.last = t
	p.draw()
}

func (p *Progress) draw() {
	// \r and "erase to end of line" (EL, CSI K) redraw in place.
	fmt.Fprintf(p.w, "\r\x1b[K%s", p.line())
	p.drawn, p.everDrawn = true, true
}

func (p *Progress) clear() {
	if !p.drawn {
		return
	}
	fmt.Fprint(p.w, "\r\x1b[K")
	p.drawn = false
}

// line renders the status: "[0:07] 31% backup: 12345/40000 entries,
// 340.0 MiB/1.1 GiB, 48.6 MiB/s, ETA 0:15".
func (p *Progress) line() string {
	elapsed := max(p.now().Sub(p.start), 0)
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] ", clock(elapsed))
	pct := -1.0
	if p.totalFinal {
		switch {
		case p.totalBytes > 0:
			pct = 100 * float64(p.bytes) / float64(p.totalBytes)
		case p.totalEntries > 0:
			pct = 100 * float64(p.entries) / float64(p.totalEntries)
		}
	}
	if pct >= 0 {
		fmt.Fprintf(&b, "%3.0f%% ", min(pct, 100))
	}
	b.WriteString(p.label)
	b.WriteString(":")
	more := "+"
	if p.totalFinal {
		more = ""
	}
	if p.entries > 0 || p.totalEntries > 0 {
		fmt.Fprintf(&b, " %d", p.entries)
		if p.totalEntries > 0 {
			fmt.Fprintf(&b, "/%d%s", p.totalEntries, more)
		}
		b.WriteString(" entries,")
	}
	fmt.Fprintf(&b, " %s", Bytes(p.bytes))
	if p.totalBytes > 0 {
		fmt.Fprintf(&b, "/%s%s", Bytes(p.totalBytes), more)
	}
	if p.noun != "" {
		b.WriteString(" " + p.noun)
	}
	var rate float64
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(p.bytes) / s
		fmt.Fprintf(&b, ", %s/s", Bytes(int64(rate)))
	}
	if p.totalFinal && p.totalBytes > p.bytes && rate > 0 && !p.done {
		eta := time.Duration(float64(p.totalBytes-p.bytes) / rate * float64(time.Second))
		fmt.Fprintf(&b, ", ETA %s", clock(eta+time.Second-1)) // rounded up: never 0:00 before the end
	}
	s := b.String()
	if p.width > 1 && len(s) > p.width-1 {
		// The last column is left free: writing it makes some
		// terminals wrap at once.
		s = s[:p.width-1]
	}
	return s
}

// clock formats d as m:ss, or h:mm:ss from an hour on (rounded down to
// the second).
func clock(d time.Duration) string {
	s := int64(d / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// Bytes formats n with a binary unit ("340.0 MiB").
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Width returns the number of columns of the terminal w is, or 0 when w is
// not a terminal (or its size is unknown).
func Width(w io.Writer) int {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return 0
	}
	cols, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return cols
}
