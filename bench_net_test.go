package wsgi_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/gowsgi/wsgi"
)

// runNetBench serves GET path through h over one keep-alive loopback
// connection b.N times, with a raw client that costs next to nothing: the
// difference from runBench is what a real connection adds (net/http's
// conn, its reader and writer, the netpoller).
func runNetBench(b *testing.B, h http.Handler, path string, want int) {
	b.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: bench\r\n\r\n")
	br := bufio.NewReader(c)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != int64(want) {
			b.Fatalf("body length %d, want %d", n, want)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkNetHello, BenchmarkNetGoHello and BenchmarkNetASGIHello are
// BenchmarkHello, BenchmarkGoHello and BenchmarkASGIHello over a loopback
// connection.
func BenchmarkNetHello(b *testing.B) {
	runNetBench(b, benchHandler(b, wsgi.Options{Dir: "testdata", App: "hello"}), "/", 13)
}

func BenchmarkNetGoHello(b *testing.B) {
	runNetBench(b, goHello, "/", 13)
}

func BenchmarkNetASGIHello(b *testing.B) {
	runNetBench(b, benchHandler(b, wsgi.Options{Dir: "testdata", App: "asgi_raw:app", Protocol: "asgi"}), "/hello", 13)
}
