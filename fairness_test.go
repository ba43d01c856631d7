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
// take it straight back, so without the queue one thread's requests went
// by, several in a row, while a request of another waited out CPython's
// 5 ms switch intervals. The test counts, for each request, the requests
// that began after it and ended before it: in turn, a request is passed
// by the few that reached the GIL's queue first: here p99 1 (2-3 with
// -race beside two busy loops), against 12-15 without the queue.
// Counting order rather than time keeps it steady on a loaded machine.
func TestGILTurns(t *testing.T) {
	const clients = 4 // each request holds the GIL 2 ms (testdata/busy.py)
	h, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "busy:app", Threads: clients})
	type span struct{ began, ended time.Time }
	var spans []span
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(1500 * time.Millisecond)
	for range clients {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				began := time.Now()
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
				ended := time.Now()
				if rec.Code != http.StatusOK {
					t.Errorf("status %d: %s", rec.Code, rec.Body)
					return
				}
				mu.Lock()
				spans = append(spans, span{began, ended})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Greater(t, len(spans), 100)
	passed := make([]int, len(spans))
	for i, r := range spans {
		for _, s := range spans {
			if s.began.After(r.began) && s.ended.Before(r.ended) {
				passed[i]++
			}
		}
	}
	slices.Sort(passed)
	p99 := passed[len(passed)*99/100]
	t.Logf("%d requests; passed by p50 %d, p99 %d, max %d others", len(spans), passed[len(passed)/2], p99, passed[len(passed)-1])
	assert.LessOrEqual(t, p99, 6, "requests passed by later ones")
}
