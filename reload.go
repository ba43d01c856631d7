package wsgi

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gowsgi/wsgi/internal/codewatch"
	"github.com/gowsgi/wsgi/internal/cpython"
)

// appGen is one import of the app. The handler holds a reference while
// the generation is current and every request holds one while it runs,
// so that a reload lets requests in flight finish on the old code; the
// old generation's Python objects are released with its last reference.
type appGen struct {
	h    *Handler
	app  *cpython.App  // nil when the import failed
	asgi *cpython.ASGI // the app's event loop, for an ASGI app
	err  error         // why the import failed
	refs atomic.Int64
}

// newGen makes a generation from an import: for an ASGI app, it starts
// the event loop and the lifespan.
func (h *Handler) newGen(app *cpython.App, err error) (*appGen, error) {
	g := &appGen{h: h, app: app, err: err}
	g.refs.Store(1)
	if app != nil && h.isASGI {
		if g.asgi, err = h.startASGI(app); err != nil {
			app.Free()
			g.app, g.err = nil, err
			return g, err
		}
	}
	return g, nil
}

// tryRef takes a reference unless the generation is already released.
func (g *appGen) tryRef() bool {
	for {
		n := g.refs.Load()
		if n <= 0 {
			return false
		}
		if g.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (g *appGen) unref() {
	if g.refs.Add(-1) != 0 {
		return
	}
	if g.asgi != nil {
		g.h.stopASGI(g.asgi)
	}
	if g.app != nil {
		g.app.Free()
	}
}

// current returns the current generation with a reference taken.
func (h *Handler) current() *appGen {
	for {
		if g := h.gen.Load(); g.tryRef() {
			return g
		}
	}
}

// install makes g current and drops the handler's reference to the old one.
func (h *Handler) install(g *appGen) {
	if old := h.gen.Swap(g); old != nil {
		old.unref()
	}
}

// load imports the app.
func (h *Handler) load() (*cpython.App, error) {
	c := h.cfg
	app, sigs, err := cpython.LoadApp(h.id, c.name, c.dir, c.module, c.callable, c.sitePackages, c.pythonPath)
	for _, s := range sigs {
		c.logger.Warn("wsgi: the app set a handler for a signal while importing; the host keeps it",
			"signal", s.String())
	}
	if err != nil {
		if e, ok := err.(*cpython.Exception); ok {
			err = newPythonError(e)
		}
		return nil, &contextError{fmt.Sprintf("wsgi: loading %s:%s from %s", c.module, c.callable, c.dir), err}
	}
	return app, nil
}

// reload forgets the modules imported from the app directory and imports
// the app again. A failed import is installed too: requests then get a
// 500 (with the traceback when Debug is on) until the code is fixed.
func (h *Handler) reload() {
	start := time.Now()
	if err := cpython.PurgeModules(h.cfg.dir); err != nil {
		h.cfg.logger.Error("wsgi: forgetting the app's modules before a reload", "error", err)
	}
	app, err := h.load()
	if err == nil && h.isASGI != app.IsASGI() && h.cfg.protocol == "auto" {
		err = errors.New("wsgi: the app changed between WSGI and ASGI; restart to switch protocols")
		app.Free()
		app = nil
	}
	g, gerr := h.newGen(app, err)
	if err == nil {
		err = gerr
	}
	h.m.reloads.Add(1)
	if err != nil {
		h.m.reloadFailures.Add(1)
		attrs := []any{"error", err.Error()}
		var pe *PythonError
		if errors.As(err, &pe) {
			attrs = append(attrs, "traceback", pe.Traceback)
		}
		h.cfg.logger.Error("wsgi: reload failed; answering 500 until the code is fixed", attrs...)
	} else {
		h.cfg.logger.Info("wsgi: reloaded the app", "took", time.Since(start).Round(time.Millisecond))
	}
	h.install(g)
}

// startWatching reloads the app when a .py file under its directory
// changes, until h.stopWatch is closed.
func (h *Handler) startWatching() error {
	cw, err := codewatch.New()
	if err != nil {
		return fmt.Errorf("wsgi: Reload: %w", err)
	}
	if err := cw.Add(h.cfg.dir); err != nil {
		_ = cw.Close()
		return fmt.Errorf("wsgi: Reload: watching %s: %w", h.cfg.dir, err)
	}
	h.stopWatch = make(chan struct{})
	h.watchDone = make(chan struct{})
	go func() {
		defer close(h.watchDone)
		cw.Run(h.stopWatch,
			func(err error) { h.cfg.logger.Warn("wsgi: watching the app directory", "error", err) },
			func(string) { h.reload() })
	}()
	return nil
}
