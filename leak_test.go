package wsgi_test

import (
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

// osThreads is the process' OS thread count.
func osThreads(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("no Threads line")
	return 0
}

// TestNoLeaks runs many requests of every kind and checks that goroutines,
// OS threads and Python's allocated blocks come back to where they were.
func TestNoLeaks(t *testing.T) {
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "behave", Threads: 4})
	fail, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "failing"})
	srv := serve(t, h)
	paths := []string{"/tuple", "/stream?n=20", "/write", "/big-list", "/environ/x", "/cookies", "/bytesio-wrapper"}
	failing := []string{"/raise-before", "/raise-mid-stream", "/yield-str", "/close-raises", "/return-none", "/cl-long"}
	round := func() {
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				for j := range 25 {
					p := paths[(i+j)%len(paths)]
					do(h, "GET", p, nil)
					func() {
						defer func() { _ = recover() }() // aborted responses panic with http.ErrAbortHandler
						do(fail, "GET", failing[(i+j)%len(failing)], nil)
					}()
					if resp, err := http.Post(srv.URL+"/echo", "text/plain", strings.NewReader(p)); err == nil {
						readAll(t, resp.Body)
					}
				}
			})
		}
		wg.Wait()
	}
	blocks := func() int {
		var n int
		getJSON(t, h, "/blocks", &n)
		return n
	}
	// Warm up: imports, caches, pools, and the OS threads that the
	// requests' Python goroutines lock (their number follows the peak
	// concurrency, which one round under load may not reach).
	round()
	round()
	http.DefaultClient.CloseIdleConnections()
	srv.CloseClientConnections()
	time.Sleep(50 * time.Millisecond)
	goroutines, threads, pyBlocks := runtime.NumGoroutine(), osThreads(t), blocks()

	for range 3 {
		round()
	}
	http.DefaultClient.CloseIdleConnections()
	srv.CloseClientConnections()
	// Besides 2 of slack, each Handler's pool (gopool.go) may have started
	// goroutines since the warm-up, up to its Threads (4 and the default
	// 8): they stay for the next requests. A leak per request would be
	// hundreds after these rounds.
	const pooled = 4 + 8
	assert.True(t, waitFor(2*time.Second, func() bool { return runtime.NumGoroutine() <= goroutines+2+pooled }),
		"goroutines: %d before, %d after", goroutines, runtime.NumGoroutine())
	assert.LessOrEqual(t, osThreads(t), threads+4, "OS threads")
	assert.InDelta(t, pyBlocks, blocks(), 500, "Python allocated blocks")
}
