package metrics_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gowsgi/wsgi"
	"github.com/gowsgi/wsgi/metrics"
)

// Serve an app's metrics at /metrics, next to the app.
func ExampleNewCollector() {
	h, err := wsgi.New(wsgi.Options{Dir: "../testdata", App: "hello", Name: "hello"})
	if err != nil {
		log.Fatalf("%+v", err)
	}
	defer h.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(h))
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "wsgi_requests_total{") || strings.HasPrefix(line, "wsgi_response_body_bytes_total{") {
			fmt.Print(line)
		}
	}
	// Output:
	// wsgi_requests_total{app="hello",code="200",method="GET"} 1
	// wsgi_response_body_bytes_total{app="hello"} 13
}
