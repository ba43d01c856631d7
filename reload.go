package wsgi

import (
	"errors"
	"fmt"
	"regexp"
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
	h   *Handler
	app *cpython.App // nil when the import failed; the first of apps
	// apps are the app's imports in each of the handler's
	// sub-interpreters (Options.Interpreters), busy how many requests each
	// runs; nil when the app runs in the main interpreter.
	apps []*cpython.App
	busy []interpLoad
	asgi *cpython.ASGI // the app's event loop, for an ASGI app; the first of asgis
	// asgis are the event loops of apps, one per sub-interpreter; nil in
	// the main interpreter.
	asgis []*cpython.ASGI
	err   error // why the import failed
	refs  atomic.Int64
}

// interpLoad counts the requests of one interpreter, on a cache line of
// its own: requests on different cores update them.
type interpLoad struct {
	n atomic.Int32
	_ [60]byte
}

// newGen makes a generation from an import (one app per interpreter): for
// an ASGI app, it starts the event loop and the lifespan.
func (h *Handler) newGen(apps []*cpython.App, err error) (*appGen, error) {
	g := &appGen{h: h, err: err}
	if len(apps) > 0 {
		g.app = apps[0]
	}
	if len(h.interps) > 0 && len(apps) > 0 {
		g.apps = apps
		g.busy = make([]interpLoad, len(apps))
	}
	g.refs.Store(1)
	if len(apps) == 0 || !h.isASGI {
		return g, nil
	}
	// One event loop per interpreter, each with its lifespan.
	loops := make([]*cpython.ASGI, 0, len(apps))
	for _, app := range apps {
		a, err := h.startASGI(app)
		if err != nil {
			for _, l := range loops {
				h.stopASGI(l)
			}
			for _, app := range apps {
				app.Free()
			}
			g.app, g.apps, g.err = nil, nil, err
			return g, err
		}
		loops = append(loops, a)
	}
	g.asgi = loops[0]
	if g.apps != nil {
		g.asgis = loops
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
	if g.asgis != nil {
		for _, a := range g.asgis {
			g.h.stopASGI(a)
		}
	} else if g.asgi != nil {
		g.h.stopASGI(g.asgi)
	}
	if g.apps != nil {
		for _, a := range g.apps {
			a.Free()
		}
	} else if g.app != nil {
		g.app.Free()
	}
}

// pick chooses the interpreter for a request: the one running the fewest
// (the first of those). It returns the app there and the index to give
// to done, -1 with a single interpreter.
func (g *appGen) pick() (*cpython.App, int) {
	if g.apps == nil {
		return g.app, -1
	}
	i := g.pickIndex()
	return g.apps[i], i
}

// pickASGI is pick for an ASGI app's connection: the event loop to run it.
func (g *appGen) pickASGI() (*cpython.ASGI, int) {
	if g.asgis == nil {
		return g.asgi, -1
	}
	i := g.pickIndex()
	return g.asgis[i], i
}

// pickIndex chooses the least busy interpreter and counts the request
// there.
func (g *appGen) pickIndex() int {
	best, least := 0, g.busy[0].n.Load()
	for i := 1; i < len(g.busy) && least > 0; i++ {
		if n := g.busy[i].n.Load(); n < least {
			best, least = i, n
		}
	}
	g.busy[best].n.Add(1)
	return best
}

// done ends a request that pick placed.
func (g *appGen) done(i int) {
	if i >= 0 {
		g.busy[i].n.Add(-1)
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

// load imports the app: in the main interpreter, or in each of the
// handler's sub-interpreters. On failure nothing stays loaded.
func (h *Handler) load() ([]*cpython.App, error) {
	interps := h.interps
	if len(interps) == 0 {
		interps = []int{0}
	}
	apps := make([]*cpython.App, 0, len(interps))
	for _, interp := range interps {
		app, err := h.loadIn(interp)
		if err != nil {
			for _, a := range apps {
				a.Free()
			}
			return nil, err
		}
		apps = append(apps, app)
	}
	return apps, nil
}

// singlePhase matches the ImportError of an extension module that cannot
// be loaded in an isolated sub-interpreter.
var singlePhase = regexp.MustCompile(`^module (\S+) does not support loading in subinterpreters`)

// loadIn imports the app in one interpreter.
func (h *Handler) loadIn(interp int) (*cpython.App, error) {
	c := h.cfg
	app, sigs, err := cpython.LoadApp(interp, h.id, c.name, c.dir, c.module, c.callable, c.sitePackages, c.pythonPath)
	for _, s := range sigs {
		c.logger.Warn("wsgi: the app set a handler for a signal while importing; the host keeps it",
			"signal", s.String())
	}
	if err != nil {
		where := fmt.Sprintf("wsgi: loading %s:%s from %s", c.module, c.callable, c.dir)
		if e, ok := err.(*cpython.Exception); ok {
			if m := singlePhase.FindStringSubmatch(e.Message); m != nil && e.Type == "ImportError" {
				where = fmt.Sprintf("wsgi: loading %s:%s from %s: the extension module %s cannot be imported "+
					"in an isolated sub-interpreter (it does not declare support for a per-interpreter GIL); "+
					"set Interpreters to 0 or 1 and, for more cores, use worker processes (the command's -workers)",
					c.module, c.callable, c.dir, m[1])
			}
			err = newPythonError(e)
		}
		return nil, &contextError{where, err}
	}
	return app, nil
}

// reload forgets the modules imported from the app directory and imports
// the app again. A failed import is installed too: requests then get a
// 500 (with the traceback when Debug is on) until the code is fixed.
func (h *Handler) reload() {
	start := time.Now()
	interps := h.interps
	if len(interps) == 0 {
		interps = []int{0}
	}
	for _, interp := range interps {
		if err := cpython.PurgeModules(interp, h.cfg.dir); err != nil {
			h.cfg.logger.Error("wsgi: forgetting the app's modules before a reload", "error", err)
		}
	}
	apps, err := h.load()
	if err == nil && h.isASGI != apps[0].IsASGI() && h.cfg.protocol == "auto" {
		err = errors.New("wsgi: the app changed between WSGI and ASGI; restart to switch protocols")
		for _, a := range apps {
			a.Free()
		}
		apps = nil
	}
	g, gerr := h.newGen(apps, err)
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
