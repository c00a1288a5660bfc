package ui

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestInterval(t *testing.T) {
	t.Parallel()
	tests := []struct {
		quiet, json, tty bool
		want             time.Duration
	}{
		{false, false, true, DefaultInterval},
		{false, true, true, DefaultInterval},
		{true, false, true, 0},
		{false, false, false, 0},
		{true, true, false, 0},
	}
	for _, tc := range tests {
		if got := Interval(tc.quiet, tc.json, tc.tty); got != tc.want {
			t.Errorf("Interval(%v, %v, %v) = %v, want %v", tc.quiet, tc.json, tc.tty, got, tc.want)
		}
	}
}

// fakeClock advances only when told to.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestCounter(t *testing.T) {
	t.Parallel()
	var term bytes.Buffer
	clk := &fakeClock{t: time.Unix(0, 0)}
	c := NewCounter(&term, "found", time.Second)
	c.SetClock(clk.now)

	c.Add(1) // first draw is immediate
	c.Add(1) // throttled
	clk.t = clk.t.Add(time.Second)
	c.Add(1) // redrawn
	c.Clear()
	c.Clear() // nothing drawn: no output
	c.Add(2)  // after Clear, drawn again at once
	c.Done()

	want := "\r\x1b[Kfound: 1" +
		"\r\x1b[Kfound: 3" +
		"\r\x1b[K" +
		"\r\x1b[Kfound: 5" +
		"\r\x1b[K"
	if diff := cmp.Diff(want, term.String()); diff != "" {
		t.Errorf("terminal output mismatch (-want +got):\n%s", diff)
	}
	if got := c.Count(); got != 5 {
		t.Errorf("Count() = %d, want 5", got)
	}
}

func TestCounterOff(t *testing.T) {
	t.Parallel()
	var term bytes.Buffer
	c := NewCounter(&term, "found", 0)
	c.Add(3)
	c.Clear()
	c.Done()
	if term.Len() != 0 {
		t.Errorf("disabled counter wrote %q", term.String())
	}
	if got := c.Count(); got != 3 {
		t.Errorf("Count() = %d, want 3", got)
	}
}
