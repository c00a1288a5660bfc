package ui

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// DefaultInterval is the minimum time between two redraws of a progress
// line on a terminal.
const DefaultInterval = 100 * time.Millisecond

// Interval returns how often progress is redrawn: 0 means progress is off.
// Progress is drawn only on a terminal and never when quiet. JSON output
// does not turn it off, since progress goes to stderr and JSON to stdout.
func Interval(quiet, json, tty bool) time.Duration {
	_ = json // JSON Lines go to stdout; the progress line on stderr does not disturb them
	if quiet || !tty {
		return 0
	}
	return DefaultInterval
}

// Counter draws a one-line counter ("LABEL: N") on a terminal, redrawn in
// place at most once per interval. A Counter with interval 0 draws nothing,
// so commands can call it unconditionally. It is safe for concurrent use.
type Counter struct {
	mu       sync.Mutex
	w        io.Writer
	label    string
	interval time.Duration
	now      func() time.Time

	n     int64
	last  time.Time
	drawn bool // a progress line is on screen
}

// NewCounter returns a counter that draws on w with the given label. An
// interval of 0 disables drawing (see [Interval]).
func NewCounter(w io.Writer, label string, interval time.Duration) *Counter {
	return &Counter{w: w, label: label, interval: interval, now: time.Now}
}

// SetClock replaces the clock used for throttling (for tests).
func (c *Counter) SetClock(now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}

// Add adds n to the count and redraws when the interval has passed since
// the last redraw.
func (c *Counter) Add(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += n
	if c.interval <= 0 {
		return
	}
	t := c.now()
	if c.drawn && t.Sub(c.last) < c.interval {
		return
	}
	c.last = t
	c.draw()
}

// Count returns the current count.
func (c *Counter) Count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Clear erases the progress line, if one is drawn, so that other output
// can be written to the terminal. The next [Counter.Add] draws it again.
func (c *Counter) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clear()
}

// Done erases the progress line for good.
func (c *Counter) Done() {
	c.Clear()
}

func (c *Counter) draw() {
	// \r and "erase to end of line" (EL, CSI K) redraw in place.
	fmt.Fprintf(c.w, "\r\x1b[K%s: %d", c.label, c.n)
	c.drawn = true
}

func (c *Counter) clear() {
	if !c.drawn {
		return
	}
	fmt.Fprint(c.w, "\r\x1b[K")
	c.drawn = false
}
