// Command bench measures cmd/wsgi side by side with a plain Go net/http
// server (the ceiling) and the usual Python servers: gunicorn (sync and
// gthread), uWSGI, waitress and mod_wsgi for WSGI, uvicorn for ASGI.
//
//	go build -o bin/bench ./bench && bin/bench [-d 5s] [-c 16] [-reps 3] [-servers a,b] [-workloads x,y]
//
// Every server is started afresh for each workload and repetition, pinned
// to CPU 0 (taskset -c 0), on a free port of 127.0.0.1; wrk runs on CPU 1.
// Before measuring, the server's answer is checked once, and a warm-up
// run precedes each measurement. Repetitions are interleaved: each one
// goes round all workloads and servers before the next starts. The
// results (medians over the repetitions) go to bench/results.md and a
// chart to bench/results.png. A server that cannot run is reported "n/a"
// with the reason. Every server started is stopped on exit, Ctrl-C too.
//
// It also serves as the Go net/http ceiling: bench -serve-go ADDR.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	flagDur     = flag.Duration("d", 5*time.Second, "wrk duration of each measurement")
	flagWarmup  = flag.Duration("warmup", time.Second, "wrk warm-up before each measurement")
	flagConns   = flag.Int("c", 16, "wrk connections")
	flagWrkThr  = flag.Int("t", 1, "wrk threads")
	flagReps    = flag.Int("reps", 3, "interleaved repetitions (the median is reported)")
	flagThreads = flag.Int("threads", 8, "Python threads of cmd/wsgi, gunicorn gthread and mod_wsgi (N)")
	flagWorkers = flag.Int("workers", 1, "worker processes of every server that has them (cmd/wsgi -workers, gunicorn -w, "+
		"uWSGI --processes, mod_wsgi processes=, uvicorn --workers); above 1, the multi-core configuration "+
		"(make bench-cores: -workers 2 -server-cpu 0,1 -client-cpu 0,1)")
	flagWSGI    = flag.String("wsgi", "bin/wsgi", "the cmd/wsgi binary to measure")
	flagWSGI313 = flag.String("wsgi-py313", "", "with -workers above 1: a cmd/wsgi built for Python 3.13+ (-tags py313), measured as one process "+
		"with -interpreters N (N = -workers); empty: that row is n/a")
	flagApps      = flag.String("apps", "bench/apps", "directory of the Python apps")
	flagOut       = flag.String("out", "bench/results.md", "markdown results (empty: none)")
	flagPNG       = flag.String("png", "bench/results.png", "chart (empty: none)")
	flagServers   = flag.String("servers", "", "comma-separated servers to run (default all): "+strings.Join(serverKeys(), ","))
	flagWorkloads = flag.String("workloads", "", "comma-separated workloads to run (default all): "+strings.Join(workloadKeys(), ","))
	flagServerCPU = flag.String("server-cpu", "0", "CPU list the servers are pinned to")
	flagClientCPU = flag.String("client-cpu", "1", "CPU list wrk (and this program) are pinned to")
	flagPython    = flag.String("python", "/usr/bin/python3", "the Python that runs uvicorn (Debian's, with its packages)")
	flagServeGo   = flag.String("serve-go", "", "internal: serve the Go net/http ceiling on this address")
	flagFile      = flag.String("file", "", "internal: the file /file sends (with -serve-go)")
)

func main() {
	flag.Parse()
	if *flagServeGo != "" {
		serveGo(*flagServeGo, *flagFile)
		return
	}
	// Keep this program (and the wrk it starts) off the servers' CPU.
	if os.Getenv("BENCH_PINNED") == "" && *flagClientCPU != "" {
		if ts, err := exec.LookPath("taskset"); err == nil {
			exe, err := os.Executable()
			if err == nil {
				env := append(os.Environ(), "BENCH_PINNED=1")
				args := append([]string{"taskset", "-c", *flagClientCPU, exe}, os.Args[1:]...)
				err = syscall.Exec(ts, args, env)
			}
			fmt.Fprintln(os.Stderr, "bench: cannot pin to CPU", *flagClientCPU, err)
		}
	}
	os.Exit(run())
}

// ---------------------------------------------------------------------
// Workloads

// A workload is one URL of one app, and how to check its answer.
type workload struct {
	key, label string
	asgi       bool
	app        string // module:callable in bench/apps
	path       string
	post       int // request body size for POST (0: GET)
	want       func() []byte
	jsonBody   bool // compare as JSON
}

var (
	hello     = []byte("Hello, world!")
	jsonHello = []byte(`{"message":"Hello, World!"}`)
	big       = bytes.Repeat(func() []byte {
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}(), 4096)
	postBody = bytes.Repeat([]byte("x"), 64<<10)
	chunks   = func() []byte {
		var b bytes.Buffer
		for i := range 100 {
			fmt.Fprintf(&b, "chunk %d\n", i)
		}
		return b.Bytes()
	}()
	fileBody []byte // set by run: 10 MiB written to the temp dir
)

const fileSize = 10 << 20

var workloads = []*workload{
	{key: "hello", label: "WSGI hello (13 B)", app: "wsgi_raw:app", path: "/", want: func() []byte { return hello }},
	{key: "flask", label: "Flask JSON", app: "flask_app:app", path: "/json", want: func() []byte { return jsonHello }, jsonBody: true},
	{key: "django", label: "Django JSON", app: "django_app:app", path: "/json", want: func() []byte { return jsonHello }, jsonBody: true},
	{key: "echo64k", label: "POST 64 KiB echo", app: "wsgi_raw:app", path: "/echo", post: 64 << 10, want: func() []byte { return postBody }},
	{key: "1mib", label: "1 MiB response", app: "wsgi_raw:app", path: "/1m", want: func() []byte { return big }},
	{key: "file10m", label: "10 MiB file_wrapper", app: "wsgi_raw:app", path: "/file", want: func() []byte { return fileBody }},
	{key: "stream100", label: "100-chunk stream", app: "wsgi_raw:app", path: "/stream", want: func() []byte { return chunks }},
	{key: "asgi-hello", label: "ASGI hello (13 B)", asgi: true, app: "asgi_raw:app", path: "/", want: func() []byte { return hello }},
	{key: "starlette", label: "Starlette JSON", asgi: true, app: "starlette_app:app", path: "/json", want: func() []byte { return jsonHello }, jsonBody: true},
	{key: "fastapi", label: "FastAPI JSON", asgi: true, app: "fastapi_app:app", path: "/json", want: func() []byte { return jsonHello }, jsonBody: true},
}

func workloadKeys() []string {
	var k []string
	for _, w := range workloads {
		k = append(k, w.key)
	}
	return k
}

// check compares an answer with the workload's expected body.
func (w *workload) check(status int, body []byte) error {
	if status != 200 {
		return fmt.Errorf("status %d, body %q", status, truncate(body))
	}
	want := w.want()
	if w.jsonBody {
		var got, exp any
		if err := json.Unmarshal(body, &got); err != nil {
			return fmt.Errorf("body %q is not JSON: %v", truncate(body), err)
		}
		_ = json.Unmarshal(want, &exp)
		if fmt.Sprint(got) != fmt.Sprint(exp) {
			return fmt.Errorf("body %q, want %q", truncate(body), want)
		}
		return nil
	}
	if !bytes.Equal(body, want) {
		return fmt.Errorf("body of %d bytes %q, want %d bytes %q", len(body), truncate(body), len(want), truncate(want))
	}
	return nil
}

func truncate(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "..."
	}
	return string(b)
}

// ---------------------------------------------------------------------
// Servers

// A server knows how to start itself for a workload on a port.
type server struct {
	key  string
	ours bool // cmd/wsgi
	ceil bool // the Go net/http ceiling
	wsgi bool // serves the WSGI workloads
	asgi bool // serves the ASGI workloads
	// argv is the command line (before taskset) serving w on port; it
	// may write files (config) into dir.
	argv func(e *env, w *workload, port int, dir string) ([]string, error)
	// avail says why the server cannot run here ("" when it can).
	avail func(e *env) string
	// start describes the command line for the report.
	how string
}

// env is what every run shares.
type env struct {
	apps    string // absolute bench/apps
	tmp     string // temp dir, removed at exit
	file    string // the 10 MiB file
	wsgiBin string
	wsgi313 string // cmd/wsgi built for 3.13+ (sub-interpreters), or ""
	self    string
	threads int
	workers int         // worker processes per server (-workers)
	churn   []*churnRun // workers replaced under load (churn.go)
}

// workerArgs is cmd/wsgi's flag for e.workers, or nothing for one.
func (e *env) workerArgs(flag string) []string {
	if e.workers <= 1 {
		return nil
	}
	return []string{flag, strconv.Itoa(e.workers)}
}

func lookFor(bins ...string) func(*env) string {
	return func(*env) string {
		for _, b := range bins {
			if _, err := exec.LookPath(b); err != nil {
				return b + " not installed"
			}
		}
		return ""
	}
}

func pyImports(mods ...string) func(*env) string {
	return func(*env) string {
		out, err := exec.Command(*flagPython, "-c", "import "+strings.Join(mods, ", ")).CombinedOutput()
		if err != nil {
			return "python3 cannot import " + strings.Join(mods, ", ") + ": " + lastLine(string(out))
		}
		return ""
	}
}

var servers = []*server{
	{
		key: "cmd/wsgi", ours: true, wsgi: true, asgi: true,
		how: "bin/wsgi -addr 127.0.0.1:PORT -dir bench/apps -app MODULE:app -protocol wsgi|asgi -threads N -log-level warn",
		argv: func(e *env, w *workload, port int, _ string) ([]string, error) {
			proto := "wsgi"
			if w.asgi {
				proto = "asgi"
			}
			return append([]string{e.wsgiBin, "-addr", addr(port), "-dir", e.apps, "-app", w.app,
				"-protocol", proto, "-threads", strconv.Itoa(e.threads), "-log-level", "warn"}, e.workerArgs("-workers")...), nil
		},
		avail: func(e *env) string {
			if _, err := os.Stat(e.wsgiBin); err != nil {
				return "no " + e.wsgiBin + " (make build)"
			}
			return ""
		},
	},
	{
		key: "cmd/wsgi -threads 1", ours: true, wsgi: true,
		how: "the same with -threads 1: one Python thread, as gunicorn sync, uWSGI and waitress run here",
		argv: func(e *env, w *workload, port int, _ string) ([]string, error) {
			return append([]string{e.wsgiBin, "-addr", addr(port), "-dir", e.apps, "-app", w.app,
				"-protocol", "wsgi", "-threads", "1", "-log-level", "warn"}, e.workerArgs("-workers")...), nil
		},
		avail: func(e *env) string {
			if _, err := os.Stat(e.wsgiBin); err != nil {
				return "no " + e.wsgiBin + " (make build)"
			}
			return ""
		},
	},
	{
		key: "cmd/wsgi -workers 1", ours: true, wsgi: true, asgi: true,
		how: "with -workers above 1 only: cmd/wsgi as one process, for the scaling in the same run",
		argv: func(e *env, w *workload, port int, _ string) ([]string, error) {
			proto := "wsgi"
			if w.asgi {
				proto = "asgi"
			}
			return []string{e.wsgiBin, "-addr", addr(port), "-dir", e.apps, "-app", w.app,
				"-protocol", proto, "-threads", strconv.Itoa(e.threads), "-log-level", "warn"}, nil
		},
		avail: func(e *env) string {
			if e.workers <= 1 {
				return "only with -workers above 1"
			}
			if _, err := os.Stat(e.wsgiBin); err != nil {
				return "no " + e.wsgiBin + " (make build)"
			}
			return ""
		},
	},
	{
		key: "cmd/wsgi -interpreters", ours: true, wsgi: true, asgi: true,
		how: "with -workers N above 1 and -wsgi-py313 only: bin/wsgi-py313 -interpreters N (one process, a sub-interpreter with its own GIL per core; " +
			"PYTHONPATH=/usr/lib/python3/dist-packages for Debian's pure-Python frameworks)",
		argv: func(e *env, w *workload, port int, _ string) ([]string, error) {
			proto := "wsgi"
			if w.asgi {
				proto = "asgi"
			}
			return []string{"env", "PYTHONPATH=/usr/lib/python3/dist-packages", e.wsgi313, "-addr", addr(port), "-dir", e.apps, "-app", w.app,
				"-protocol", proto, "-threads", strconv.Itoa(max(e.threads, e.workers)), "-interpreters", strconv.Itoa(e.workers),
				"-log-level", "warn"}, nil
		},
		avail: func(e *env) string {
			if e.workers <= 1 {
				return "only with -workers above 1"
			}
			if e.wsgi313 == "" {
				return "no -wsgi-py313 binary (make bench-cores builds one when pyenv has 3.13)"
			}
			if _, err := os.Stat(e.wsgi313); err != nil {
				return "no " + e.wsgi313
			}
			return ""
		},
	},
	{
		key: "Go net/http", ceil: true, wsgi: true, asgi: true,
		how: "bench -serve-go 127.0.0.1:PORT (a Go handler doing the same work)",
		argv: func(e *env, w *workload, port int, _ string) ([]string, error) {
			return []string{e.self, "-serve-go", addr(port), "-file", e.file}, nil
		},
		avail: func(*env) string { return "" },
	},
	{
		key: "gunicorn sync", wsgi: true,
		how: "gunicorn -w 1 -k sync -b 127.0.0.1:PORT --log-level warning MODULE:app",
		argv: func(e *env, w *workload, port int, _ string) ([]string, error) {
			return []string{"gunicorn", "-w", strconv.Itoa(e.workers), "-k", "sync", "-b", addr(port), "--log-level", "warning",
				"--chdir", e.apps, w.app}, nil
		},
		avail: lookFor("gunicorn"),
	},
	{
		key: "gunicorn gthread", wsgi: true,
		how: "gunicorn -w 1 -k gthread --threads N -b 127.0.0.1:PORT --log-level warning MODULE:app",
		argv: func(e *env, w *workload, port int, _ string) ([]string, error) {
			return []string{"gunicorn", "-w", strconv.Itoa(e.workers), "-k", "gthread", "--threads", strconv.Itoa(e.threads),
				"-b", addr(port), "--log-level", "warning", "--chdir", e.apps, w.app}, nil
		},
		avail: lookFor("gunicorn"),
	},
	{
		key: "uWSGI", wsgi: true,
		how: "uwsgi-core --plugin python3 --http-socket 127.0.0.1:PORT --add-header 'Connection: close' " +
			"--master --processes 1 --die-on-term --disable-logging --need-app --module MODULE:app",
		argv: func(e *env, w *workload, port int, _ string) ([]string, error) {
			return []string{"uwsgi-core", "--plugin", "python3", "--http-socket", addr(port),
				"--add-header", "Connection: close", "--master", "--processes", strconv.Itoa(e.workers), "--die-on-term",
				"--disable-logging", "--need-app", "--pythonpath", e.apps, "--module", w.app}, nil
		},
		avail: func(*env) string {
			if _, err := exec.LookPath("uwsgi-core"); err != nil {
				return "uwsgi-core not installed"
			}
			if _, err := os.Stat("/usr/lib/uwsgi/plugins/python3_plugin.so"); err != nil {
				return "uwsgi-plugin-python3 not installed"
			}
			return ""
		},
	},
	{
		key: "waitress", wsgi: true,
		how: "waitress-serve --listen=127.0.0.1:PORT --threads=1 MODULE:app",
		argv: func(e *env, w *workload, port int, _ string) ([]string, error) {
			return []string{"waitress-serve", "--listen=" + addr(port), "--threads=1", w.app}, nil
		},
		avail: func(e *env) string {
			if e.workers > 1 {
				return "one process only"
			}
			return lookFor("waitress-serve")(e)
		},
	},
	{
		key: "mod_wsgi", wsgi: true,
		how:  "apache2 -f GENERATED.conf -DFOREGROUND (mpm_event, one child; WSGIDaemonProcess processes=1 threads=N)",
		argv: apacheArgv,
		avail: func(*env) string {
			if _, err := exec.LookPath("apache2"); err != nil {
				return "apache2 not installed"
			}
			if _, err := os.Stat(apacheModules + "/mod_wsgi.so"); err != nil {
				return "libapache2-mod-wsgi-py3 not installed"
			}
			return ""
		},
	},
	{
		key: "uvicorn", asgi: true,
		how: "python3 -m uvicorn --host 127.0.0.1 --port PORT --workers 1 --loop uvloop --http httptools " +
			"--no-access-log --log-level warning MODULE:app",
		argv: func(e *env, w *workload, port int, _ string) ([]string, error) {
			return []string{*flagPython, "-m", "uvicorn", "--host", "127.0.0.1", "--port", strconv.Itoa(port),
				"--workers", strconv.Itoa(e.workers), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
				"--log-level", "warning", "--app-dir", e.apps, w.app}, nil
		},
		avail: pyImports("uvicorn", "uvloop", "httptools"),
	},
}

func serverKeys() []string {
	var k []string
	for _, s := range servers {
		k = append(k, s.key)
	}
	return k
}

func (s *server) serves(w *workload) bool {
	if w.asgi {
		return s.asgi
	}
	return s.wsgi
}

func (s *server) peer() bool { return !s.ours && !s.ceil }

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

const apacheModules = "/usr/lib/apache2/modules"

// apacheConf is a self-contained Apache config: nothing of /etc/apache2
// is read, and everything Apache writes goes to the run's temp dir.
const apacheConf = `ServerRoot "{{DIR}}"
ServerName 127.0.0.1
Listen 127.0.0.1:{{PORT}}
PidFile "{{DIR}}/apache2.pid"
DefaultRuntimeDir "{{DIR}}"
Mutex file:{{DIR}} default
ErrorLog "{{DIR}}/error.log"
LogLevel warn
{{USER}}
LoadModule mpm_event_module {{MODS}}/mod_mpm_event.so
LoadModule authz_core_module {{MODS}}/mod_authz_core.so
LoadModule wsgi_module {{MODS}}/mod_wsgi.so
StartServers 1
ServerLimit 1
ThreadLimit 32
ThreadsPerChild 32
MaxRequestWorkers 32
MinSpareThreads 1
MaxSpareThreads 32
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 15
WSGISocketPrefix "{{DIR}}/wsgi"
WSGIDaemonProcess bench processes={{PROCS}} threads={{THREADS}} python-path={{APPS}} display-name=%{GROUP}
WSGIProcessGroup bench
WSGIApplicationGroup %{GLOBAL}
WSGIScriptAlias / "{{DIR}}/app.wsgi"
<Directory "{{DIR}}">
    Require all granted
</Directory>
`

// apacheArgv writes the config and the WSGI script (which imports the
// workload's app from bench/apps) into dir.
func apacheArgv(e *env, w *workload, port int, dir string) ([]string, error) {
	user := ""
	if os.Getuid() == 0 {
		// Apache refuses to run its children as root: use Debian's
		// www-data, which can read bench/apps and the temp dir.
		user = "User www-data\nGroup www-data"
	}
	conf := strings.NewReplacer("{{DIR}}", dir, "{{PORT}}", strconv.Itoa(port), "{{USER}}", user,
		"{{MODS}}", apacheModules, "{{THREADS}}", strconv.Itoa(e.threads), "{{PROCS}}", strconv.Itoa(e.workers),
		"{{APPS}}", e.apps).Replace(apacheConf)
	mod, callable, _ := strings.Cut(w.app, ":")
	script := fmt.Sprintf("from %s import %s as application\n", mod, callable)
	if err := os.WriteFile(filepath.Join(dir, "apache2.conf"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "app.wsgi"), []byte(script), 0o644); err != nil {
		return nil, err
	}
	return []string{"apache2", "-d", dir, "-f", filepath.Join(dir, "apache2.conf"), "-DFOREGROUND"}, nil
}

// ---------------------------------------------------------------------
// Processes: start, watch, stop

// proc is a started server (its own process group).
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

var (
	procsMu sync.Mutex
	procs   = map[*proc]bool{}
)

// startProc starts argv pinned to the servers' CPU.
func startProc(e *env, argv []string, dir, logPath string) (*proc, error) {
	full := argv
	if *flagServerCPU != "" {
		full = append([]string{"taskset", "-c", *flagServerCPU}, argv...)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BENCH_FILE="+e.file, "PYTHONDONTWRITEBYTECODE=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: logPath}
	procsMu.Lock()
	defer procsMu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	procs[p] = true
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the server's whole process tree: SIGTERM to its group, then
// SIGKILL to the group and to every process of the tree seen before.
func (p *proc) stop(grace time.Duration) {
	pid := p.cmd.Process.Pid
	tree := treeOf(pid)
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	for _, t := range tree {
		if st, err := readStat(t.pid); err == nil && st.start == t.start {
			_ = syscall.Kill(t.pid, syscall.SIGKILL)
		}
	}
	<-p.done
	procsMu.Lock()
	delete(procs, p)
	procsMu.Unlock()
}

func stopAll() {
	procsMu.Lock()
	var ps []*proc
	for p := range procs {
		ps = append(ps, p)
	}
	procsMu.Unlock()
	for _, p := range ps {
		p.stop(3 * time.Second)
	}
}

func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " | ")
}

// pstat is what /proc/PID/stat tells.
type pstat struct {
	pid, ppid int
	start     uint64 // start time, to tell a reused pid
	cpu       uint64 // utime+stime, clock ticks
	rss       uint64 // bytes
}

func readStat(pid int) (pstat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return pstat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return pstat{}, errors.New("bad stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): field n is f[n-3].
	if len(f) < 22 {
		return pstat{}, errors.New("short stat")
	}
	num := func(n int) uint64 { v, _ := strconv.ParseUint(f[n-3], 10, 64); return v }
	return pstat{pid: pid, ppid: int(num(4)), start: num(22), cpu: num(14) + num(15),
		rss: num(24) * uint64(os.Getpagesize())}, nil
}

// treeOf returns root and all its descendants.
func treeOf(root int) []pstat {
	ents, _ := os.ReadDir("/proc")
	children := map[int][]pstat{}
	var rootStat *pstat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		if pid == root {
			rootStat = &st
		}
		children[st.ppid] = append(children[st.ppid], st)
	}
	if rootStat == nil {
		return nil
	}
	out := []pstat{*rootStat}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i].pid]...)
	}
	return out
}

// sampler samples the tree's RSS every 100 ms and keeps each process's
// last CPU time.
type sampler struct {
	root    int
	mu      sync.Mutex
	peak    uint64         // largest sum of RSS over the tree
	procMax uint64         // largest RSS of one process
	last    map[int]uint64 // pid -> last CPU ticks seen
	stop    chan struct{}
	done    chan struct{}
}

func newSampler(root int) *sampler {
	s := &sampler{root: root, last: map[int]uint64{}, stop: make(chan struct{}), done: make(chan struct{})}
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				s.sample()
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *sampler) sample() {
	tree := treeOf(s.root)
	var sum uint64
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range tree {
		sum += p.rss
		s.procMax = max(s.procMax, p.rss)
		s.last[p.pid] = p.cpu
	}
	s.peak = max(s.peak, sum)
}

// cpu returns a snapshot of CPU ticks per pid of the tree now.
func (s *sampler) cpu() map[int]uint64 {
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]uint64, len(s.last))
	for k, v := range s.last {
		out[k] = v
	}
	return out
}

func (s *sampler) finish() (peak, procMax uint64) {
	close(s.stop)
	<-s.done
	return s.peak, s.procMax
}

const clockTicks = 100 // USER_HZ on Linux

// contextSwitches sums the voluntary and involuntary context switches of
// every thread of root's process tree (/proc/PID/task/TID/status). A
// thread that ended takes its count with it; servers keep theirs.
func contextSwitches(root int) uint64 {
	var n uint64
	for _, p := range treeOf(root) {
		tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(p.pid) + "/task")
		for _, t := range tasks {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/task/" + t.Name() + "/status")
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
					c, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
					n += c
				}
			}
		}
	}
	return n
}

func cpuDelta(before, after map[int]uint64) time.Duration {
	var ticks uint64
	for pid, a := range after {
		ticks += a - min(a, before[pid])
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// ---------------------------------------------------------------------
// wrk

type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
	requests int
	read     int // socket read errors: wrk counts one per answer that ends by closing the connection
	other    int // connect, write and timeout errors
	non2xx   int
}

var (
	reRPS     = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reReqs    = regexp.MustCompile(`(\d+) requests in`)
	rePct     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$`)
	reSockErr = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func runWrk(ctx context.Context, e *env, w *workload, port int, d time.Duration) (wrkResult, error) {
	args := []string{"-t" + strconv.Itoa(*flagWrkThr), "-c" + strconv.Itoa(*flagConns),
		"-d" + strconv.Itoa(int(math.Max(1, math.Round(d.Seconds())))) + "s", "--latency", "--timeout", "5s"}
	if w.post > 0 {
		args = append(args, "-s", filepath.Join(e.tmp, "post.lua"))
	}
	args = append(args, "http://"+addr(port)+w.path)
	cmd := exec.CommandContext(ctx, "wrk", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v: %s", err, lastLine(string(out)))
	}
	return parseWrk(string(out))
}

func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk: no Requests/sec in %q", out)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	if m := reReqs.FindStringSubmatch(out); m != nil {
		r.requests, _ = strconv.Atoi(m[1])
	}
	for _, m := range rePct.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute}[m[3]]
		d := time.Duration(v * float64(unit))
		if m[1] == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if m := reSockErr.FindStringSubmatch(out); m != nil {
		for i, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			if i == 1 {
				r.read += n
			} else {
				r.other += n
			}
		}
	}
	if m := reNon2xx.FindStringSubmatch(out); m != nil {
		r.non2xx, _ = strconv.Atoi(m[1])
	}
	return r, nil
}

// ---------------------------------------------------------------------
// One measurement

type measurement struct {
	wrkResult
	peakRSS, procRSS uint64
	cpuPerReq        time.Duration
	cswPerReq        float64 // context switches of the server's threads per request
}

type cell struct {
	na   string // why the server could not run this workload
	runs []measurement
}

// measure starts s for w, checks its answer, warms it up, measures and
// stops it.
func measure(ctx context.Context, e *env, s *server, w *workload, rep int) (measurement, error) {
	port, err := freePort()
	if err != nil {
		return measurement{}, err
	}
	dir := filepath.Join(e.tmp, fmt.Sprintf("%s-%s-%d", sanitize(s.key), w.key, rep))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return measurement{}, err
	}
	argv, err := s.argv(e, w, port, dir)
	if err != nil {
		return measurement{}, err
	}
	p, err := startProc(e, argv, e.apps, filepath.Join(dir, "server.log"))
	if err != nil {
		return measurement{}, err
	}
	defer p.stop(10 * time.Second)
	if err := waitReady(ctx, p, w, port); err != nil {
		return measurement{}, err
	}
	smp := newSampler(p.cmd.Process.Pid)
	if *flagWarmup > 0 {
		if _, err := runWrk(ctx, e, w, port, *flagWarmup); err != nil {
			smp.finish()
			return measurement{}, fmt.Errorf("warm-up: %v", err)
		}
	}
	before, cswBefore := smp.cpu(), contextSwitches(p.cmd.Process.Pid)
	r, err := runWrk(ctx, e, w, port, *flagDur)
	after, cswAfter := smp.cpu(), contextSwitches(p.cmd.Process.Pid)
	peak, procMax := smp.finish()
	if err != nil {
		return measurement{}, err
	}
	if p.exited() {
		return measurement{}, fmt.Errorf("server exited during the run: %s", p.logTail())
	}
	m := measurement{wrkResult: r, peakRSS: peak, procRSS: procMax}
	if r.requests > 0 {
		m.cpuPerReq = cpuDelta(before, after) / time.Duration(r.requests)
		m.cswPerReq = float64(cswAfter-min(cswAfter, cswBefore)) / float64(r.requests)
	}
	return m, nil
}

// waitReady polls until the server answers, then checks the answer.
func waitReady(ctx context.Context, p *proc, w *workload, port int) error {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p.exited() {
			return fmt.Errorf("server exited: %s", p.logTail())
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		conn, err := net.DialTimeout("tcp", addr(port), time.Second)
		if err == nil {
			conn.Close()
			var req *http.Request
			if w.post > 0 {
				req, _ = http.NewRequest("POST", "http://"+addr(port)+w.path, bytes.NewReader(postBody[:w.post]))
				req.Header.Set("Content-Type", "application/octet-stream")
			} else {
				req, _ = http.NewRequest("GET", "http://"+addr(port)+w.path, nil)
			}
			resp, err := client.Do(req)
			if err == nil {
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					return fmt.Errorf("reading the answer: %v", err)
				}
				if err := w.check(resp.StatusCode, body); err != nil {
					return fmt.Errorf("wrong answer: %v (log: %s)", err, p.logTail())
				}
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer on %s after 30s: %s", addr(port), p.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// ---------------------------------------------------------------------
// The run

func run() int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	var tmp string
	go func() {
		sig := <-sigc
		fmt.Fprintf(os.Stderr, "\nbench: %v: stopping the servers\n", sig)
		cancel()
		stopAll()
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		os.Exit(130)
	}()

	if _, err := exec.LookPath("wrk"); err != nil {
		fmt.Fprintln(os.Stderr, "bench: wrk not installed (make bench-install)")
		return 1
	}
	e, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	tmp = e.tmp
	defer os.RemoveAll(e.tmp)
	defer stopAll()

	ss, ws, err := selected()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	cells := map[string]*cell{} // workload/server
	na := map[*server]string{}
	for _, s := range ss {
		na[s] = s.avail(e)
		if na[s] != "" {
			fmt.Fprintf(os.Stderr, "bench: %s n/a: %s\n", s.key, na[s])
		}
	}
	started := time.Now()
	for rep := 1; rep <= *flagReps; rep++ {
		for _, w := range ws {
			for _, s := range ss {
				if !s.serves(w) {
					continue
				}
				c := cells[w.key+"/"+s.key]
				if c == nil {
					c = &cell{na: na[s]}
					cells[w.key+"/"+s.key] = c
				}
				if c.na != "" {
					continue
				}
				m, err := measure(ctx, e, s, w, rep)
				if ctx.Err() != nil {
					return 130
				}
				if err != nil {
					c.na = err.Error()
					fmt.Fprintf(os.Stderr, "rep %d %-10s %-16s n/a: %v\n", rep, w.key, s.key, err)
					continue
				}
				c.runs = append(c.runs, m)
				fmt.Fprintf(os.Stderr, "rep %d %-10s %-19s %9.0f req/s  p50 %-8s p99 %-8s rss %5.1f MiB  cpu %s/req  errors %s\n",
					rep, w.key, s.key, m.rps, fmtDur(m.p50), fmtDur(m.p99), mib(m.peakRSS), fmtCPU(m.cpuPerReq), fmtErrors(m.wrkResult))
			}
		}
	}
	res := summarize(ss, ws, cells)
	e.churn = measureChurn(ctx, e, ss, ws, res)
	if ctx.Err() != nil {
		return 130
	}
	elapsed := time.Since(started)
	md := report(e, ss, ws, res, elapsed)
	fmt.Print(md)
	if *flagOut != "" {
		if err := os.WriteFile(*flagOut, []byte(md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "bench: wrote", *flagOut)
	}
	if *flagPNG != "" {
		if err := chart(ss, ws, res, *flagPNG); err != nil {
			fmt.Fprintln(os.Stderr, "bench: chart:", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "bench: wrote", *flagPNG)
	}
	return 0
}

func setup() (*env, error) {
	apps, err := filepath.Abs(*flagApps)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(apps, "wsgi_raw.py")); err != nil {
		return nil, fmt.Errorf("no apps in %s (run from the repository root, or set -apps)", apps)
	}
	wsgiBin, err := filepath.Abs(*flagWSGI)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "wsgi-bench-")
	if err != nil {
		return nil, err
	}
	// mod_wsgi's daemon runs as www-data when we are root: it must read
	// the file and reach its socket and script here.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	e := &env{apps: apps, tmp: tmp, file: filepath.Join(tmp, "file-10m.bin"), wsgiBin: wsgiBin, self: self, threads: *flagThreads, workers: max(*flagWorkers, 1)}
	if *flagWSGI313 != "" {
		if e.wsgi313, err = filepath.Abs(*flagWSGI313); err != nil {
			return nil, err
		}
	}
	fileBody = make([]byte, fileSize)
	for i := range fileBody {
		fileBody[i] = byte(i*7 + i>>12)
	}
	if err := os.WriteFile(e.file, fileBody, 0o644); err != nil {
		return nil, err
	}
	lua := fmt.Sprintf("wrk.method = \"POST\"\nwrk.body = string.rep(\"x\", %d)\nwrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n", 64<<10)
	if err := os.WriteFile(filepath.Join(tmp, "post.lua"), []byte(lua), 0o644); err != nil {
		return nil, err
	}
	return e, nil
}

func selected() ([]*server, []*workload, error) {
	pick := func(list string, keys []string) (map[string]bool, error) {
		if list == "" {
			return nil, nil
		}
		m := map[string]bool{}
		for _, k := range strings.Split(list, ",") {
			k = strings.TrimSpace(k)
			found := false
			for _, key := range keys {
				if strings.EqualFold(k, key) {
					m[key], found = true, true
				}
			}
			if !found {
				return nil, fmt.Errorf("unknown %q (known: %s)", k, strings.Join(keys, ", "))
			}
		}
		return m, nil
	}
	sm, err := pick(*flagServers, serverKeys())
	if err != nil {
		return nil, nil, err
	}
	wm, err := pick(*flagWorkloads, workloadKeys())
	if err != nil {
		return nil, nil, err
	}
	var ss []*server
	for _, s := range servers {
		if sm == nil || sm[s.key] {
			ss = append(ss, s)
		}
	}
	var ws []*workload
	for _, w := range workloads {
		if wm == nil || wm[w.key] {
			ws = append(ws, w)
		}
	}
	return ss, ws, nil
}

// ---------------------------------------------------------------------
// Summary

// result is the median of a cell's runs.
type result struct {
	na               string
	rps, rpsMin      float64
	rpsMax           float64
	p50, p99         time.Duration
	peakRSS, procRSS uint64
	cpuPerReq        time.Duration
	cswPerReq        float64
	errs             wrkResult // error counts summed over the runs
	requests         int
	runs             int
	vsGo, vsPeer     float64 // NaN when unknown
}

func median[T int | int64 | uint64 | float64 | time.Duration](xs []T) T {
	s := append([]T(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func summarize(ss []*server, ws []*workload, cells map[string]*cell) map[string]*result {
	res := map[string]*result{}
	for _, w := range ws {
		for _, s := range ss {
			c := cells[w.key+"/"+s.key]
			if c == nil {
				continue
			}
			r := &result{na: c.na, vsGo: math.NaN(), vsPeer: math.NaN()}
			res[w.key+"/"+s.key] = r
			if len(c.runs) == 0 {
				if r.na == "" {
					r.na = "not run"
				}
				continue
			}
			r.runs = len(c.runs)
			var rps []float64
			var p50, p99, cpu []time.Duration
			var rss, prss []uint64
			var csw []float64
			for _, m := range c.runs {
				rps = append(rps, m.rps)
				p50 = append(p50, m.p50)
				p99 = append(p99, m.p99)
				cpu = append(cpu, m.cpuPerReq)
				csw = append(csw, m.cswPerReq)
				rss = append(rss, m.peakRSS)
				prss = append(prss, m.procRSS)
				r.errs.read += m.read
				r.errs.other += m.other
				r.errs.non2xx += m.non2xx
				r.requests += m.requests
			}
			r.rps, r.p50, r.p99, r.cpuPerReq, r.cswPerReq = median(rps), median(p50), median(p99), median(cpu), median(csw)
			r.peakRSS, r.procRSS = median(rss), median(prss)
			r.rpsMin, r.rpsMax = slicesMin(rps), slicesMax(rps)
		}
		goRes := res[w.key+"/Go net/http"]
		best := bestPeer(ss, w, res)
		for _, s := range ss {
			r := res[w.key+"/"+s.key]
			if r == nil || r.runs == 0 {
				continue
			}
			if goRes != nil && goRes.runs > 0 {
				r.vsGo = r.rps / goRes.rps
			}
			if best != nil {
				r.vsPeer = r.rps / best.rps
			}
		}
	}
	return res
}

func slicesMin(xs []float64) float64 {
	m := math.Inf(1)
	for _, x := range xs {
		m = math.Min(m, x)
	}
	return m
}

func slicesMax(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = math.Max(m, x)
	}
	return m
}

// bestPeer is the peer with the most req/s on w.
func bestPeer(ss []*server, w *workload, res map[string]*result) *result {
	var best *result
	for _, s := range ss {
		r := res[w.key+"/"+s.key]
		if s.peer() && r != nil && r.runs > 0 && (best == nil || r.rps > best.rps) {
			best = r
		}
	}
	return best
}

func bestPeerKey(ss []*server, w *workload, res map[string]*result) string {
	best := bestPeer(ss, w, res)
	for _, s := range ss {
		if s.peer() && res[w.key+"/"+s.key] == best {
			return s.key
		}
	}
	return ""
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

func fmtRatio(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.2fx", x)
}

func fmtRPS(x float64) string {
	if x >= 100 {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.1f", x)
}

// ---------------------------------------------------------------------
// Report

func report(e *env, ss []*server, ws []*workload, res map[string]*result, elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# cmd/wsgi against other servers\n\n")
	fmt.Fprintf(&b, "Written by `make bench` (`%s`), %s, in %s.\n\n", commandLine(), time.Now().UTC().Format("2006-01-02 15:04 MST"), elapsed.Round(time.Second))
	fmt.Fprintf(&b, "Machine: %s. %s.\n\n", machine(), versions(e))
	fmt.Fprintf(&b, "Method: on 127.0.0.1, each server pinned to CPU %s (`taskset -c %s`), `wrk -t%d -c%d -d%s --latency` on CPU %s; "+
		"a fresh server per workload and repetition, its answer checked once, then a %s warm-up; "+
		"median of %d repetitions interleaved round-robin over the servers. "+
		"Peak RSS: the largest sum of VmRSS over the server's process tree, sampled every 100 ms "+
		"(\"largest process\": the biggest single process, e.g. uWSGI's worker). CPU/req: utime+stime of the "+
		"process tree over the measured run divided by the requests; cs/req: the context switches of the tree's threads "+
		"(voluntary and involuntary, /proc/PID/task/*/status) likewise. \"vs Go\": req/s over the Go net/http "+
		"handler doing the same work; \"vs best peer\": over the fastest Python server on that workload. "+
		"Errors: wrk's non-2xx answers and socket errors, summed over the repetitions; "+
		"† wrk counts a read error for each answer that ends by closing the connection (uWSGI with `Connection: close` "+
		"on answers without Content-Length: Django's JSON, the stream), though the answer is whole. N = %d threads for cmd/wsgi, gunicorn gthread and mod_wsgi; "+
		"%d worker process(es) for every server that has them (waitress has not).\n\n",
		*flagServerCPU, *flagServerCPU, *flagWrkThr, *flagConns, *flagDur, *flagClientCPU, *flagWarmup, *flagReps, e.threads, e.workers)

	b.WriteString("## Targets\n\n")
	if e.workers > 1 {
		b.WriteString(workerTargets(e, ss, ws, res))
	} else {
		b.WriteString(targets(ss, ws, res))
	}

	b.WriteString("\n## Results\n\n")
	b.WriteString("| workload | server | req/s | vs Go | vs best peer | p50 | p99 | peak RSS (tree) | largest process | CPU/req | cs/req | errors |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, w := range ws {
		for _, s := range ss {
			r := res[w.key+"/"+s.key]
			if r == nil {
				continue
			}
			name := s.key
			if s.ours {
				name = "**" + name + "**"
			}
			if r.runs == 0 {
				fmt.Fprintf(&b, "| %s | %s | n/a: %s | | | | | | | | | |\n", w.label, name, mdEscape(r.na))
				continue
			}
			rps := fmtRPS(r.rps)
			if s.ours {
				rps = "**" + rps + "**"
			}
			errs := fmtErrors(r.errs)
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %.1f MiB | %.1f MiB | %s | %.2f | %s |\n",
				w.label, name, rps, fmtRatio(r.vsGo), fmtRatio(r.vsPeer), fmtDur(r.p50), fmtDur(r.p99),
				mib(r.peakRSS), mib(r.procRSS), fmtCPU(r.cpuPerReq), r.cswPerReq, errs)
		}
	}
	b.WriteString("\nHow each server was started (PORT a free port, MODULE the workload's app in bench/apps):\n\n")
	for _, s := range ss {
		fmt.Fprintf(&b, "- %s: `%s`\n", s.key, s.how)
	}
	b.WriteString(churnSection(e, e.churn))
	return b.String()
}

func fmtErrors(r wrkResult) string {
	var parts []string
	for _, e := range []struct {
		n    int
		what string
	}{{r.non2xx, "non-2xx"}, {r.other, "socket"}, {r.read, "read†"}} {
		if e.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", e.n, e.what))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

func fmtCPU(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	if len(s) > 600 {
		s = s[:600] + "..."
	}
	return s
}

// targets checks the targets against this run, for cmd/wsgi
// with -threads N and with -threads 1.
func targets(ss []*server, ws []*workload, res map[string]*result) string {
	get := func(wk, sk string) *result {
		if r := res[wk+"/"+sk]; r != nil && r.runs > 0 {
			return r
		}
		return nil
	}
	wl := func(k string) *workload {
		for _, w := range ws {
			if w.key == k {
				return w
			}
		}
		return nil
	}
	// A check returns what it measured for one cmd/wsgi variant, whether
	// the target is met, and false when it could not be checked.
	type check func(ours string) (string, bool, bool)
	ratio := func(wk string, vsGo bool, want float64) check {
		return func(oursKey string) (string, bool, bool) {
			w, ours := wl(wk), get(wk, oursKey)
			if w == nil || ours == nil {
				return "", false, false
			}
			x, what := ours.vsGo, "Go net/http"
			if !vsGo {
				x, what = ours.vsPeer, bestPeerKey(ss, w, res)
			}
			if math.IsNaN(x) {
				return "", false, false
			}
			return fmt.Sprintf("%.2fx %s", x, what), x >= want, true
		}
	}
	p99 := func(oursKey string) (string, bool, bool) {
		var worse []string
		checked := 0
		for _, w := range ws {
			ours, best := get(w.key, oursKey), bestPeer(ss, w, res)
			if ours == nil || best == nil {
				continue
			}
			checked++
			if ours.p99 > best.p99 {
				worse = append(worse, fmt.Sprintf("%s %s vs %s %s", w.label, fmtDur(ours.p99), bestPeerKey(ss, w, res), fmtDur(best.p99)))
			}
		}
		if checked == 0 {
			return "", false, false
		}
		m := fmt.Sprintf("no worse on %d of %d workloads", checked-len(worse), checked)
		if len(worse) > 0 {
			m += "; worse: " + strings.Join(worse, "; ")
		}
		return m, len(worse) == 0, true
	}
	rss := func(oursKey string) (string, bool, bool) {
		var over []string
		checked := 0
		for _, w := range ws {
			ours, uw := get(w.key, oursKey), get(w.key, "uWSGI")
			if ours == nil || uw == nil {
				continue
			}
			checked++
			if ours.peakRSS > uw.procRSS+10<<20 {
				over = append(over, fmt.Sprintf("%s %.1f vs %.1f+10 MiB", w.label, mib(ours.peakRSS), mib(uw.procRSS)))
			}
		}
		if checked == 0 {
			return "", false, false
		}
		m := fmt.Sprintf("within on %d of %d WSGI workloads", checked-len(over), checked)
		if len(over) > 0 {
			m += "; over: " + strings.Join(over, "; ")
		}
		return m, len(over) == 0, true
	}
	list := []struct {
		name string
		c    check
	}{
		{"WSGI hello >= 0.65x Go net/http", ratio("hello", true, 0.65)},
		{"WSGI hello >= 2.5x the best WSGI peer", ratio("hello", false, 2.5)},
		{"Flask JSON >= 1.3x the best WSGI peer", ratio("flask", false, 1.3)},
		{"POST 64 KiB echo >= 0.8x Go", ratio("echo64k", true, 0.8)},
		{"1 MiB response >= 0.9x Go", ratio("1mib", true, 0.9)},
		{"10 MiB file_wrapper >= 0.9x Go", ratio("file10m", true, 0.9)},
		{"ASGI hello >= 1.1x uvicorn", ratio("asgi-hello", false, 1.1)},
		{"Starlette JSON >= 1.2x uvicorn", ratio("starlette", false, 1.2)},
		{"FastAPI JSON >= 1.2x uvicorn", ratio("fastapi", false, 1.2)},
		{"context switches per request on ASGI hello < 0.1", func(oursKey string) (string, bool, bool) {
			ours := get("asgi-hello", oursKey)
			if ours == nil {
				return "", false, false
			}
			return fmt.Sprintf("%.3f", ours.cswPerReq), ours.cswPerReq < 0.1, true
		}},
		{"p99 no worse than the best peer's (the peer with the most req/s, each workload)", p99},
		{"peak RSS <= uWSGI's single worker + 10 MiB", rss},
	}
	variants := []string{"cmd/wsgi", "cmd/wsgi -threads 1"}
	var b strings.Builder
	fmt.Fprintf(&b, "| target | cmd/wsgi (-threads %d) | met | cmd/wsgi -threads 1 | met |\n|---|---|---|---|---|\n", *flagThreads)
	for _, t := range list {
		row := "| " + t.name
		some := false
		for _, v := range variants {
			m, ok, done := t.c(v)
			if !done {
				row += " | - | -"
				continue
			}
			some = true
			verdict := "**no**"
			if ok {
				verdict = "yes"
			}
			row += " | " + mdEscape(m) + " | " + verdict
		}
		if some {
			b.WriteString(row + " |\n")
		}
	}
	return b.String()
}

// workerTargets are the targets of the multi-core configuration: cmd/wsgi
// with N workers ahead of the best peer with N workers on each workload,
// Flask JSON scaling over cmd/wsgi as one process in the same run, and a
// worker's RSS within one process's + 2 MiB.
func workerTargets(e *env, ss []*server, ws []*workload, res map[string]*result) string {
	get := func(wk, sk string) *result {
		if r := res[wk+"/"+sk]; r != nil && r.runs > 0 {
			return r
		}
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| target (%d workers) | result | met |\n|---|---|---|\n", e.workers)
	row := func(name, result string, ok bool) {
		verdict := "**no**"
		if ok {
			verdict = "yes"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", name, mdEscape(result), verdict)
	}
	for _, w := range ws {
		ours, best := get(w.key, "cmd/wsgi"), bestPeer(ss, w, res)
		if ours == nil || best == nil {
			continue
		}
		row(w.label+": cmd/wsgi ahead of the best peer",
			fmt.Sprintf("%.2fx %s", ours.rps/best.rps, bestPeerKey(ss, w, res)), ours.rps > best.rps)
	}
	if multi, one := get("flask", "cmd/wsgi"), get("flask", "cmd/wsgi -workers 1"); multi != nil && one != nil {
		x := multi.rps / one.rps
		row(fmt.Sprintf("Flask JSON with %d workers >= 1.7x one process", e.workers), fmt.Sprintf("%.2fx", x), x >= 1.7)
	}
	var over []string
	checked := 0
	for _, w := range ws {
		multi, one := get(w.key, "cmd/wsgi"), get(w.key, "cmd/wsgi -workers 1")
		if multi == nil || one == nil {
			continue
		}
		checked++
		if multi.procRSS > one.peakRSS+2<<20 {
			over = append(over, fmt.Sprintf("%s %.1f vs %.1f+2 MiB", w.label, mib(multi.procRSS), mib(one.peakRSS)))
		}
	}
	if checked > 0 {
		m := fmt.Sprintf("within on %d of %d workloads", checked-len(over), checked)
		if len(over) > 0 {
			m += "; over: " + strings.Join(over, "; ")
		}
		row("a worker's peak RSS <= one process's + 2 MiB", m, len(over) == 0)
	}
	b.WriteString(churnTargets(e.churn))
	return b.String()
}

func commandLine() string {
	args := []string{"bench"}
	for _, a := range os.Args[1:] {
		if strings.ContainsAny(a, " '\"") {
			a = "'" + a + "'"
		}
		args = append(args, a)
	}
	return strings.Join(args, " ")
}

func machine() string {
	model, cores := "unknown CPU", 0 // runtime.NumCPU counts only the CPUs we are pinned to
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				cores++
			}
		}
		f.Close()
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	osName := ""
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				osName = ", " + strings.Trim(v, `"`)
			}
		}
	}
	return fmt.Sprintf("%s, %d cores%s%s, %s", model, cores, osName, kernel, runtime.Version())
}

func versions(e *env) string {
	var parts []string
	if out, err := exec.Command(e.wsgiBin, "-version").Output(); err == nil {
		parts = append(parts, strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0])
	}
	pkgs := []string{"gunicorn", "uwsgi-core", "python3-waitress", "apache2", "libapache2-mod-wsgi-py3",
		"python3-uvicorn", "python3-flask", "python3-django", "python3-starlette", "python3-fastapi", "wrk"}
	out, _ := exec.Command("dpkg-query", append([]string{"-W", "-f=${Package} ${Version}\\n"}, pkgs...)...).Output()
	var vs []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if name, v, ok := strings.Cut(l, " "); ok && v != "" {
			vs = append(vs, strings.TrimPrefix(name, "python3-")+" "+v)
		}
	}
	if len(vs) > 0 {
		parts = append(parts, "Debian packages: "+strings.Join(vs, ", "))
	}
	return strings.Join(parts, "; ")
}

// ---------------------------------------------------------------------
// The Go net/http ceiling

// serveGo serves the same work as bench/apps in Go.
func serveGo(address, file string) {
	pool := sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}
	chunkList := make([][]byte, 100)
	for i := range chunkList {
		chunkList[i] = []byte(fmt.Sprintf("chunk %d\n", i))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "13")
		_, _ = w.Write(hello)
	})
	mux.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal(map[string]string{"message": "Hello, World!"})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		bp := pool.Get().(*[]byte)
		defer pool.Put(bp)
		n := int(r.ContentLength)
		if n < 0 || n > 16<<20 {
			http.Error(w, "bad length", http.StatusBadRequest)
			return
		}
		if cap(*bp) < n {
			*bp = make([]byte, n)
		}
		buf := (*bp)[:n]
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		_, _ = w.Write(buf)
	})
	mux.HandleFunc("/1m", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		_, _ = w.Write(big)
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(file)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(st.Size(), 10))
		_, _ = io.Copy(w, f) // sendfile
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fl, _ := w.(http.Flusher)
		for _, c := range chunkList {
			_, _ = w.Write(c)
			if fl != nil {
				fl.Flush()
			}
		}
	})
	srv := &http.Server{Addr: address, Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "serve-go:", err)
		os.Exit(1)
	}
}
