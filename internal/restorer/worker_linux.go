package restorer

// worker writes the small files and makes the hardlinks it is handed, in
// the order it gets them.
func (rs *restorer) worker(jobs <-chan []*fileJob) {
	pc := &parentCache{d: rs.d}
	defer pc.drop()
	for batch := range jobs {
		for _, j := range batch {
			rs.job(pc, j)
		}
	}
}

// job restores one small file, or makes one hardlink, of a batch.
func (rs *restorer) job(pc *parentCache, j *fileJob) {
	var err error
	if j.link {
		err = rs.special(pc, j.e, j.meta)
	} else {
		err = rs.writeSmall(pc, j.e, j.meta, j.data)
		putBuf(j.data)
	}
	rs.sched.done(j)
	if err != nil {
		rs.fail(j.e.Name, err)
	}
}
