package main

// Workers replaced under load (with -workers above 1): cmd/wsgi under
// wrk while its master replaces every worker, by a rolling restart
// (SIGHUP at a third and at two thirds of the run) and by recycling
// (-max-requests with jitter, small enough that each worker is replaced
// several times). The target: no failed request.

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	flagChurn = flag.String("churn", "hello,flask", "with -workers above 1: workloads (of -workloads) on which cmd/wsgi is "+
		"measured while its workers are replaced, by SIGHUP and by -max-requests (empty: none)")
	flagChurnMaxReq = flag.Int("churn-max-requests", 0, "-max-requests of the recycling run (jitter: a quarter of it); "+
		"0: an eighth of what one worker served in -d in the plain run, so that each is replaced several times "+
		"(replacing costs throughput)")
)

// A churnRun is one measured run of cmd/wsgi while its workers are
// replaced.
type churnRun struct {
	w     *workload
	event string // "SIGHUP" or "recycling"
	how   string // when, or with which flags
	na    string // why it could not run

	r                             wrkResult
	connect, read, write, timeout int
	replaced                      int     // "replacement worker ready" lines in the master's log
	seen                          int     // distinct worker processes seen during the run
	firstLeft, first              int     // the master's children when the run began that are there at its end, of first
	steady                        float64 // req/s of the plain run of cmd/wsgi (median), 0 if unknown
	logKept                       string  // with failures: where wrk's output and the master's log were kept
}

func (c *churnRun) failed() int {
	return c.r.non2xx + c.connect + c.read + c.write + c.timeout
}

// measureChurn runs the SIGHUP and recycling measurements on the
// workloads of -churn, if -workers is above 1 and cmd/wsgi was measured.
func measureChurn(ctx context.Context, e *env, ss []*server, ws []*workload, res map[string]*result) []*churnRun {
	if e.workers <= 1 || *flagChurn == "" {
		return nil
	}
	var ours *server
	for _, s := range ss {
		if s.key == "cmd/wsgi" {
			ours = s
		}
	}
	if ours == nil {
		return nil
	}
	want := map[string]bool{}
	for _, k := range strings.Split(*flagChurn, ",") {
		want[strings.TrimSpace(k)] = true
	}
	var out []*churnRun
	for _, w := range ws {
		if !want[w.key] || !ours.serves(w) {
			continue
		}
		var steady float64
		if r := res[w.key+"/"+ours.key]; r != nil && r.runs > 0 {
			steady = r.rps
		}
		for _, event := range []string{"SIGHUP", "recycling"} {
			c := &churnRun{w: w, event: event, steady: steady}
			if err := c.measure(ctx, e, ours); err != nil {
				c.na = err.Error()
			}
			if ctx.Err() != nil {
				return out
			}
			out = append(out, c)
			if c.na != "" {
				fmt.Fprintf(os.Stderr, "churn %-10s %-9s n/a: %s\n", w.key, event, c.na)
				continue
			}
			fmt.Fprintf(os.Stderr, "churn %-10s %-9s %9.0f req/s  %d requests  failed %d (non-2xx %d, connect %d, read %d, write %d, timeout %d)  "+
				"replacements %d  worker pids seen %d  first workers left %d/%d\n",
				w.key, event, c.r.rps, c.r.requests, c.failed(), c.r.non2xx, c.connect, c.read, c.write, c.timeout,
				c.replaced, c.seen, c.firstLeft, c.first)
			if c.logKept != "" {
				fmt.Fprintf(os.Stderr, "churn: wrk's output and the master's log are in %s\n", c.logKept)
			}
		}
	}
	return out
}

// measure starts cmd/wsgi for c.w (as the plain run does, with the
// master's info log), warms it up, runs wrk while the workers are
// replaced, and stops it.
func (c *churnRun) measure(ctx context.Context, e *env, s *server) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	dir := filepath.Join(e.tmp, fmt.Sprintf("churn-%s-%s", c.w.key, c.event))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	argv, err := s.argv(e, c.w, port, dir)
	if err != nil {
		return err
	}
	argv = append(argv, "-log-level", "info") // the last -log-level wins: the master logs each replacement
	d := time.Duration(math.Max(1, math.Round(flagDur.Seconds()))) * time.Second
	if c.event == "recycling" {
		n := *flagChurnMaxReq
		if n <= 0 {
			n = 1000
			if c.steady > 0 {
				n = max(100, int(c.steady*d.Seconds()/float64(e.workers)/8)/100*100)
			}
		}
		jitter := n / 4
		argv = append(argv, "-max-requests", strconv.Itoa(n), "-max-requests-jitter", strconv.Itoa(jitter))
		c.how = fmt.Sprintf("`-max-requests %d -max-requests-jitter %d`", n, jitter)
	} else {
		c.how = fmt.Sprintf("SIGHUP to the master at %s and %s", fmtSeconds(d/3), fmtSeconds(2*d/3))
	}
	logPath := filepath.Join(dir, "server.log")
	p, err := startProc(e, argv, e.apps, logPath)
	if err != nil {
		return err
	}
	defer p.stop(10 * time.Second)
	master := p.cmd.Process.Pid
	if err := waitReady(ctx, p, c.w, port); err != nil {
		return err
	}
	if *flagWarmup > 0 {
		if _, err := runWrk(ctx, e, c.w, port, *flagWarmup); err != nil {
			return fmt.Errorf("warm-up: %v", err)
		}
	}
	before := workerPids(master)
	readyBefore := strings.Count(readFile(logPath), "wsgi: replacement worker ready")

	// The worker processes seen during the run.
	seen := map[int]bool{}
	var mu sync.Mutex
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			mu.Lock()
			for pid := range workerPids(master) {
				seen[pid] = true
			}
			mu.Unlock()
			select {
			case <-stopWatch:
				return
			case <-t.C:
			}
		}
	}()
	// A SIGHUP during a rolling restart starts it over: one "done" line
	// for both. doneBefore is the count when the last SIGHUP was sent.
	doneBefore := make(chan int, 1)
	if c.event == "SIGHUP" {
		for i, at := range []time.Duration{d / 3, 2 * d / 3} {
			timer := time.AfterFunc(at, func() {
				if i == 1 {
					doneBefore <- strings.Count(readFile(logPath), "wsgi: rolling restart done")
				}
				_ = syscall.Kill(master, syscall.SIGHUP)
			})
			defer timer.Stop()
		}
	}
	out, err := c.runWrk(ctx, e, port, d)
	close(stopWatch)
	<-watched
	if err != nil {
		return err
	}
	if c.event == "SIGHUP" {
		// The last restart may still be under way: let it end.
		n := <-doneBefore
		deadline := time.Now().Add(30 * time.Second)
		for strings.Count(readFile(logPath), "wsgi: rolling restart done") <= n && time.Now().Before(deadline) && !p.exited() {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if p.exited() {
		return fmt.Errorf("server exited during the run: %s", p.logTail())
	}
	r, err := parseWrk(out)
	if err != nil {
		return err
	}
	c.r = r
	if m := reSockErr.FindStringSubmatch(out); m != nil {
		c.connect, _ = strconv.Atoi(m[1])
		c.read, _ = strconv.Atoi(m[2])
		c.write, _ = strconv.Atoi(m[3])
		c.timeout, _ = strconv.Atoi(m[4])
	}
	log := readFile(logPath)
	c.replaced = strings.Count(log, "wsgi: replacement worker ready") - readyBefore
	after := workerPids(master)
	mu.Lock()
	c.seen = len(seen)
	mu.Unlock()
	c.first = len(before)
	for pid := range before {
		if after[pid] {
			c.firstLeft++
		}
	}
	if c.failed() > 0 { // e.tmp goes at exit: keep the evidence
		kept := filepath.Join(os.TempDir(), fmt.Sprintf("bench-churn-%s-%s.log", c.w.key, c.event))
		if os.WriteFile(kept, []byte(out+"\n"+log), 0o644) == nil {
			c.logKept = kept
		}
	}
	return nil
}

// runWrk runs wrk as the plain run does (runWrk in main.go) and returns
// its output, for the socket errors one by one.
func (c *churnRun) runWrk(ctx context.Context, e *env, port int, d time.Duration) (string, error) {
	args := []string{"-t" + strconv.Itoa(*flagWrkThr), "-c" + strconv.Itoa(*flagConns),
		"-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency", "--timeout", "5s"}
	if c.w.post > 0 {
		args = append(args, "-s", filepath.Join(e.tmp, "post.lua"))
	}
	args = append(args, "http://"+addr(port)+c.w.path)
	out, err := exec.CommandContext(ctx, "wrk", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("wrk: %v: %s", err, lastLine(string(out)))
	}
	return string(out), nil
}

// workerPids are the pids of the master's children.
func workerPids(master int) map[int]bool {
	pids := map[int]bool{}
	for _, st := range treeOf(master) {
		if st.ppid == master {
			pids[st.pid] = true
		}
	}
	return pids
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func fmtSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}

// churnTargets is the targets table's row for the runs.
func churnTargets(runs []*churnRun) string {
	if len(runs) == 0 {
		return ""
	}
	var parts []string
	ok := true
	for _, c := range runs {
		switch {
		case c.na != "":
			parts = append(parts, fmt.Sprintf("%s %s n/a", c.event, c.w.label))
			ok = false
		case c.replaced == 0:
			parts = append(parts, fmt.Sprintf("%s %s: no worker replaced", c.event, c.w.label))
			ok = false
		default:
			parts = append(parts, fmt.Sprintf("%s %s: %d failed of %d (%d replacements)", c.event, c.w.label, c.failed(), c.r.requests, c.replaced))
			ok = ok && c.failed() == 0
		}
	}
	verdict := "**no**"
	if ok {
		verdict = "yes"
	}
	return fmt.Sprintf("| zero failed requests across SIGHUP / recycling (wrk) | %s | %s |\n", mdEscape(strings.Join(parts, "; ")), verdict)
}

// churnSection is the report's section on the runs.
func churnSection(e *env, runs []*churnRun) string {
	if len(runs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n## Workers replaced under load\n\n")
	fmt.Fprintf(&b, "cmd/wsgi with -workers %d, started as above (with `-log-level info`), warmed up, then one "+
		"`wrk -t%d -c%d -d%s` run (not repeated) while its master replaces every worker: by a rolling restart "+
		"(SIGHUP at a third and at two thirds of the run) and by recycling (-max-requests with a quarter of it as "+
		"jitter, an eighth of what one worker served in the plain run unless -churn-max-requests says). "+
		"Failed: wrk's non-2xx answers plus its socket errors (connect, read, write, timeout). "+
		"Replacements: the master's \"replacement worker ready\" lines during the run; worker pids: the distinct "+
		"children of the master seen (sampled every 50 ms); first workers left: of the master's children when the "+
		"run began, those still there at its end. vs steady: req/s over the plain run's median.\n\n",
		e.workers, *flagWrkThr, *flagConns, *flagDur)
	b.WriteString("| workload | replaced by | requests | req/s | vs steady | failed | non-2xx | connect | read | write | timeout | replacements | worker pids seen | first workers left |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range runs {
		if c.na != "" {
			fmt.Fprintf(&b, "| %s | %s | n/a: %s | | | | | | | | | | | |\n", c.w.label, c.event, mdEscape(c.na))
			continue
		}
		vs := "-"
		if c.steady > 0 {
			vs = fmtRatio(c.r.rps / c.steady)
		}
		fmt.Fprintf(&b, "| %s | %s: %s | %d | %s | %s | %d | %d | %d | %d | %d | %d | %d | %d | %d of %d |\n",
			c.w.label, c.event, c.how, c.r.requests, fmtRPS(c.r.rps), vs, c.failed(), c.r.non2xx,
			c.connect, c.read, c.write, c.timeout, c.replaced, c.seen, c.firstLeft, c.first)
	}
	return b.String()
}
