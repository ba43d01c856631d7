package wsgi

import (
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHelloMetrics measures what the metrics and the live view cost
// the request path: hello in process with them (metrics=on, as every
// Handler runs) and without (metrics=off: ServeHTTP neither tracks the
// request for Snapshot nor counts it when it returns; the few counters
// updated deeper in, such as the queue and GIL waits, still run). make
// bench-metrics runs each in a process of its own, alternating, so that a
// noisy machine hits both alike and neither is always first, and compares
// them with benchstat -col /metrics.
func BenchmarkHelloMetrics(b *testing.B) {
	for _, on := range []bool{true, false} {
		name := "metrics=off"
		if on {
			name = "metrics=on"
		}
		b.Run(name, func(b *testing.B) {
			h, err := New(Options{Dir: "testdata", App: "hello"})
			if err != nil {
				b.Fatalf("%+v", err)
			}
			defer h.Close()
			h.unobserved = !on
			b.ReportAllocs()
			rec := httptest.NewRecorder()
			cpu0 := cpuTime()
			for b.Loop() {
				rec.Body.Reset()
				clear(rec.Header())
				rec.Code = 0
				h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
				if rec.Body.Len() != 13 {
					b.Fatalf("body %q", rec.Body.String())
				}
			}
			// CPU time is steadier than wall time on a shared machine.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkObserve is the work metrics=on adds to a request, without the
// request: link it into the live view, count it, unlink it (C then
// stores the thread's identifier, and reads the clock twice around taking
// the GIL, not counted here). Steadier than the difference of two hello
// runs on a busy machine.
func BenchmarkObserve(b *testing.B) {
	h := &Handler{cfg: &config{threads: 8}, slots: make(chan struct{}, 8)}
	r := httptest.NewRequest("GET", "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		start := h.m.now()
		o := outcome{status: 200, sent: 13}
		o.act = h.track(r, start)
		o.act.setState(stateInPython)
		o.act.setState(stateWriting)
		o.act.setState(stateInPython)
		h.served("GET", &o, start)
	}
}
