// Package metrics exports the metrics of wsgi Handlers to Prometheus.
//
// NewCollector returns a prometheus.Collector that reads each Handler's
// Metrics snapshot when it is scraped and turns it into const metrics: the
// request path keeps only the Handler's atomic counters, and the Handler
// knows nothing of Prometheus. Register it with a registry and serve that
// with promhttp:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(metrics.NewCollector(h))
//	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// # Metrics
//
// Every metric of a Handler has the label app (Handler.Name), so the
// Handlers given to one collector must have different names. The code
// label is the status code, or "other" for one outside 100-599. The Python
// garbage collector's metrics describe the interpreter, which the
// Handlers of a process share: they have no app label.
//
//	name                                        type       labels             meaning
//	wsgi_requests_total                         counter    app, method, code  requests served, by method (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, other) and status code
//	wsgi_request_duration_seconds               histogram  app                time to serve a request (ServeHTTP)
//	wsgi_queue_wait_seconds                     histogram  app                time waiting for a Python thread slot (zero when one was free)
//	wsgi_gil_wait_seconds                       histogram  app                time a request waited for the GIL to start the app (ASGI: and for its event loop)
//	wsgi_requests_in_flight                     gauge      app                requests being served
//	wsgi_threads                                gauge      app                Python thread slots (Options.Threads)
//	wsgi_threads_busy                           gauge      app                slots held, by requests and by work running on after a response
//	wsgi_queue_rejected_total                   counter    app                503s: no slot free within QueueTimeout
//	wsgi_request_body_too_large_total           counter    app                413s: a declared body over MaxBodyBytes
//	wsgi_request_body_timeouts_total            counter    app                408s: the client stalled sending the body
//	wsgi_request_timeouts_total                 counter    app                requests past RequestTimeout (504, a cut response, or a cancelled ASGI task)
//	wsgi_requests_timed_out_running             gauge      app                WSGI requests past RequestTimeout whose Python still runs
//	wsgi_reloads_total                          counter    app                reloads of the app (Options.Reload), failed ones included
//	wsgi_reload_failures_total                  counter    app                reloads whose import failed
//	wsgi_app_exceptions_total                   counter    app                exceptions raised by the app (WSGI, ASGI HTTP and WebSocket)
//	wsgi_request_body_bytes_total               counter    app                request body bytes read from clients for the app
//	wsgi_response_body_bytes_total              counter    app                response body bytes of the app (and static files) written to clients
//	wsgi_websockets_open                        gauge      app                ASGI WebSocket connections being served
//	wsgi_asgi_tasks                             gauge      app                ASGI HTTP tasks alive, those running on after their response included
//	wsgi_python_gc_collections_total            counter    generation         collections of a garbage collector generation
//	wsgi_python_gc_collected_objects_total      counter    generation         objects it collected
//	wsgi_python_gc_uncollectable_objects_total  counter    generation         objects it found uncollectable
//	wsgi_python_gc_objects_tracked              gauge      generation         objects the generation tracks now
//
// The duration histograms have the buckets of wsgi.DurationBounds, from
// 0.5 ms to 10 s. The garbage collector's numbers are read at scrape time
// (with the GIL, listing each generation's objects), and only from the
// first Handler given.
package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gowsgi/wsgi"
)

// desc makes the description of a metric.
func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	requestsDesc     = desc("wsgi_requests_total", "Requests served, by method and status code.", "app", "method", "code")
	durationDesc     = desc("wsgi_request_duration_seconds", "Time to serve a request.", "app")
	queueWaitDesc    = desc("wsgi_queue_wait_seconds", "Time requests waited for a Python thread slot.", "app")
	gilWaitDesc      = desc("wsgi_gil_wait_seconds", "Time requests waited for the GIL (ASGI: and for the app's event loop) to start the app.", "app")
	inFlightDesc     = desc("wsgi_requests_in_flight", "Requests being served.", "app")
	threadsDesc      = desc("wsgi_threads", "Python thread slots.", "app")
	busyDesc         = desc("wsgi_threads_busy", "Python thread slots held.", "app")
	rejectedDesc     = desc("wsgi_queue_rejected_total", "Requests answered 503 because no thread slot was free in time.", "app")
	tooLargeDesc     = desc("wsgi_request_body_too_large_total", "Requests answered 413 because their body was over the limit.", "app")
	bodyTimeoutsDesc = desc("wsgi_request_body_timeouts_total", "Requests answered 408 because the client stalled sending the body.", "app")
	timeoutsDesc     = desc("wsgi_request_timeouts_total", "Requests past the request timeout.", "app")
	stuckDesc        = desc("wsgi_requests_timed_out_running", "WSGI requests past the request timeout whose Python still runs.", "app")
	reloadsDesc      = desc("wsgi_reloads_total", "Reloads of the app, failed ones included.", "app")
	reloadFailDesc   = desc("wsgi_reload_failures_total", "Reloads of the app whose import failed.", "app")
	exceptionsDesc   = desc("wsgi_app_exceptions_total", "Exceptions raised by the app.", "app")
	bodyInDesc       = desc("wsgi_request_body_bytes_total", "Request body bytes read by the app.", "app")
	bodyOutDesc      = desc("wsgi_response_body_bytes_total", "Response body bytes written by the app.", "app")
	webSocketsDesc   = desc("wsgi_websockets_open", "ASGI WebSocket connections being served.", "app")
	asgiTasksDesc    = desc("wsgi_asgi_tasks", "ASGI HTTP tasks alive, those running on after their response included.", "app")

	gcCollectionsDesc   = desc("wsgi_python_gc_collections_total", "Collections of a Python garbage collector generation.", "generation")
	gcCollectedDesc     = desc("wsgi_python_gc_collected_objects_total", "Objects collected by a Python garbage collector generation.", "generation")
	gcUncollectableDesc = desc("wsgi_python_gc_uncollectable_objects_total", "Objects found uncollectable by a Python garbage collector generation.", "generation")
	gcObjectsDesc       = desc("wsgi_python_gc_objects_tracked", "Objects a Python garbage collector generation tracks.", "generation")
)

var allDescs = []*prometheus.Desc{
	requestsDesc, durationDesc, queueWaitDesc, gilWaitDesc, inFlightDesc, threadsDesc, busyDesc,
	rejectedDesc, tooLargeDesc, bodyTimeoutsDesc, timeoutsDesc, stuckDesc,
	reloadsDesc, reloadFailDesc, exceptionsDesc, bodyInDesc, bodyOutDesc, webSocketsDesc, asgiTasksDesc,
	gcCollectionsDesc, gcCollectedDesc, gcUncollectableDesc, gcObjectsDesc,
}

// collector reads the Handlers' snapshots at each scrape.
type collector struct {
	handlers []*wsgi.Handler
}

// NewCollector returns a collector of the metrics of handlers (see the
// package documentation for the list). Their names (the app label) must
// differ. It reads the Handlers only when it is collected.
func NewCollector(handlers ...*wsgi.Handler) prometheus.Collector {
	return &collector{handlers: handlers}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, h := range c.handlers {
		collectHandler(ch, h.Name(), h.Metrics())
	}
	if len(c.handlers) > 0 {
		// The interpreter's, whichever Handler reads them; none once
		// it is finalized.
		if gens, err := c.handlers[0].PythonGC(); err == nil {
			collectGC(ch, gens)
		}
	}
}

func collectHandler(ch chan<- prometheus.Metric, app string, m wsgi.Metrics) {
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), app)
	}
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), app)
	}
	for _, r := range m.Requests {
		code := "other"
		if r.Code != 0 {
			code = strconv.Itoa(r.Code)
		}
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(r.Count), app, r.Method, code)
	}
	ch <- histogram(durationDesc, m.Duration, app)
	ch <- histogram(queueWaitDesc, m.QueueWait, app)
	ch <- histogram(gilWaitDesc, m.GILWait, app)
	gauge(inFlightDesc, m.InFlight)
	gauge(threadsDesc, m.Threads)
	gauge(busyDesc, m.Busy)
	counter(rejectedDesc, m.QueueRejected)
	counter(tooLargeDesc, m.TooLarge)
	counter(bodyTimeoutsDesc, m.BodyTimeouts)
	counter(timeoutsDesc, m.Timeouts)
	gauge(stuckDesc, m.TimedOutRunning)
	counter(reloadsDesc, m.Reloads)
	counter(reloadFailDesc, m.ReloadFailures)
	counter(exceptionsDesc, m.Exceptions)
	counter(bodyInDesc, m.RequestBodyBytes)
	counter(bodyOutDesc, m.ResponseBodyBytes)
	gauge(webSocketsDesc, m.WebSockets)
	gauge(asgiTasksDesc, m.ASGITasks)
}

func histogram(d *prometheus.Desc, h wsgi.Histogram, app string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b] = h.Cumulative[i]
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets, app)
}

func collectGC(ch chan<- prometheus.Metric, gens []wsgi.GCGeneration) {
	for i, g := range gens {
		gen := strconv.Itoa(i)
		ch <- prometheus.MustNewConstMetric(gcCollectionsDesc, prometheus.CounterValue, float64(g.Collections), gen)
		ch <- prometheus.MustNewConstMetric(gcCollectedDesc, prometheus.CounterValue, float64(g.Collected), gen)
		ch <- prometheus.MustNewConstMetric(gcUncollectableDesc, prometheus.CounterValue, float64(g.Uncollectable), gen)
		ch <- prometheus.MustNewConstMetric(gcObjectsDesc, prometheus.GaugeValue, float64(g.Objects), gen)
	}
}
