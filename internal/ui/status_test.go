package ui

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const el = "\r\x1b[K" // return, erase line

func newTestProgress(interval time.Duration) (*Progress, *bytes.Buffer, *fakeClock) {
	var term bytes.Buffer
	clk := &fakeClock{t: time.Unix(1000, 0)}
	p := NewProgress(&term, "backup", interval)
	p.SetClock(clk.now)
	return p, &term, clk
}

func TestProgressThrottleClearDone(t *testing.T) {
	t.Parallel()
	p, term, clk := newTestProgress(100 * time.Millisecond)
	p.Add(1, 0) // first draw is immediate
	clk.t = clk.t.Add(50 * time.Millisecond)
	p.Add(1, 1<<20) // throttled
	clk.t = clk.t.Add(50 * time.Millisecond)
	p.Add(1, 0) // redrawn: 100ms since the last draw
	p.Clear()
	p.Clear() // nothing drawn: no output
	fmt.Fprint(p.Writer(term), "warning\n")
	p.Add(1, 0) // drawn again at once after a clear
	clk.t = clk.t.Add(900 * time.Millisecond)
	p.Done()
	p.Add(1, 0) // after Done: nothing
	p.Done()

	want := el + "[0:00] backup: 1 entries, 0 B" +
		el + "[0:00] backup: 3 entries, 1.0 MiB, 10.0 MiB/s" +
		el + "warning\n" +
		el + "[0:00] backup: 4 entries, 1.0 MiB, 10.0 MiB/s" +
		el + "[0:01] backup: 4 entries, 1.0 MiB, 1.0 MiB/s\n"
	if diff := cmp.Diff(want, term.String()); diff != "" {
		t.Errorf("terminal output mismatch (-want +got):\n%s", diff)
	}
	if e, b := p.Counts(); e != 5 || b != 1<<20 {
		t.Errorf("Counts() = %d, %d; want 5, %d", e, b, 1<<20)
	}
}

// At most ten redraws a second, however many events come.
func TestProgressRedrawRate(t *testing.T) {
	t.Parallel()
	p, term, clk := newTestProgress(DefaultInterval)
	for range 10000 { // 10000 events over 2s
		clk.t = clk.t.Add(200 * time.Microsecond)
		p.Add(1, 4096)
	}
	if n := strings.Count(term.String(), el); n > 21 {
		t.Errorf("%d redraws in 2s, want at most 21", n)
	}
}

func TestProgressLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                 string
		entries, bytes       int64
		totEntries, totBytes int64
		final                bool
		noun                 string
		elapsed              time.Duration
		want                 string
	}{
		{
			name: "no total", entries: 12345, bytes: 340 << 20, elapsed: 7 * time.Second,
			want: "[0:07] backup: 12345 entries, 340.0 MiB, 48.6 MiB/s",
		},
		{
			name: "scanning", entries: 100, bytes: 10 << 20, totEntries: 5000, totBytes: 1 << 30, elapsed: time.Second,
			want: "[0:01] backup: 100/5000+ entries, 10.0 MiB/1.0 GiB+, 10.0 MiB/s",
		},
		{
			name: "known total", entries: 1000, bytes: 256 << 20, totEntries: 4000, totBytes: 1 << 30, final: true, elapsed: 10 * time.Second,
			want: "[0:10]  25% backup: 1000/4000 entries, 256.0 MiB/1.0 GiB, 25.6 MiB/s, ETA 0:30",
		},
		{
			name: "archive", entries: 7, bytes: 3 << 30, totBytes: 4 << 30, final: true, noun: "of archive", elapsed: 3 * time.Hour,
			want: "[3:00:00]  75% backup: 7 entries, 3.0 GiB/4.0 GiB of archive, 291.3 KiB/s, ETA 1:00:00",
		},
		{
			name: "no entries", bytes: 512, totBytes: 1024, final: true, noun: "of archive", elapsed: time.Second,
			want: "[0:01]  50% backup: 512 B/1.0 KiB of archive, 512 B/s, ETA 0:01",
		},
		{
			name: "total exceeded", entries: 9, bytes: 2048, totEntries: 5, totBytes: 1024, final: true, elapsed: time.Second,
			want: "[0:01] 100% backup: 9/5 entries, 2.0 KiB/1.0 KiB, 2.0 KiB/s",
		},
		{
			name: "percent by entries", entries: 1, totEntries: 4, final: true,
			want: "[0:00]  25% backup: 1/4 entries, 0 B",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, _, clk := newTestProgress(0)
			p.SetBytesNoun(tc.noun)
			p.Add(tc.entries, tc.bytes)
			p.SetTotal(tc.totEntries, tc.totBytes, tc.final)
			clk.t = clk.t.Add(tc.elapsed)
			if got := p.Line(); got != tc.want {
				t.Errorf("Line() = %q\nwant     %q", got, tc.want)
			}
		})
	}
}

func TestProgressWidth(t *testing.T) {
	t.Parallel()
	p, term, _ := newTestProgress(time.Second)
	p.SetWidth(20)
	p.Add(123456, 1<<40)
	if got, want := term.String(), el+"[0:00] backup: 1234"; got != want {
		t.Errorf("drawn %q, want %q (19 columns)", got, want)
	}
}

func TestProgressOff(t *testing.T) {
	t.Parallel()
	p, term, _ := newTestProgress(0)
	p.Add(3, 10)
	p.SetTotal(3, 10, true)
	p.Clear()
	fmt.Fprint(p.Writer(term), "x\n")
	p.Done()
	if got := term.String(); got != "x\n" {
		t.Errorf("disabled progress wrote %q", got)
	}
	if e, b := p.Counts(); e != 3 || b != 10 {
		t.Errorf("Counts() = %d, %d; want 3, 10", e, b)
	}
}

// Done draws nothing when nothing was drawn.
func TestProgressDoneQuiet(t *testing.T) {
	t.Parallel()
	p, term, _ := newTestProgress(time.Second)
	p.Done()
	if term.Len() != 0 {
		t.Errorf("Done wrote %q", term.String())
	}
}

func TestWidthNotTerminal(t *testing.T) {
	t.Parallel()
	if w := Width(io.Discard); w != 0 {
		t.Errorf("Width(io.Discard) = %d", w)
	}
}

// The ETA is rounded up: 0:00 only at the end.
func TestProgressETARoundsUp(t *testing.T) {
	t.Parallel()
	p, _, clk := newTestProgress(0)
	p.Add(0, 99)
	p.SetTotal(0, 100, true)
	clk.t = clk.t.Add(10 * time.Second) // 1 byte left at 9.9 B/s: 0.1s
	if got, want := p.Line(), "[0:10]  99% backup: 99 B/100 B, 9 B/s, ETA 0:01"; got != want {
		t.Errorf("Line() = %q, want %q", got, want)
	}
}
