# Two commands on a fresh Debian machine:
#   make run    serves the demo (examples/: Flask and Django) on http://127.0.0.1:8080
#   make test   runs every check CI runs
# Both install what they need (Debian packages with apt-get, Go tools
# through the module proxy) when it is missing.

SHELL := /bin/bash
GO ?= go
ADDR ?= 127.0.0.1:8080
GOBIN := $(shell $(GO) env GOPATH)/bin
STATICCHECK_VERSION := v0.8.2
PYENV_ROOT ?= $(HOME)/.pyenv
# Other Pythons the tests run on, from pyenv builds (the system Python,
# 3.11 on Debian bookworm, is the default build).
OTHER_PYTHONS ?= 3.10 3.12 3.13
# Fuzz budgets are execution counts, not durations: with a duration, Go
# 1.26's fuzz coordinator can report a spurious "context deadline exceeded"
# failure when the time runs out (go.dev/issue/75804, fixed in Go 1.27).
# 200000 runs take about 10s a target here.
FUZZTIME ?= 200000x

# prometheus: promtool, which checks the metrics exposition (metrics/; skipped without it).
DEBS := python3-dev pkg-config gcc python3-flask python3-django python3-falcon \
	python3-bottle python3-pyramid python3-uvloop python3-starlette python3-fastapi python3-quart \
	python3-websockets prometheus
# The listener tests (cmd/wsgi): curl --unix-socket, systemd-analyze verify and
# systemd-socket-activate, the Kubernetes example parsed by python3-yaml; the
# TLS tests: curl over HTTP/1.1, HTTP/2 and h2c.
DEBS += curl systemd python3-yaml
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run browser-test test deps tools check unit race other-pythons fuzz-short fuzz bench bench-metrics bench-cores bench-h2 bench-install build clean soak

# The demo of examples/: a Flask app at /flask/ and a Django app at
# /django/ (see examples/README.md).
run: deps build
	./bin/wsgi -config examples/apps.toml -addr $(ADDR)

build: deps
	$(GO) build -o bin/wsgi ./cmd/wsgi

test: deps tools check race fuzz-short other-pythons browser-test

# Debian packages, installed only when one is missing.
deps:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

tools:
	@[ -x $(GOBIN)/staticcheck ] || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GOBIN)/staticcheck ./...

race:
	$(GO) test -race -count=1 ./...

# Fuzz targets, briefly (their seeds already ran in the race tests).
fuzz-short:
	@for t in .:FuzzBuildEnviron .:FuzzParseStatus .:FuzzValidateHeader .:FuzzParseResponseHead .:FuzzBodyReader .:FuzzWSReadMessage \
		./internal/cpython:FuzzDecodeValue; do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "fuzz $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

fuzz:
	$(MAKE) fuzz-short FUZZTIME=6000000x

# Build and test against each other Python: a build tag per version picks
# its python-3.X-embed.pc (Go's build cache does not hash pkg-config
# output, golang/go#24544, so PKG_CONFIG_PATH alone is not enough), and an
# rpath finds its libpython at run time. Debian's framework packages exist
# only for the system Python, so those tests skip here.
other-pythons:
	@for v in $(OTHER_PYTHONS); do \
		prefix=$$(ls -d $(PYENV_ROOT)/versions/$$v.* 2>/dev/null | sort -V | tail -1); \
		if [ -z "$$prefix" ]; then echo "python $$v: no pyenv build under $(PYENV_ROOT)/versions"; exit 1; fi; \
		tag=py$${v/./}; \
		echo "== python $$v ($$prefix), -tags $$tag"; \
		PKG_CONFIG_PATH=$$prefix/lib/pkgconfig CGO_LDFLAGS="-Wl,-rpath,$$prefix/lib" \
		WSGI_TEST_STDLIB_ONLY=1 $(GO) test -tags $$tag -count=1 ./... || exit 1; \
	done

# The demo in headless Chromium (Debian's chromium, installed when
# missing): logs into the Django admin, adds a post, finds it in the API;
# and the live view page (debugview) while requests are in flight.
browser-test: deps
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing: chromium"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; \
	}
	WSGI_BROWSER_TEST=1 $(GO) test -count=1 -run Browser ./examples/... ./debugview/

# What metrics and the live view cost the request path: hello in process
# with them and without, 16 alternating runs (a process each, so that
# neither is always the first in its process), compared by benchstat
# (golang.org/x/perf/cmd/benchstat, installed when missing).
bench-metrics:
	@command -v benchstat >/dev/null 2>&1 || test -x $$($(GO) env GOPATH)/bin/benchstat || \
		$(GO) install golang.org/x/perf/cmd/benchstat@latest
	$(GO) test -c -o bin/wsgi.test .
	for i in $$(seq 16); do for m in on off; do \
		./bin/wsgi.test -test.run '^$$' -test.bench "HelloMetrics/metrics=$$m\$$" -test.benchtime 0.3s | grep Benchmark; \
	done; done > bin/bench-metrics.txt
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" benchstat -col /metrics bin/bench-metrics.txt
	./bin/wsgi.test -test.run '^$$' -test.bench 'Observe$$' -test.count 6 | grep Benchmark

# Side by side over HTTP (bench/): cmd/wsgi, a Go net/http handler doing
# the same work, gunicorn, uWSGI, waitress, mod_wsgi and uvicorn, each
# pinned to CPU 0 with wrk on CPU 1; writes bench/results.md and
# bench/results.png. BENCHFLAGS passes flags, e.g. BENCHFLAGS='-d 1s -reps 1'.
BENCH_DEBS := gunicorn uwsgi-core uwsgi-plugin-python3 python3-waitress apache2 libapache2-mod-wsgi-py3 \
	python3-uvicorn python3-httptools python3-uvloop python3-flask python3-django python3-starlette \
	python3-fastapi wrk util-linux
BENCHFLAGS ?=

bench: deps bench-install build
	$(GO) build -o bin/bench ./bench
	./bin/bench -wsgi bin/wsgi $(BENCHFLAGS)

# Both cores: every server with 2 worker processes (cmd/wsgi -workers 2,
# gunicorn -w 2, uWSGI --processes 2, mod_wsgi processes=2, uvicorn
# --workers 2), cmd/wsgi as one process for the scaling, and cmd/wsgi as one
# process with -interpreters 2 (a 3.13 build, when pyenv has one), on CPUs 0 and 1
# with wrk beside them; writes bench/results-2cores.md and .png.
bench-cores: deps bench-install build
	$(GO) build -o bin/bench ./bench
	@prefix=$$(ls -d $(PYENV_ROOT)/versions/3.13.* 2>/dev/null | sort -V | tail -1); \
	if [ -n "$$prefix" ]; then \
		PKG_CONFIG_PATH=$$prefix/lib/pkgconfig CGO_LDFLAGS="-Wl,-rpath,$$prefix/lib" \
			$(GO) build -tags py313 -o bin/wsgi-py313 ./cmd/wsgi; \
	else rm -f bin/wsgi-py313; echo "no pyenv 3.13: the -interpreters row is n/a"; fi
	./bin/bench -wsgi bin/wsgi -wsgi-py313 bin/wsgi-py313 -workers 2 -server-cpu 0,1 -client-cpu 0,1 -workloads hello,flask,django,starlette \
		-out bench/results-2cores.md -png bench/results-2cores.png $(BENCHFLAGS)

# Issue 15's targets (bench/protocols): HTTP/2 over TLS hello with h2load,
# cmd/wsgi -tls-cert against Go net/http over TLS (>= 0.8x), and WebSocket
# echo of 1 KiB text messages with permessage-deflate against
# -ws-compression off (>= 0.7x); servers on CPU 0, clients on CPU 1;
# writes bench/results-protocols.md. BENCHFLAGS as for bench.
H2_DEBS := nghttp2-client util-linux

bench-h2: deps build
	@missing=$$(for p in $(H2_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	$(GO) build -o bin/bench-protocols ./bench/protocols
	./bin/bench-protocols -wsgi bin/wsgi $(BENCHFLAGS)

# The peers' Debian packages, installed only when one is missing; a peer
# that still cannot run is reported n/a by the benchmark.
bench-install:
	@missing=$$(for p in $(BENCH_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing || \
		echo "bench-install: some packages could not be installed; their servers will be n/a"; \
	fi

# Soak and fault runs (soak/main.go): millions of requests, error paths,
# 16 MiB uploads, client resets and slow clients against an in-process
# server on loopback; about 7 minutes on 2 cores, bounded by SOAK_TIMEOUT.
# SOAK_FLAGS="-scale 0.01" runs a short version, "-only upload" one run.
SOAK_TIMEOUT ?= 25m
SOAK_FLAGS ?=
soak: deps
	$(GO) build -o bin/soak ./soak
	./bin/soak -timeout $(SOAK_TIMEOUT) $(SOAK_FLAGS)

clean:
	rm -rf bin
