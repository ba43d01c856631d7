package wsgi_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

// Requests whose Python holds the GIL take turns in the order they asked
// for it (shim.c, take_gil). CPython's GIL lets the thread that drops it
// take it straight back, so without the queue a request could wait out
// several of CPython's 5 ms switch intervals while another thread's
// requests went by: one client got most of the answers and the slowest
// request waited tens of milliseconds.
func TestGILTurns(t *testing.T) {
	const clients = 4 // each request holds the GIL 2 ms (testdata/busy.py)
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "busy:app", Threads: clients})
	counts := make([]int, clients)
	var waits []time.Duration
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(1500 * time.Millisecond)
	for c := range clients {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				began := time.Now()
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
				took := time.Since(began)
				if rec.Code != http.StatusOK {
					t.Errorf("status %d: %s", rec.Code, rec.Body)
					return
				}
				mu.Lock()
				counts[c]++
				waits = append(waits, took)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(waits)
	p99 := waits[len(waits)*99/100]
	t.Logf("answers per client %v; request time p50 %v, p99 %v, max %v", counts,
		waits[len(waits)/2], p99, waits[len(waits)-1])
	require.Greater(t, len(waits), 100)
	assert.GreaterOrEqual(t, slices.Min(counts)*3, slices.Max(counts)*2, "each client got a fair share: %v", counts)
	// In turn, a request waits for the three others (6 ms) and runs (2 ms).
	assert.Less(t, p99, 25*time.Millisecond, "p99 request time")
}
