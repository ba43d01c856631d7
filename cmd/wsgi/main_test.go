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
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// binary is the wsgi command, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "wsgi-cmd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "wsgi")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building the wsgi command: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

var testdata = func() string {
	abs, err := filepath.Abs("testdata")
	if err != nil {
		panic(err)
	}
	return abs
}()

// proc is a running wsgi binary whose stderr is collected line by line.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when stderr hits EOF

	mu    sync.Mutex
	lines []string
	addrc chan string // the bound address, from the startup record
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	return startCmd(t, cmd)
}

// startCmd starts cmd, a command that runs the binary, as start does.
func startCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, done: make(chan struct{}), addrc: make(chan string, 1)}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.mu.Unlock()
			if addr := startupAddr(line); addr != "" {
				p.addrc <- addr
			}
		}
	}()
	return p
}

var textAddr = regexp.MustCompile(`msg="wsgi: serving".* addr=(\S+)`)

// startupAddr returns the address in the startup record (text or JSON),
// or "" if line is another record.
func startupAddr(line string) string {
	var rec struct{ Msg, Addr string }
	if json.Unmarshal([]byte(line), &rec) == nil {
		if rec.Msg == "wsgi: serving" {
			return rec.Addr
		}
		return ""
	}
	if m := textAddr.FindStringSubmatch(line); m != nil {
		return m[1]
	}
	return ""
}

// addr waits for the startup record.
func (p *proc) addr(t *testing.T) string {
	t.Helper()
	select {
	case a := <-p.addrc:
		return a
	case <-p.done:
		t.Fatalf("wsgi exited before serving:\n%s", p.stderr())
	case <-time.After(20 * time.Second):
		t.Fatalf("no startup record:\n%s", p.stderr())
	}
	return ""
}

func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	<-p.done // Wait closes the pipe, so read everything first
	err := p.cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("wait: %v", err)
	}
	return p.cmd.ProcessState.ExitCode()
}

// stop sends SIGTERM and waits for the exit code.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	return p.wait(t)
}

// runBinary runs the command to completion, returning its exit code,
// stdout and stderr.
func runBinary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running wsgi: %v", err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestServes(t *testing.T) {
	t.Parallel()
	// The default text log format: the address is parsed from addr=.
	p := start(t, nil, "-addr", "127.0.0.1:0", "-dir", testdata, "-app", "hello:application")
	addr := p.addr(t)
	assert.Contains(t, p.stderr(), "python=3.")

	code, body := get(t, "http://"+addr+"/x")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "hello script_name='' path_info='/x'\n", body)

	assert.Equal(t, 0, p.stop(t), p.stderr())
	assert.Contains(t, p.stderr(), "wsgi: stopped")
}

func TestModuleFlag(t *testing.T) {
	t.Parallel()
	p := start(t, nil, "-addr", "127.0.0.1:0", "-dir", testdata, "-module", "hello", "-log-format", "json")
	code, body := get(t, "http://"+p.addr(t)+"/")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "hello")
	assert.Equal(t, 0, p.stop(t), p.stderr())
}

func TestPrefix(t *testing.T) {
	t.Parallel()
	p := start(t, nil, "-addr", "127.0.0.1:0", "-dir", testdata, "-app", "hello", "-prefix", "/mnt", "-log-format", "json")
	base := "http://" + p.addr(t)

	code, body := get(t, base+"/mnt/x")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "hello script_name='/mnt' path_info='/x'\n", body)

	code, _ = get(t, base+"/x")
	assert.Equal(t, http.StatusNotFound, code)

	assert.Equal(t, 0, p.stop(t), p.stderr())
}

func TestSIGTERMFinishesRequestInFlight(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "started")
	p := start(t, []string{"WSGI_TEST_STARTED=" + marker},
		"-addr", "127.0.0.1:0", "-dir", testdata, "-app", "slow", "-log-format", "json")
	url := "http://" + p.addr(t) + "/"

	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, string(b), err}
	}()
	require.Eventually(t, func() bool {
		_, err := os.Stat(marker)
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "the slow request never started")

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "slow done\n", r.body)
	assert.Equal(t, 0, p.wait(t), p.stderr())
	assert.Contains(t, p.stderr(), "shutting down")
}

func TestShutdownTimeoutExpires(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "started")
	p := start(t, []string{"WSGI_TEST_STARTED=" + marker},
		"-addr", "127.0.0.1:0", "-dir", testdata, "-app", "slow", "-log-format", "json",
		"-shutdown-timeout", "50ms")
	url := "http://" + p.addr(t) + "/"
	go func() {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
		if err == nil {
			resp.Body.Close()
		}
	}()
	require.Eventually(t, func() bool {
		_, err := os.Stat(marker)
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "the slow request never started")
	assert.Equal(t, 1, p.stop(t), p.stderr())
	assert.Contains(t, p.stderr(), "grace period over")
}

func TestSecondSignalKills(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "started")
	p := start(t, []string{"WSGI_TEST_STARTED=" + marker},
		"-addr", "127.0.0.1:0", "-dir", testdata, "-app", "slow", "-log-format", "json")
	url := "http://" + p.addr(t) + "/"
	go func() {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
		if err == nil {
			resp.Body.Close()
		}
	}()
	require.Eventually(t, func() bool {
		_, err := os.Stat(marker)
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "the slow request never started")

	// The first SIGTERM starts a graceful shutdown that would wait for the
	// slow request; a later one must kill the process at once. Keep
	// signalling, since the default action comes back asynchronously.
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for loop := true; loop; {
		select {
		case <-p.done:
			loop = false
		case <-tick.C:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	_ = p.wait(t)
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	assert.True(t, ws.Signaled(), "want death by signal, got %v\n%s", p.cmd.ProcessState, p.stderr())
}

func TestBrokenApps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"syntax error", []string{"-app", "syntax_error"}, []string{"Traceback", "SyntaxError", "syntax_error.py"}},
		{"import error", []string{"-app", "import_error"}, []string{"Traceback", "ModuleNotFoundError", "wsgi_test_no_such_module"}},
		{"missing module", []string{"-app", "no_such_app"}, []string{"Traceback", "ModuleNotFoundError", "no_such_app"}},
		{"missing callable", []string{"-app", "hello:nope"}, []string{"Traceback", "AttributeError", "has no callable 'nope'"}},
		{"json log", []string{"-app", "import_error", "-log-format", "json"}, []string{`"traceback":"Traceback`, "wsgi_test_no_such_module"}},
		{"missing dir", []string{"-app", "hello", "-dir", filepath.Join(testdata, "nope")}, []string{"wsgi: cannot load the app", "no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Port 0 so that a wrongly started server would not collide.
			args := append([]string{"-addr", "127.0.0.1:0", "-dir", testdata}, tc.args...)
			code, _, stderr := runBinary(t, args...)
			assert.Equal(t, 1, code, stderr)
			for _, w := range tc.want {
				assert.Contains(t, stderr, w)
			}
			assert.NotContains(t, stderr, "wsgi: serving", "a broken app must fail before listening")
		})
	}
}

func TestPortTaken(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	code, _, stderr := runBinary(t, "-addr", ln.Addr().String(), "-dir", testdata, "-app", "hello")
	assert.Equal(t, 1, code, stderr)
	assert.Contains(t, stderr, "wsgi: cannot listen")
	assert.Contains(t, stderr, "address already in use")
}

func TestBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-bogus"}, "flag provided but not defined"},
		{"no app", []string{}, "no app"},
		{"app and module", []string{"-app", "hello", "-module", "hello"}, "may not be combined"},
		{"app and callable", []string{"-app", "hello", "-callable", "application"}, "may not be combined"},
		{"log format", []string{"-app", "hello", "-log-format", "xml"}, "-log-format"},
		{"log level", []string{"-app", "hello", "-log-level", "loud"}, "-log-level"},
		{"threads", []string{"-app", "hello", "-threads", "-1"}, "-threads"},
		{"max body", []string{"-app", "hello", "-max-body", "-1"}, "-max-body"},
		{"bad duration", []string{"-app", "hello", "-queue-timeout", "soon"}, "-queue-timeout"},
		{"positional", []string{"-app", "hello", "extra"}, "unexpected arguments: extra"},
		{"workers zero", []string{"-app", "hello", "-workers", "0"}, `workers must be a positive integer or "auto"`},
		{"workers word", []string{"-app", "hello", "-workers", "many"}, "-workers"},
		{"max requests", []string{"-app", "hello", "-max-requests", "-1"}, "-max-requests must not be negative"},
		{"max requests jitter", []string{"-app", "hello", "-max-requests-jitter", "-1"}, "-max-requests-jitter"},
		{"max rss", []string{"-app", "hello", "-max-rss", "-5"}, "-max-rss must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// In process: bad flags are refused before Python starts.
			var stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stderr)
			assert.Equal(t, 2, code)
			assert.Contains(t, stderr.String(), tc.want)
			assert.Contains(t, stderr.String(), "usage: wsgi")
		})
	}

	t.Run("binary", func(t *testing.T) {
		t.Parallel()
		code, _, stderr := runBinary(t, "-bogus")
		assert.Equal(t, 2, code)
		assert.Contains(t, stderr, "usage: wsgi")
	})
}

func TestHelp(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	assert.Equal(t, 0, run(context.Background(), []string{"-h"}, &stderr))
	assert.Contains(t, stderr.String(), "-shutdown-timeout")
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runBinary(t, "-version")
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, "Python 3.")
	assert.Regexp(t, `sys.executable /\S*python3`, stdout)
}

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRunInProcess serves from run itself and stops it through ctx, as
// main does on a signal.
func TestRunInProcess(t *testing.T) {
	serveInProcess(t, []string{"-addr", "127.0.0.1:0", "-dir", testdata, "-app", "hello", "-prefix", "/mnt", "-log-format", "json"},
		"/mnt/in-process", "hello script_name='/mnt' path_info='/in-process'\n")
}

// serveInProcess runs run with args, checks that GET path answers want,
// then cancels run's ctx and checks that run returns 0 and stops listening.
func serveInProcess(t *testing.T, args []string, path, want string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	exit := make(chan int, 1)
	go func() { exit <- run(ctx, args, &stderr) }()

	var addr string
	require.Eventually(t, func() bool {
		for _, line := range strings.Split(stderr.String(), "\n") {
			if addr = startupAddr(line); addr != "" {
				return true
			}
		}
		return false
	}, 20*time.Second, 10*time.Millisecond, "no startup record: %s", &stderr)

	code, body := get(t, "http://"+addr+path)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, want, body)

	cancel()
	select {
	case c := <-exit:
		assert.Equal(t, 0, c, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	_, err := net.DialTimeout("tcp", addr, time.Second)
	assert.Error(t, err, "the listener must be closed after run returns")
}

func TestRunInProcessImportError(t *testing.T) {
	var stderr syncBuffer
	code := run(context.Background(), []string{"-addr", "127.0.0.1:0", "-dir", testdata, "-app", "import_error"}, &stderr)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "Traceback (most recent call last):")
	assert.Contains(t, stderr.String(), "No module named 'wsgi_test_no_such_module'")
}

func TestRunInProcessVersion(t *testing.T) {
	var out bytes.Buffer
	stdout = &out
	defer func() { stdout = os.Stdout }()
	assert.Equal(t, 0, run(context.Background(), []string{"-version"}, io.Discard))
	assert.True(t, strings.HasPrefix(out.String(), "Python 3."), out.String())
}
