package restorer

import (
	"hash/maphash"
	"sync"

	"github.com/nscap/nscap/internal/tarfmt"
)

// Limits of the parallel writer: files up to restoreSmallFile bytes are
// read into memory and written by a worker; at most restoreInflight of
// them wait at a time, which bounds the memory of a restore.
const (
	restoreSmallFile = 256 << 10
	restoreInflight  = 8 << 20
	// A worker gets files by batches of up to restoreBatch files or
	// restoreBatchBytes bytes.
	restoreBatch      = 64
	restoreBatchBytes = 1 << 20
)

// fileJob is a small regular file, or a hardlink to a name a worker
// holds, handed to a worker.
type fileJob struct {
	e    *tarfmt.Entry
	meta entryMeta
	data []byte // nil for a hardlink
	link bool   // a hardlink to a name the worker holds
	held int64  // bytes of the in-flight budget it holds (data and metadata)
}

// names returns the names job j holds: the one it creates and, for a
// hardlink, its target ("" for a file).
func (j *fileJob) names() [2]string {
	if j.link {
		return [2]string{j.e.Name, j.e.Link}
	}
	return [2]string{j.e.Name}
}

// scheduler hands the small files of a restore to its workers, read by
// one goroutine (the archive's reader) and written by several. It never
// touches a file: it decides which worker runs a job and when the reader
// must wait.
//
//   - The files of one directory go to one worker (creating a file takes
//     its directory's lock), different directories are filled in
//     parallel ([scheduler.pick]).
//   - A job holds the names it creates or links to until it is done; the
//     jobs holding a name are queued to one worker, which runs them in
//     order, and the reader waits for them before it touches that name
//     itself ([scheduler.waitFor]).
//   - The data of queued files is bounded by a byte budget
//     ([scheduler.acquire]).
//   - Jobs go out in batches: one channel operation, and one wake-up of
//     the worker, per batch rather than per file.
type scheduler struct {
	jobs []chan []*fileJob // one per worker
	// batch and batchBytes gather the next files of each worker (reader
	// goroutine only).
	batch      [][]*fileJob
	batchBytes []int64
	wg         sync.WaitGroup
	pending    sync.WaitGroup // jobs sent and not finished

	inflightMu sync.Mutex
	inflight   map[string]hold // names held by workers
	seed       maphash.Seed    // spreads directories over the workers

	// maxBatch, maxBatchBytes and budgetMax are the limits (the
	// restore* constants; tests lower them).
	maxBatch      int
	maxBatchBytes int64
	budgetMax     int64
	budget        struct {
		mu   sync.Mutex
		cond *sync.Cond
		used int64
	}
}

// hold counts the jobs handed to a worker that hold a name (the name they
// create, or the target of a hardlink). All the jobs holding a name are
// queued to one worker, which runs them in order.
type hold struct {
	n      int
	worker int
}

// newScheduler starts workers goroutines, each running work over the
// batches it is handed; work must call done for each job.
func newScheduler(workers int, work func(jobs <-chan []*fileJob)) *scheduler {
	s := &scheduler{
		jobs: make([]chan []*fileJob, workers), batch: make([][]*fileJob, workers), batchBytes: make([]int64, workers),
		inflight: map[string]hold{}, seed: maphash.MakeSeed(),
		maxBatch: restoreBatch, maxBatchBytes: restoreBatchBytes, budgetMax: restoreInflight,
	}
	s.budget.cond = sync.NewCond(&s.budget.mu)
	for i := range s.jobs {
		s.jobs[i] = make(chan []*fileJob, 4)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			work(s.jobs[i])
		}()
	}
	return s
}

// stop hands out what is gathered and waits for the workers to finish.
func (s *scheduler) stop() {
	s.flushAll()
	for _, c := range s.jobs {
		close(c)
	}
	s.wg.Wait()
}

// pick returns the worker of the files of directory dir.
func (s *scheduler) pick(dir string) int {
	return int(maphash.String(s.seed, dir) % uint64(len(s.jobs)))
}

// queue hands job j to worker w, which holds the names of j from now on
// until it is done with it; size counts against the batch.
func (s *scheduler) queue(w int, j *fileJob, size int64) {
	s.inflightMu.Lock()
	for _, name := range j.names() {
		if name != "" {
			s.inflight[name] = hold{n: s.inflight[name].n + 1, worker: w}
		}
	}
	s.inflightMu.Unlock()
	s.pending.Add(1)
	s.batch[w] = append(s.batch[w], j)
	s.batchBytes[w] += size
	if len(s.batch[w]) >= s.maxBatch || s.batchBytes[w] >= s.maxBatchBytes {
		s.flush(w)
	}
}

// done releases what job j held: its budget and its names. Workers call
// it once a job is over.
func (s *scheduler) done(j *fileJob) {
	s.release(j.held)
	s.inflightMu.Lock()
	for _, name := range j.names() {
		if name == "" {
			continue
		}
		h := s.inflight[name]
		if h.n--; h.n <= 0 {
			delete(s.inflight, name)
		} else {
			s.inflight[name] = h
		}
	}
	s.inflightMu.Unlock()
	s.pending.Done()
}

// holder returns the worker that holds name, if one does.
func (s *scheduler) holder(name string) (int, bool) {
	s.inflightMu.Lock()
	defer s.inflightMu.Unlock()
	h, ok := s.inflight[name]
	return h.worker, ok
}

// flush hands the files gathered for worker i to it.
func (s *scheduler) flush(i int) {
	if len(s.batch[i]) == 0 {
		return
	}
	s.jobs[i] <- s.batch[i]
	s.batch[i], s.batchBytes[i] = nil, 0
}

// flushAll flushes every worker's batch: before waiting for the workers,
// and at the end.
func (s *scheduler) flushAll() {
	for i := range s.batch {
		s.flush(i)
	}
}

// waitFor waits for the workers when one of them other than worker w
// holds the name (w < 0: any of them). Worker w runs its jobs in order:
// a job queued to it after those holding the name runs after them.
func (s *scheduler) waitFor(name string, w int) {
	if h, ok := s.holder(name); ok && h != w {
		s.flushAll()
		s.pending.Wait()
	}
}

// acquire takes n bytes of the in-flight budget, waiting for workers to
// give some back when it is spent (a job larger than the whole budget
// runs alone).
func (s *scheduler) acquire(n int64) {
	b := &s.budget
	b.mu.Lock()
	if b.used > 0 && b.used+n > s.budgetMax {
		// The memory held may be in batches not handed out yet.
		b.mu.Unlock()
		s.flushAll()
		b.mu.Lock()
	}
	for b.used > 0 && b.used+n > s.budgetMax {
		b.cond.Wait()
	}
	b.used += n
	b.mu.Unlock()
}

// release gives back n bytes of the budget.
func (s *scheduler) release(n int64) {
	b := &s.budget
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
	b.cond.Broadcast()
}
