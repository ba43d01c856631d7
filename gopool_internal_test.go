package wsgi

import (
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGoPool: jobs run on at most max goroutines, which are reused; with
// all of them busy, run waits for the first free one; stop ends them.
func TestGoPool(t *testing.T) {
	before := runtime.NumGoroutine()
	p := newGoPool(2)
	release := make(chan struct{})
	started := make(chan int, 3)
	for i := range 2 {
		p.run(funcJob(func() { started <- i; <-release }))
	}
	<-started
	<-started
	third := make(chan struct{})
	go func() {
		p.run(funcJob(func() { started <- 2 }))
		close(third)
	}()
	select {
	case <-third:
		t.Fatal("a third job was given a goroutine while both were busy")
	case <-time.After(50 * time.Millisecond):
	}
	release <- struct{}{} // one job ends: its goroutine takes the third
	<-third
	assert.Equal(t, 2, <-started)
	release <- struct{}{}
	assert.Equal(t, int32(2), p.n.Load(), "goroutines started")

	for range 100 { // one at a time: never more goroutines than max
		done := make(chan struct{})
		p.run(funcJob(func() { close(done) }))
		<-done
	}
	assert.Equal(t, int32(2), p.n.Load(), "goroutines started")
	p.stop()
	assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= before+1 }, 2*time.Second, 5*time.Millisecond,
		"goroutines after stop: %d, before %d", runtime.NumGoroutine(), before)
}

// TestHTTP2InlineOnPool: an app that runs inline runs on ServeHTTP's
// goroutine for HTTP/1.x and on the pool for HTTP/2 and HTTP/3, whose
// handlers get a new goroutine each.
func TestHTTP2InlineOnPool(t *testing.T) {
	h, err := New(Options{Dir: "testdata", App: "hello"})
	require.NoError(t, err, "%+v", err)
	defer h.Close()
	get := func(major int) {
		r := httptest.NewRequest("GET", "/", nil)
		r.ProtoMajor = major
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		require.Equal(t, "Hello, world!", rec.Body.String())
	}
	for range inlineAfter + 1 {
		get(1)
	}
	require.GreaterOrEqual(t, h.bodies.Load(), int32(inlineAfter), "inline")
	h.pool.stop() // the requests before inline used it
	h.pool = newGoPool(h.cfg.threads)
	for range 10 {
		get(1)
	}
	assert.Equal(t, int32(0), h.pool.n.Load(), "HTTP/1.1 inline: no pooled goroutine")
	for range 10 {
		get(2)
		get(3)
	}
	// One goroutine, reused; or a few more, when a request came before
	// the goroutine of the one before was back waiting.
	n := h.pool.n.Load()
	assert.True(t, n >= 1 && n <= int32(h.cfg.threads), "HTTP/2 and HTTP/3 ran on %d pooled goroutines", n)
}
