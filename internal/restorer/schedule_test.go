// The scheduler is pure: these tests run it without a file, as any user.
package restorer

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/internal/tarfmt"
)

func job(name, link string) *fileJob {
	return &fileJob{e: &tarfmt.Entry{Name: name, Link: link}, link: link != ""}
}

// recorder is a worker body that records the jobs it runs, per worker,
// and can be held back.
type recorder struct {
	s    *scheduler
	mu   sync.Mutex
	ran  map[int][]string
	gate chan struct{} // when not nil, each job waits for a token
}

func (r *recorder) work(w int) func(<-chan []*fileJob) {
	return func(jobs <-chan []*fileJob) {
		for batch := range jobs {
			for _, j := range batch {
				if r.gate != nil {
					<-r.gate
				}
				r.mu.Lock()
				r.ran[w] = append(r.ran[w], j.e.Name)
				r.mu.Unlock()
				r.s.done(j)
			}
		}
	}
}

func newRecorded(t *testing.T, workers int, gate chan struct{}) (*scheduler, *recorder) {
	t.Helper()
	r := &recorder{ran: map[int][]string{}, gate: gate}
	n := 0
	var mu sync.Mutex
	r.s = newScheduler(workers, func(jobs <-chan []*fileJob) {
		mu.Lock()
		w := n
		n++
		mu.Unlock()
		r.work(w)(jobs)
	})
	return r.s, r
}

func TestSchedulerOrderOfOneName(t *testing.T) {
	s, r := newRecorded(t, 3, nil)
	for _, n := range []string{"a", "b", "a", "c", "a"} {
		w := s.pick("dir/")
		s.waitFor(n, w)
		s.queue(w, job(n, ""), 0)
	}
	s.stop()
	var all []string
	for _, names := range r.ran {
		all = append(all, names...)
	}
	// One directory, one worker: every job in the order queued.
	if diff := cmp.Diff([]string{"a", "b", "a", "c", "a"}, all); diff != "" {
		t.Errorf("jobs of one directory ran out of order (-want +got):\n%s", diff)
	}
	if _, held := s.holder("a"); held {
		t.Errorf("name a still held after the jobs are done")
	}
}

func TestSchedulerWaitForHolder(t *testing.T) {
	gate := make(chan struct{})
	s, _ := newRecorded(t, 2, gate)
	defer s.stop()
	s.queue(0, job("x", ""), 0)
	s.flushAll()
	if w, ok := s.holder("x"); !ok || w != 0 {
		t.Fatalf("holder(x) = %d, %v; want worker 0", w, ok)
	}
	returned := make(chan struct{})
	go func() {
		s.waitFor("x", -1) // the reader wants x: it waits for worker 0
		close(returned)
	}()
	select {
	case <-returned:
		t.Fatal("waitFor returned while a worker holds the name")
	case <-time.After(50 * time.Millisecond):
	}
	gate <- struct{}{}
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("waitFor still blocked after the holder finished")
	}
	// The holder itself never waits: its jobs run in order.
	s.queue(1, job("y", ""), 0)
	done := make(chan struct{})
	go func() { s.waitFor("y", 1); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("waitFor(name, holder) blocked")
	}
	go func() { gate <- struct{}{} }()
}

func TestSchedulerHardlinkHoldsTarget(t *testing.T) {
	gate := make(chan struct{})
	s, _ := newRecorded(t, 2, gate)
	defer s.stop()
	s.queue(1, job("f", ""), 0)
	s.queue(1, job("l", "f"), 0) // a link to f, queued behind it
	s.flushAll()
	for _, n := range []string{"f", "l"} {
		if w, ok := s.holder(n); !ok || w != 1 {
			t.Errorf("holder(%s) = %d, %v; want worker 1", n, w, ok)
		}
	}
	gate <- struct{}{}
	gate <- struct{}{}
	s.waitFor("f", -1)
	if _, ok := s.holder("f"); ok {
		t.Errorf("f still held after its file and its link are done")
	}
}

func TestSchedulerBudget(t *testing.T) {
	s, _ := newRecorded(t, 1, nil)
	defer s.stop()
	s.budgetMax = 100
	s.acquire(60)
	got := make(chan struct{})
	go func() { s.acquire(60); close(got) }()
	select {
	case <-got:
		t.Fatal("acquire over the budget did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	s.release(60)
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("acquire still blocked after release")
	}
	s.release(60)
	// A job larger than the whole budget runs alone, not never.
	s.acquire(1000)
	s.release(1000)
}

func TestSchedulerBatches(t *testing.T) {
	s, r := newRecorded(t, 1, nil)
	s.maxBatch = 3
	s.queue(0, job("a", ""), 0)
	s.queue(0, job("b", ""), 0)
	time.Sleep(20 * time.Millisecond)
	r.mu.Lock()
	early := len(r.ran[0])
	r.mu.Unlock()
	if early != 0 {
		t.Errorf("%d jobs ran before their batch was full", early)
	}
	s.queue(0, job("c", ""), 0) // fills the batch: handed out
	s.waitFor("c", -1)
	r.mu.Lock()
	if diff := cmp.Diff([]string{"a", "b", "c"}, r.ran[0]); diff != "" {
		t.Errorf("batch (-want +got):\n%s", diff)
	}
	r.mu.Unlock()
	s.stop()
}

func TestSchedulerPick(t *testing.T) {
	s, _ := newRecorded(t, 4, nil)
	defer s.stop()
	seen := map[int]bool{}
	for i := range 64 {
		d := string(rune('a'+i%26)) + "/" + string(rune('a'+i/26))
		w := s.pick(d)
		if w != s.pick(d) {
			t.Fatalf("pick(%q) is not stable", d)
		}
		seen[w] = true
	}
	if len(seen) < 2 {
		t.Errorf("64 directories all went to %d worker(s)", len(seen))
	}
}
