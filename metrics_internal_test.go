package wsgi

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestHistogram(t *testing.T) {
	var h histogram
	for _, d := range []time.Duration{0, 500 * time.Microsecond, 501 * time.Microsecond, 30 * time.Millisecond, 10 * time.Second, time.Minute} {
		h.observe(d)
	}
	s := h.snapshot()
	assert.Equal(t, DurationBounds[:], s.Bounds)
	// A bound holds what is at most it (Prometheus's le).
	want := []uint64{2, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 5}
	assert.Equal(t, want, s.Cumulative)
	assert.Equal(t, uint64(6), s.Count)
	assert.InDelta(t, 70.031001, s.Sum, 1e-9)
}

func TestCountersDone(t *testing.T) {
	tests := []struct {
		method string
		o      outcome
		want   RequestCount
	}{
		{"GET", outcome{status: 200}, RequestCount{"GET", 200, 1}},
		{"PATCH", outcome{}, RequestCount{"PATCH", 200, 1}}, // nothing written: net/http's 200
		{"OPTIONS", outcome{status: 204}, RequestCount{"OPTIONS", 204, 1}},
		{"PROPFIND", outcome{status: 207}, RequestCount{"other", 207, 1}},
		{"get", outcome{status: 99}, RequestCount{"other", 0, 1}}, // methods are case-sensitive; 99 is out of range
		{"DELETE", outcome{status: 599, sent: 7, received: 3}, RequestCount{"DELETE", 599, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			h := &Handler{cfg: &config{threads: 2}, slots: make(chan struct{}, 2)}
			h.requests.Add(1)
			h.m.done(tt.method, &tt.o, h.m.now())
			m := h.Metrics()
			assert.Equal(t, []RequestCount{tt.want}, m.Requests)
			assert.Equal(t, 0, m.InFlight)
			assert.Equal(t, uint64(1), m.Duration.Count)
			assert.Equal(t, uint64(tt.o.sent), m.ResponseBodyBytes)
			assert.Equal(t, uint64(tt.o.received), m.RequestBodyBytes)
			assert.Equal(t, 2, m.Threads)
		})
	}
}

func TestCountersAllocFree(t *testing.T) {
	var c counters
	o := outcome{status: 200, sent: 10}
	c.epoch = time.Now()
	start := c.now()
	assert.Zero(t, testing.AllocsPerRun(100, func() { c.done("POST", &o, start) }))
	assert.Zero(t, testing.AllocsPerRun(100, func() { c.queueWait.observe(time.Millisecond) }))
}
