package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startWorkers serves testdata/workers.py (or the app in dir) with
// -workers 2 and extra args, and returns the process and its base URL.
func startWorkers(t *testing.T, env []string, dir string, args ...string) (*proc, string) {
	t.Helper()
	if dir == "" {
		dir = testdata
	}
	args = append([]string{"-addr", "127.0.0.1:0", "-dir", dir, "-app", "workers", "-workers", "2",
		"-shutdown-timeout", "5s"}, args...)
	p := start(t, env, args...)
	return p, "http://" + p.addr(t)
}

// copyWorkersApp copies testdata/workers.py into a new directory, for the
// tests that rewrite it, and returns the directory and the file.
func copyWorkersApp(t *testing.T) (dir, file string, src []byte) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(testdata, "workers.py"))
	require.NoError(t, err)
	dir = t.TempDir()
	file = filepath.Join(dir, "workers.py")
	require.NoError(t, os.WriteFile(file, src, 0o644))
	return dir, file, src
}

// rewrite replaces an app file. Python trusts a .pyc whose recorded
// source mtime (in seconds) and size match: move the mtime on, so that a
// rewrite of the same size within the same second is not missed.
func rewrite(t *testing.T, file string, src []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(file, src, 0o644))
	later := time.Now().Add(2 * time.Second)
	require.NoError(t, os.Chtimes(file, later, later))
}

var pidRe = regexp.MustCompile(`^(version \d+) pid=(\d+) worker=(\d+)\n$`)

// answer is one response of workers.py.
type answer struct {
	version string
	pid     int
	worker  int
}

func parseAnswer(body string) (answer, bool) {
	m := pidRe.FindStringSubmatch(body)
	if m == nil {
		return answer{}, false
	}
	pid, _ := strconv.Atoi(m[2])
	w, _ := strconv.Atoi(m[3])
	return answer{m[1], pid, w}, true
}

// ask GETs url and parses the answer.
func ask(t *testing.T, url string) answer {
	t.Helper()
	code, body := get(t, url)
	require.Equal(t, http.StatusOK, code, body)
	a, ok := parseAnswer(body)
	require.True(t, ok, body)
	return a
}

// loadResult is what a load run saw.
type loadResult struct {
	mu       sync.Mutex
	ok       int
	failures []error
	pids     map[int]bool
	versions map[string]int
	last     map[int]answer // each goroutine's last answer
}

// add records goroutine g's answer a, or its failure err.
func (r *loadResult) add(g int, a answer, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failures = append(r.failures, err)
		return
	}
	r.ok++
	r.pids[a.pid] = true
	r.versions[a.version]++
	r.last[g] = a
}

func (r *loadResult) refused() int {
	n := 0
	for _, err := range r.failures {
		if errors.Is(err, syscall.ECONNREFUSED) {
			n++
		}
	}
	return n
}

// runLoad sends GETs to url from n goroutines with keep-alive until ctx
// is done, then returns what they saw.
func runLoad(ctx context.Context, url string, n int) *loadResult {
	r := &loadResult{pids: map[int]bool{}, versions: map[string]int{}, last: map[int]answer{}}
	tr := &http.Transport{MaxIdleConnsPerHost: n}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				a, err := getAnswer(client, url)
				r.add(g, a, err)
			}
		}()
	}
	wg.Wait()
	return r
}

func getAnswer(client *http.Client, url string) (answer, error) {
	resp, err := client.Get(url)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return answer{}, errors.New(resp.Status + ": " + string(b))
	}
	a, ok := parseAnswer(string(b))
	if !ok {
		return answer{}, errors.New("unexpected body: " + string(b))
	}
	return a, nil
}

// loadFor runs runLoad for d in the background; wait returns its result.
func loadFor(url string, n int, d time.Duration) (wait func() *loadResult) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	done := make(chan *loadResult, 1)
	go func() {
		defer cancel()
		done <- runLoad(ctx, url, n)
	}()
	return func() *loadResult { return <-done }
}

// waitLog waits until the process's stderr contains s.
func waitLog(t *testing.T, p *proc, s string, within time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(p.stderr(), s) }, within, 20*time.Millisecond,
		"no %q in the log:\n%s", s, p.stderr())
}

// twoWorkers asks until it has seen both workers and returns their pids
// by worker id.
func twoWorkers(t *testing.T, url string) map[int]int {
	t.Helper()
	return twoWorkersVia(t, &http.Transport{}, url)
}

// twoWorkersVia is twoWorkers over tr, which it makes open a new
// connection per request, so that both workers get a chance to accept.
func twoWorkersVia(t *testing.T, tr *http.Transport, url string) map[int]int {
	t.Helper()
	tr.DisableKeepAlives = true
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	pids := map[int]int{}
	deadline := time.Now().Add(10 * time.Second)
	for len(pids) < 2 && time.Now().Before(deadline) {
		a, err := getAnswer(c, url)
		require.NoError(t, err)
		pids[a.worker] = a.pid
	}
	require.Len(t, pids, 2, "both workers answer")
	return pids
}

func TestWorkersServe(t *testing.T) {
	t.Parallel()
	p, base := startWorkers(t, nil, "")
	pids := twoWorkers(t, base+"/")
	assert.NotEqual(t, pids[1], pids[2])
	assert.NotContains(t, pids, p.cmd.Process.Pid, "the master serves nothing itself")
	// workers.py imports ctypes: its extension module is mapped in each
	// worker, never in the master, which starts no interpreter.
	maps := func(pid int) string {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
		require.NoError(t, err)
		return string(b)
	}
	assert.Contains(t, maps(pids[1]), "_ctypes")
	assert.NotContains(t, maps(p.cmd.Process.Pid), "_ctypes")

	assert.Equal(t, 0, p.stop(t), p.stderr())
	log := p.stderr()
	assert.Contains(t, log, `msg="wsgi: worker ready" worker=1`)
	assert.Contains(t, log, `msg="wsgi: worker ready" worker=2`)
	assert.Contains(t, log, `msg="wsgi: stopped" worker=1`, "each worker drains")
	assert.Contains(t, log, `msg="wsgi: stopped" worker=2`)
	assert.Regexp(t, `msg="wsgi: serving" addr=\S+ workers=2`, log)
	assert.NotRegexp(t, `msg="wsgi: serving"[^\n]* python=`, log, "the master never touches Python")
}

// With a config file: the workers key, and the listing names the worker.
func TestWorkersConfig(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `addr = "127.0.0.1:0"
log_format = "json"
workers = 2

[[app]]
name = "hello"
prefix = "/hello"
dir = %[1]q
module = "hello"
`)
	p := start(t, nil, "-config", path)
	base := "http://" + p.addr(t)
	seen := map[int]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for len(seen) < 2 && time.Now().Before(deadline) {
		req, err := http.NewRequest(http.MethodGet, base+"/", nil)
		require.NoError(t, err)
		req.Header.Set("Accept", "application/json")
		req.Close = true
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		require.NoError(t, err)
		var page struct{ Worker int }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&page))
		resp.Body.Close()
		seen[page.Worker] = true
	}
	assert.Equal(t, map[int]bool{1: true, 2: true}, seen, "the listing names the worker that answered")
	code, body := get(t, base+"/hello/x")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "hello script_name='/hello' path_info='/x'\n", body)
	assert.Equal(t, 0, p.stop(t), p.stderr())
	assert.Contains(t, p.stderr(), `"msg":"wsgi: worker ready","worker":2`)
}

// kill -9 of a worker under load: a replacement serves, no new connection
// is refused, only requests on the killed worker's connections may fail.
func TestWorkerKilled(t *testing.T) {
	t.Parallel()
	p, base := startWorkers(t, nil, "")
	pids := twoWorkers(t, base+"/")
	wait := loadFor(base+"/", 4, 2*time.Second)
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, syscall.Kill(pids[2], syscall.SIGKILL))
	r := wait()

	assert.Zero(t, r.refused(), "connections refused: %v", r.failures)
	assert.LessOrEqual(t, len(r.failures), 4, "only requests in flight on the killed worker may fail: %v", r.failures)
	assert.Greater(t, r.ok, 20)
	waitLog(t, p, "signal SIGKILL", 5*time.Second)
	after := twoWorkers(t, base+"/")
	assert.Equal(t, pids[1], after[1], "the other worker serves on")
	assert.NotEqual(t, pids[2], after[2], "a new process replaced worker 2")
	assert.Regexp(t, `msg="wsgi: worker died" worker=2 pid=`+strconv.Itoa(pids[2])+` how="signal SIGKILL \(killed\)"`, p.stderr())
	assert.Equal(t, 0, p.stop(t), p.stderr())
}

// A crash in C code kills only its worker; the master names the signal.
func TestWorkerSegfault(t *testing.T) {
	t.Parallel()
	p, base := startWorkers(t, nil, "")
	before := twoWorkers(t, base+"/")
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(base + "/segv")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("the crash answered %s", resp.Status)
	}
	waitLog(t, p, `crash="SIGSEGV: segmentation violation (in C code)"`, 5*time.Second)
	after := twoWorkers(t, base+"/")
	changed := 0
	for id := range after {
		if after[id] != before[id] {
			changed++
		}
	}
	assert.Equal(t, 1, changed, "one worker replaced: before %v, after %v", before, after)
	assert.Equal(t, 0, p.stop(t), p.stderr())
}

// A worker that cannot import its app stops the start: exit 1 with the
// traceback.
func TestWorkersImportError(t *testing.T) {
	t.Parallel()
	code, _, stderr := runBinary(t, "-addr", "127.0.0.1:0", "-dir", testdata, "-app", "import_error", "-workers", "2")
	assert.Equal(t, 1, code, stderr)
	assert.Contains(t, stderr, "Traceback (most recent call last):")
	assert.Contains(t, stderr, "wsgi_test_no_such_module")
	assert.Contains(t, stderr, "wsgi: a worker failed to start; stopping the others")
	assert.NotContains(t, stderr, `msg="wsgi: serving"`)
}

// Workers that keep dying before they are ready end the master.
func TestWorkersKeepDying(t *testing.T) {
	t.Parallel()
	dir, file, src := copyWorkersApp(t)
	p, base := startWorkers(t, nil, dir)
	pids := twoWorkers(t, base+"/")
	rewrite(t, file, append([]byte("import wsgi_test_no_such_module\n"), src...))
	require.NoError(t, syscall.Kill(pids[1], syscall.SIGKILL))
	// Backoff 0.1+0.2+0.4+0.8 s between the five deaths.
	done := make(chan int, 1)
	go func() { done <- p.wait(t) }()
	select {
	case code := <-done:
		assert.Equal(t, 1, code, p.stderr())
	case <-time.After(20 * time.Second):
		t.Fatalf("the master did not give up:\n%s", p.stderr())
	}
	assert.Contains(t, p.stderr(), "wsgi: workers keep dying before they are ready; giving up")
	assert.Contains(t, p.stderr(), "wsgi_test_no_such_module")
}

// SIGHUP under load: every worker is replaced by one running the code on
// disk, with no failed request.
func TestWorkersSIGHUP(t *testing.T) {
	t.Parallel()
	dir, file, src := copyWorkersApp(t)
	p, base := startWorkers(t, nil, dir)
	pids := twoWorkers(t, base+"/")
	rewrite(t, file, bytes.Replace(src, []byte(`"version 1"`), []byte(`"version 2"`), 1))

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	done := make(chan *loadResult, 1)
	go func() { done <- runLoad(ctx, base+"/", 4) }()
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	waitLog(t, p, "wsgi: rolling restart done", 10*time.Second)
	time.Sleep(300 * time.Millisecond) // the old workers drain; every goroutine asks again
	cancel()
	r := <-done
	assert.Empty(t, r.failures)
	assert.Greater(t, r.versions["version 1"], 0)
	assert.Greater(t, r.versions["version 2"], 0)
	for g, a := range r.last {
		assert.Equal(t, "version 2", a.version, "goroutine %d ends on the new code", g)
	}
	after := twoWorkers(t, base+"/")
	assert.NotEqual(t, pids[1], after[1])
	assert.NotEqual(t, pids[2], after[2])
	assert.Equal(t, "version 2", ask(t, base+"/").version)
	assert.Equal(t, 0, p.stop(t), p.stderr())
}

// SIGHUP with code that does not import: the old workers keep serving.
func TestWorkersSIGHUPImportError(t *testing.T) {
	t.Parallel()
	dir, file, src := copyWorkersApp(t)
	p, base := startWorkers(t, nil, dir)
	pids := twoWorkers(t, base+"/")
	rewrite(t, file, append([]byte("import wsgi_test_no_such_module\n"), src...))

	wait := loadFor(base+"/", 4, 1500*time.Millisecond)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	waitLog(t, p, "wsgi: rolling restart stopped; the old workers keep serving", 10*time.Second)
	r := wait()
	assert.Empty(t, r.failures)
	for pid := range r.pids {
		assert.Contains(t, []int{pids[1], pids[2]}, pid, "only the old workers answered")
	}
	assert.Contains(t, p.stderr(), "wsgi_test_no_such_module", "the new worker's traceback")
	assert.Equal(t, pids, twoWorkers(t, base+"/"))
	assert.Equal(t, 0, p.stop(t), p.stderr())
}

// -max-requests replaces workers under load, with no failed request.
func TestWorkersMaxRequests(t *testing.T) {
	t.Parallel()
	p, base := startWorkers(t, nil, "", "-max-requests", "50", "-max-requests-jitter", "10")
	r := loadFor(base+"/", 4, 2*time.Second)()
	assert.Empty(t, r.failures)
	assert.Greater(t, len(r.pids), 2, "workers were replaced: %d requests", r.ok)
	assert.Contains(t, p.stderr(), `reason=max-requests`)
	assert.Equal(t, 0, p.stop(t), p.stderr())
}

// -max-rss replaces a worker above the limit (1 MiB: at once).
func TestWorkersMaxRSS(t *testing.T) {
	t.Parallel()
	p, base := startWorkers(t, nil, "", "-max-rss", "1")
	waitLog(t, p, "reason=max-rss", 5*time.Second)
	ask(t, base+"/")
	assert.Equal(t, 0, p.stop(t), p.stderr())
}

// SIGTERM to the master lets a slow request finish, then exits 0.
func TestWorkersSIGTERMFinishesRequestInFlight(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "started")
	p, base := startWorkers(t, []string{"WSGI_TEST_STARTED=" + marker}, "")
	type result struct {
		a   answer
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := getAnswer(&http.Client{Timeout: 10 * time.Second}, base+"/slow")
		done <- result{a, err}
	}()
	require.Eventually(t, func() bool {
		_, err := os.Stat(marker)
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "the slow request never started")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, "version 1", r.a.version)
	assert.Equal(t, 0, p.wait(t), p.stderr())
	assert.Contains(t, p.stderr(), `msg="wsgi: stopped"`)
}

// -reload with workers: a change to the code replaces the workers (new
// processes), rather than re-importing in each.
func TestWorkersReload(t *testing.T) {
	t.Parallel()
	dir, file, src := copyWorkersApp(t)
	p, base := startWorkers(t, nil, dir, "-reload")
	pids := twoWorkers(t, base+"/")
	rewrite(t, file, bytes.Replace(src, []byte(`"version 1"`), []byte(`"version 2"`), 1))
	waitLog(t, p, "wsgi: rolling restart done", 10*time.Second)
	after := twoWorkers(t, base+"/")
	assert.NotEqual(t, pids[1], after[1])
	assert.NotEqual(t, pids[2], after[2])
	assert.Equal(t, "version 2", ask(t, base+"/").version)
	assert.Contains(t, p.stderr(), `why="code changed: `+file+`"`)
	assert.NotContains(t, p.stderr(), "wsgi: reloaded the app", "workers do not re-import themselves")
	assert.Equal(t, 0, p.stop(t), p.stderr())
}

// A recycling replacement that cannot import: the old worker serves on.
func TestWorkersRecycleImportError(t *testing.T) {
	t.Parallel()
	dir, file, src := copyWorkersApp(t)
	p, base := startWorkers(t, nil, dir, "-max-requests", "30")
	pids := twoWorkers(t, base+"/")
	rewrite(t, file, append([]byte("import wsgi_test_no_such_module\n"), src...))
	r := loadFor(base+"/", 4, 1500*time.Millisecond)()
	assert.Empty(t, r.failures)
	for pid := range r.pids {
		assert.Contains(t, []int{pids[1], pids[2]}, pid, "only the old workers answered")
	}
	waitLog(t, p, "wsgi: replacement failed; the old worker keeps serving", 5*time.Second)
	assert.Equal(t, 0, p.stop(t), p.stderr())
}

// Workers whose master is killed drain and exit by themselves.
func TestWorkersOrphaned(t *testing.T) {
	t.Parallel()
	p, base := startWorkers(t, nil, "")
	pids := twoWorkers(t, base+"/")
	require.NoError(t, p.cmd.Process.Kill())
	gone := func(pid int) bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		// pid (comm) STATE ...: a zombie has exited.
		i := bytes.LastIndexByte(b, ')')
		return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
	}
	assert.Eventually(t, func() bool { return gone(pids[1]) && gone(pids[2]) }, 10*time.Second, 50*time.Millisecond,
		"the workers outlived their master")
	_ = p.wait(t)
	assert.Contains(t, p.stderr(), "wsgi: the master is gone; stopping")
}

// Each worker runs on a CPU of its own (-pin-workers, the default): every
// thread of it, Python's included, so that its threads do not fight over
// its GIL across CPUs. -pin-workers=false leaves them where the command
// may run.
func TestWorkersPinned(t *testing.T) {
	t.Parallel()
	mine := cpusAllowed(t, os.Getpid())
	if !strings.ContainsAny(mine, ",-") {
		t.Skipf("this process may use only CPU %s: nothing to pin to", mine)
	}
	for _, pin := range []bool{true, false} {
		t.Run(fmt.Sprint("pin=", pin), func(t *testing.T) {
			p, base := startWorkers(t, nil, "", fmt.Sprint("-pin-workers=", pin))
			pids := twoWorkers(t, base+"/")
			seen := map[string]bool{}
			for _, pid := range pids {
				entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
				require.NoError(t, err)
				first := cpusAllowed(t, pid)
				for _, e := range entries { // every thread, the interpreter's too
					tid, _ := strconv.Atoi(e.Name())
					assert.Equal(t, first, cpusAllowedTask(t, pid, tid), "thread %d of worker %d", tid, pid)
				}
				if pin {
					assert.NotContains(t, first, ",", "one CPU")
					assert.NotContains(t, first, "-", "one CPU")
				} else {
					assert.Equal(t, mine, first)
				}
				seen[first] = true
			}
			if pin {
				assert.Len(t, seen, 2, "the two workers are on different CPUs")
			}
			assert.Equal(t, 0, p.stop(t), p.stderr())
		})
	}
}

// cpusAllowed is /proc/PID/status's Cpus_allowed_list.
func cpusAllowed(t *testing.T, pid int) string {
	return cpusAllowedTask(t, pid, pid)
}

func cpusAllowedTask(t *testing.T, pid, tid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no Cpus_allowed_list for %d/%d", pid, tid)
	return ""
}

// -reload with workers on the Django demo: Django's app registry cannot be
// re-imported in a process, so a changed view is served by replaced
// workers.
func TestWorkersReloadDjango(t *testing.T) {
	if os.Getenv("WSGI_TEST_STDLIB_ONLY") != "" {
		t.Skip("WSGI_TEST_STDLIB_ONLY: Django is Debian's, for the system Python")
	}
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS("../../examples/djangoapp")))
	views := filepath.Join(dir, "blog", "views.py")
	src, err := os.ReadFile(views)
	require.NoError(t, err)
	p := start(t, []string{"DEMO_DATA_DIR=" + t.TempDir()}, "-addr", "127.0.0.1:0", "-dir", dir,
		"-module", "demosite.wsgi", "-prefix", "/django", "-workers", "2", "-reload", "-shutdown-timeout", "20s")
	base := "http://" + p.addr(t) + "/django/"
	// A new connection per request: a kept-alive one may still reach an
	// old worker that is draining after "rolling restart done".
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() string {
		resp, err := client.Get(base)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode, string(b))
		return string(b)
	}
	assert.Contains(t, get(), `"app": "django"`)
	rewrite(t, views, bytes.Replace(src, []byte(`"app": "django"`), []byte(`"app": "django, changed"`), 1))
	waitLog(t, p, "wsgi: rolling restart done", 30*time.Second)
	assert.Contains(t, get(), `"app": "django, changed"`)
	assert.Equal(t, 0, p.stop(t), p.stderr())
}

// runKeepAlive sends GETs for path to addr over n connections until ctx
// is done, as wrk does: a connection is kept alive until an answer says
// Connection: close, and a request that fails is not retried (Go's
// client, in runLoad, retries a GET whose reused connection was closed).
func runKeepAlive(ctx context.Context, addr, path string, n int) *loadResult {
	r := &loadResult{pids: map[int]bool{}, versions: map[string]int{}, last: map[int]answer{}}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"
	var wg sync.WaitGroup
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conn net.Conn
			var br *bufio.Reader
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for ctx.Err() == nil {
				a, reopen, err := func() (answer, bool, error) {
					if conn == nil {
						c, err := net.DialTimeout("tcp", addr, 5*time.Second)
						if err != nil {
							return answer{}, false, err
						}
						conn, br = c, bufio.NewReader(c)
					}
					_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
					if _, err := io.WriteString(conn, req); err != nil {
						return answer{}, true, fmt.Errorf("write: %w", err)
					}
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						return answer{}, true, fmt.Errorf("read: %w", err)
					}
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil {
						return answer{}, true, fmt.Errorf("read body: %w", err)
					}
					if resp.StatusCode != http.StatusOK {
						return answer{}, resp.Close, errors.New(resp.Status + ": " + string(b))
					}
					a, ok := parseAnswer(string(b))
					if !ok {
						return answer{}, resp.Close, errors.New("unexpected body: " + string(b))
					}
					return a, resp.Close, nil
				}()
				if reopen && conn != nil {
					conn.Close()
					conn = nil
				}
				r.add(g, a, err)
			}
		}()
	}
	wg.Wait()
	return r
}

// A worker that stops (SIGHUP, recycling) closes its keep-alive
// connections between requests, not under a request the client has sent:
// a client that never retries, as wrk, sees no failure.
func TestWorkersKeepAliveChurn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		args  []string
		churn func(t *testing.T, p *proc) // returns once the workers were replaced
	}{
		{name: "SIGHUP", churn: func(t *testing.T, p *proc) {
			for i := 1; i <= 2; i++ {
				time.Sleep(300 * time.Millisecond)
				require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
				require.Eventually(t, func() bool { return strings.Count(p.stderr(), "wsgi: rolling restart done") == i },
					10*time.Second, 20*time.Millisecond, "rolling restart %d:\n%s", i, p.stderr())
			}
			time.Sleep(300 * time.Millisecond)
		}},
		{name: "max-requests", args: []string{"-max-requests", "150", "-max-requests-jitter", "30"}, churn: func(t *testing.T, p *proc) {
			require.Eventually(t, func() bool { return strings.Count(p.stderr(), "wsgi: replacement worker ready") >= 4 },
				10*time.Second, 20*time.Millisecond, "recycling:\n%s", p.stderr())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, base := startWorkers(t, nil, "", tc.args...)
			before := twoWorkers(t, base+"/")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			done := make(chan *loadResult, 1)
			go func() { done <- runKeepAlive(ctx, strings.TrimPrefix(base, "http://"), "/", 8) }()
			tc.churn(t, p)
			cancel()
			r := <-done
			assert.Empty(t, r.failures, "%d failed of %d", len(r.failures), len(r.failures)+r.ok)
			assert.Greater(t, r.ok, 100)
			for _, pid := range before {
				assert.NotContains(t, twoWorkers(t, base+"/"), pid, "every first worker was replaced")
			}
			assert.Equal(t, 0, p.stop(t), p.stderr())
		})
	}
}

// A replacement that fails to start while the master shuts down (its
// import was still running when SIGTERM came) had no requests: the master
// still exits 0. (TestWorkersRecycleImportError met this race about once
// in a few dozen runs.)
func TestWorkersShutdownDuringFailingReplacement(t *testing.T) {
	t.Parallel()
	dir, file, src := copyWorkersApp(t)
	p, base := startWorkers(t, nil, dir)
	twoWorkers(t, base+"/")
	rewrite(t, file, append([]byte("import time\ntime.sleep(4)\nimport wsgi_test_no_such_module\n"), src...))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	waitLog(t, p, "wsgi: replacing the workers one at a time", 5*time.Second)
	time.Sleep(300 * time.Millisecond) // the replacement is importing (for 4 s)
	assert.Equal(t, 0, p.stop(t), p.stderr())
	assert.Contains(t, p.stderr(), "wsgi: worker stopped before it was ready")
}
