package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi/debugview"
)

func TestCheckAdminAddr(t *testing.T) {
	tests := []struct {
		addr   string
		public bool
		ok     bool
	}{
		{"127.0.0.1:9090", false, true},
		{"127.0.0.2:0", false, true},
		{"[::1]:9090", false, true},
		{"localhost:9090", false, true},
		{":9090", false, false},
		{"0.0.0.0:9090", false, false},
		{"[::]:9090", false, false},
		{"192.0.2.1:9090", false, false},
		{"example.com:9090", false, false},
		{"0.0.0.0:9090", true, true},
		{":9090", true, true},
		{"127.0.0.1", false, false}, // no port
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := checkAdminAddr(tt.addr, tt.public)
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}

// A public admin address needs -admin-public, with flags and in a file.
func TestAdminRefusesPublicAddr(t *testing.T) {
	t.Parallel()
	code, _, stderr := runBinary(t, "-addr", "127.0.0.1:0", "-dir", testdata, "-app", "admin", "-admin-addr", "0.0.0.0:0")
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr, "is not loopback")
	assert.Contains(t, stderr, "-admin-public")

	cfg := writeConfig(t, "admin_addr = \":0\"\n[[app]]\nname = \"a\"\ndir = %[1]q\nmodule = \"admin\"\n")
	code, _, stderr = runBinary(t, "-addr", "127.0.0.1:0", "-config", cfg, "-workers", "2")
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr, "is not loopback")
}

var adminAddrRe = regexp.MustCompile(`"msg":"wsgi: admin endpoint"[^}]*"addr":"([^"]+)"`)

// adminURL waits for the admin endpoint's record (JSON log) and returns
// its base URL.
func adminURL(t *testing.T, p *proc) string {
	t.Helper()
	var addr string
	require.Eventually(t, func() bool {
		m := adminAddrRe.FindStringSubmatch(p.stderr())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	}, 20*time.Second, 20*time.Millisecond, "no admin endpoint record:\n%s", p.stderr())
	return "http://" + addr
}

// startedFile waits until the app has created marker.
func startedFile(t *testing.T, marker string) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, err := os.Stat(marker)
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "the lingering request never started")
}

// liveRequests reads the live view's JSON.
func liveRequests(t *testing.T, base string) debugview.Page {
	t.Helper()
	code, body := get(t, base+"/debug/wsgi/json")
	require.Equal(t, http.StatusOK, code, body)
	var page debugview.Page
	require.NoError(t, json.Unmarshal([]byte(body), &page), body)
	return page
}

// lingering returns the processes' requests to /linger.
func lingering(page debugview.Page) []debugview.Request {
	var out []debugview.Request
	for _, p := range page.Processes {
		for _, a := range p.Apps {
			for _, r := range a.Requests {
				if r.Path == "/linger" {
					out = append(out, r)
				}
			}
		}
	}
	return out
}

func functions(stack []debugview.Frame) []string {
	var out []string
	for _, f := range stack {
		out = append(out, f.Function)
	}
	return out
}

// TestAdminEndpoints: one process with -admin-addr serves health,
// readiness, metrics, the live view and pprof; /readyz says 503 once
// SIGTERM starts the drain, while a request still runs.
func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "started")
	p := start(t, []string{"WSGI_TEST_STARTED=" + marker}, "-addr", "127.0.0.1:0", "-dir", testdata, "-app", "admin",
		"-log-format", "json", "-admin-addr", "127.0.0.1:0", "-request-timeout", "10s")
	base := "http://" + p.addr(t)
	admin := adminURL(t, p)

	code, body := get(t, admin+"/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)
	code, body = get(t, admin+"/readyz")
	assert.Equal(t, http.StatusOK, code, body)

	code, _ = get(t, base+"/")
	assert.Equal(t, http.StatusOK, code)
	code, _ = get(t, base+"/boom")
	assert.Equal(t, http.StatusInternalServerError, code)
	code, body = get(t, admin+"/metrics")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `wsgi_requests_total{app="admin:application",code="200",method="GET"} 1`)
	assert.Contains(t, body, `wsgi_requests_total{app="admin:application",code="500",method="GET"} 1`)
	assert.Contains(t, body, `wsgi_app_exceptions_total{app="admin:application"} 1`)
	assert.Contains(t, body, `wsgi_gil_wait_seconds_count{app="admin:application"} 2`)
	assert.Contains(t, body, "go_goroutines ")
	assert.Contains(t, body, "process_resident_memory_bytes ")

	code, body = get(t, admin+"/debug/pprof/")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "goroutine")

	done := getAsync(base + "/linger?1.5")
	startedFile(t, marker)
	reqs := lingering(liveRequests(t, admin))
	require.Len(t, reqs, 1)
	assert.Contains(t, functions(reqs[0].Stack), "linger_in_admin_test")
	assert.Equal(t, "in python", reqs[0].State)
	code, body = get(t, admin+"/debug/wsgi/")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, " in linger_in_admin_test")

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool {
		code, _ := get(t, admin+"/readyz")
		return code == http.StatusServiceUnavailable
	}, 5*time.Second, 10*time.Millisecond, "/readyz says 503 while draining")
	code, body = get(t, admin+"/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "draining")
	code, _ = get(t, admin+"/healthz")
	assert.Equal(t, http.StatusOK, code, "alive while draining")
	select {
	case code := <-done:
		assert.Equal(t, http.StatusOK, code, "the request in flight finished")
	case <-time.After(10 * time.Second):
		t.Fatal("the lingering request did not end")
	}
	assert.Equal(t, 0, p.wait(t), p.stderr())
}

// TestAdminWorkers: the master's admin endpoint covers both workers: one
// scrape has every worker's metrics labelled by worker (promtool accepts
// it) and the master's counts of worker starts, deaths and recycles; the
// live view shows both workers and a lingering request's function.
func TestAdminWorkers(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "started")
	p := start(t, []string{"WSGI_TEST_STARTED=" + marker}, "-addr", "127.0.0.1:0", "-dir", testdata, "-app", "admin",
		"-log-format", "json", "-admin-addr", "127.0.0.1:0", "-workers", "2", "-shutdown-timeout", "5s")
	base := "http://" + p.addr(t)
	admin := adminURL(t, p)

	code, body := get(t, admin+"/readyz")
	assert.Equal(t, http.StatusOK, code, body)
	seen := map[string]bool{}
	require.Eventually(t, func() bool {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
		resp, err := c.Get(base + "/")
		require.NoError(t, err)
		b := make([]byte, 64)
		n, _ := resp.Body.Read(b)
		_ = resp.Body.Close()
		seen[strings.TrimSpace(string(b[:n]))] = true
		return len(seen) == 2
	}, 10*time.Second, time.Millisecond, "both workers answer")

	code, body = get(t, admin+"/metrics")
	require.Equal(t, http.StatusOK, code, body)
	for _, w := range []string{"1", "2"} {
		assert.Regexp(t, `wsgi_requests_total\{app="admin:application",code="200",method="GET",worker="`+w+`"\} [1-9]`, body)
		assert.Contains(t, body, `wsgi_threads{app="admin:application",worker="`+w+`"} 8`)
		assert.Contains(t, body, `go_goroutines{worker="`+w+`"}`)
	}
	assert.Contains(t, body, `go_goroutines{worker="master"}`)
	assert.Contains(t, body, "wsgi_worker_starts_total 2\n")
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		out, err := cmd.CombinedOutput()
		assert.NoError(t, err, "promtool check metrics:\n%s", out)
	} else {
		t.Log("no promtool (Debian's prometheus package): exposition not linted")
	}

	// A request lingering in one worker shows in the master's view.
	go func() {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(base + "/linger?1.5")
		if err == nil {
			_ = resp.Body.Close()
		}
	}()
	startedFile(t, marker)
	page := liveRequests(t, admin)
	require.Len(t, page.Processes, 2, "%+v", page)
	assert.Equal(t, 1, page.Processes[0].Worker)
	assert.Equal(t, 2, page.Processes[1].Worker)
	reqs := lingering(page)
	require.Len(t, reqs, 1, "%+v", page)
	assert.Contains(t, functions(reqs[0].Stack), "linger_in_admin_test")

	// A worker killed, then a reload: counted by the master.
	pid := page.Processes[0].PID
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	waitLog(t, p, "signal SIGKILL", 5*time.Second)
	require.Eventually(t, func() bool {
		code, _ := get(t, admin+"/readyz")
		return code == http.StatusOK && len(liveRequests(t, admin).Processes) == 2
	}, 10*time.Second, 50*time.Millisecond)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	waitLog(t, p, "rolling restart done", 20*time.Second)
	_, body = get(t, admin+"/metrics")
	assert.Contains(t, body, `wsgi_worker_deaths_total{cause="signal SIGKILL"} 1`)
	assert.Contains(t, body, `wsgi_worker_recycles_total{reason="reload"} 2`)
	assert.Contains(t, body, "wsgi_worker_starts_total 5\n")

	// SIGTERM with a request in flight: the master says 503 while its
	// workers drain.
	require.NoError(t, os.Remove(marker))
	done := getAsync(base + "/linger?1.5")
	startedFile(t, marker)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool {
		code, _ := get(t, admin+"/readyz")
		return code == http.StatusServiceUnavailable
	}, 5*time.Second, 10*time.Millisecond, "/readyz says 503 while the workers drain")
	assert.Equal(t, http.StatusOK, <-done, "the request in flight finished")
	assert.Equal(t, 0, p.wait(t), p.stderr())
}

// getAsync GETs url in the background; the channel gets the status code,
// or 0 if the request failed.
func getAsync(url string) <-chan int {
	done := make(chan int, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
		if err != nil {
			done <- 0
			return
		}
		_ = resp.Body.Close()
		done <- resp.StatusCode
	}()
	return done
}
