package wsgi_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gowsgi/wsgi"
)

// BenchmarkInterpreters compares Interpreters 2 with the main interpreter
// alone on a CPU-bound endpoint and a Flask JSON endpoint, from enough
// goroutines to keep every interpreter busy. Run it on 3.13 with 2 CPUs:
//
//	go test -tags py313 -run '^$' -bench Interpreters -cpu 2 -count 6
//
// (with the pyenv 3.13 build's PKG_CONFIG_PATH and rpath; see the Makefile's
// other-pythons target).
func BenchmarkInterpreters(b *testing.B) {
	if pythonMinorBench(b) < 13 {
		b.Skip("Interpreters needs Python 3.13+")
	}
	flask := filepath.Join(distPackages, "flask")
	for _, w := range []struct {
		name, dir, app, target string
		path                   []string
	}{
		{"cpu", "testdata/interp", "app", "/cpu?n=20000", nil},
		{"flask-json", "testdata/interp", "flaskjson:app", "/json", []string{distPackages}},
	} {
		for _, n := range []int{1, 2} {
			b.Run(w.name+"/interpreters="+strconv.Itoa(n), func(b *testing.B) {
				if w.path != nil {
					if _, err := os.Stat(flask); err != nil {
						b.Skipf("no %s", flask)
					}
				}
				h := benchHandler(b, wsgi.Options{Dir: w.dir, App: w.app, Interpreters: n, Threads: 8, PythonPath: w.path})
				b.ReportAllocs()
				b.ResetTimer()      // not the import
				b.SetParallelism(4) // 4 x GOMAXPROCS goroutines: every interpreter stays busy
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						rec := httptest.NewRecorder()
						h.ServeHTTP(rec, httptest.NewRequest("GET", w.target, nil))
						if rec.Code != 200 {
							b.Errorf("status %d: %s", rec.Code, rec.Body.String())
							return
						}
					}
				})
			})
		}
	}
}

// pythonMinorBench is the linked Python's minor version.
func pythonMinorBench(b *testing.B) int {
	b.Helper()
	v, _, _ := strings.Cut(wsgi.PythonVersion(), " ")
	parts := strings.Split(v, ".")
	if len(parts) < 2 {
		b.Fatalf("python version %q", v)
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkInterpretersHello is hello from one goroutine: what choosing an
// interpreter and running in a sub-interpreter cost a request, against
// the main interpreter.
func BenchmarkInterpretersHello(b *testing.B) {
	if pythonMinorBench(b) < 13 {
		b.Skip("Interpreters needs Python 3.13+")
	}
	for _, n := range []int{1, 2} {
		b.Run("interpreters="+strconv.Itoa(n), func(b *testing.B) {
			h := benchHandler(b, wsgi.Options{Dir: "testdata", App: "hello", Interpreters: n})
			runBench(b, h, helloRequest, 13)
		})
	}
}
