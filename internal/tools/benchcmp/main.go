// Command benchcmp times commands against each other in one run,
// alternating them, and prints medians, peak RSS and the ratio to the
// first (the peer).
//
//	benchcmp -n 5 -prep "rm -rf /x" "tar=tar -cf a.tar t" "nscap=nscap backup -o b.tar t"
//
// Each command runs under sh -c with stdout discarded. -prep runs before
// every timed command (untimed). Used by `make bench` (scripts/bench.sh).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"
)

type cmdSpec struct {
	name, line string
	wall       []time.Duration
	rss        []int64 // KiB
}

func main() {
	n := flag.Int("n", 5, "rounds")
	prep := flag.String("prep", "", "shell command run (untimed) before each timed command")
	title := flag.String("title", "", "heading printed before the table")
	warm := flag.Bool("warm", true, "run each command once untimed first")
	flag.Parse()
	cmds, err := parse(flag.Args())
	if err != nil || len(cmds) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchcmp [-n N] [-prep CMD] NAME=CMD NAME=CMD...", err)
		os.Exit(2)
	}
	run := func(c *cmdSpec, record bool) {
		if *prep != "" {
			if out, err := exec.Command("sh", "-c", *prep).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "benchcmp: prep: %v: %s\n", err, out)
				os.Exit(1)
			}
		}
		cmd := exec.Command("sh", "-c", c.line)
		cmd.Stderr = os.Stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "benchcmp: %s: %v\n", c.name, err)
			os.Exit(1)
		}
		d := time.Since(start)
		if record {
			c.wall = append(c.wall, d)
			c.rss = append(c.rss, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
		}
	}
	if *warm {
		for _, c := range cmds {
			run(c, false)
		}
	}
	for i := 0; i < *n; i++ {
		for _, c := range cmds {
			run(c, true)
		}
	}
	if *title != "" {
		fmt.Println(*title)
	}
	base := median(cmds[0].wall)
	fmt.Printf("  %-10s %10s %10s %12s %8s\n", "command", "median", "min", "peak RSS", "ratio")
	for _, c := range cmds {
		m := median(c.wall)
		fmt.Printf("  %-10s %9.3fs %9.3fs %9.1f MiB %7.2fx\n", c.name, m.Seconds(), minOf(c.wall).Seconds(),
			float64(maxOf(c.rss))/1024, m.Seconds()/base.Seconds())
	}
	fmt.Printf("  (ratio = median / median of %s; %d alternating rounds)\n", cmds[0].name, *n)
}

func parse(args []string) ([]*cmdSpec, error) {
	var cs []*cmdSpec
	for _, a := range args {
		name, line, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not NAME=CMD", a)
		}
		cs = append(cs, &cmdSpec{name: name, line: line})
	}
	return cs, nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func minOf(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		m = min(m, d)
	}
	return m
}

func maxOf(xs []int64) int64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
