package wsgi

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/gowsgi/wsgi/internal/cpython"
)

// Func is a Go function that Python code of the app can call as
// gohost.NAME(*args), with NAME its key in Options.Functions. ctx is the
// request's context when the call happens during a request (else
// context.Background()). Arguments and the result convert between Python
// and Go as: None - nil, bool - bool, int - int64, float - float64,
// str - string, bytes - []byte, list and tuple - []any, dict with str
// keys - map[string]any. A returned error raises RuntimeError with its
// message in Python. The GIL is released while the function runs.
type Func func(ctx context.Context, args []any) (any, error)

// pyHost receives gohost calls and logging records from Python and hands
// them to the app they came from.
type pyHost struct{}

// apps finds Handlers by the id their app was loaded with.
var apps struct {
	sync.RWMutex
	byID map[uint64]*Handler
	next uint64
}

// registerApp gives h an id before its app is imported (import-time code
// may already log or call Go).
func registerApp(h *Handler) uint64 {
	apps.Lock()
	defer apps.Unlock()
	if apps.byID == nil {
		apps.byID = make(map[uint64]*Handler)
	}
	apps.next++
	apps.byID[apps.next] = h
	return apps.next
}

func unregisterApp(id uint64) {
	apps.Lock()
	defer apps.Unlock()
	delete(apps.byID, id)
}

// appByID finds the app. A Python thread that is not serving a request
// (one the app started) has no app: then the only app with Go functions
// is meant, if there is exactly one.
func appByID(id uint64, wantFunctions bool) *Handler {
	apps.RLock()
	defer apps.RUnlock()
	if h := apps.byID[id]; h != nil || id != 0 {
		return h
	}
	var found *Handler
	for _, h := range apps.byID {
		if wantFunctions && len(h.cfg.functions) == 0 {
			continue
		}
		if found != nil {
			return nil
		}
		found = h
	}
	return found
}

func (pyHost) Call(ctx context.Context, app uint64, name string, args []any) (result any, err error) {
	h := appByID(app, true)
	if h == nil {
		return nil, fmt.Errorf("gohost: cannot tell which app calls %q from this thread: %w", name, cpython.ErrNoFunction)
	}
	f := h.cfg.functions[name]
	if f == nil {
		return nil, fmt.Errorf("gohost: app %s has no Go function %q: %w", h.cfg.name, name, cpython.ErrNoFunction)
	}
	defer func() {
		if r := recover(); r != nil {
			result, err = nil, fmt.Errorf("gohost: Go function %q panicked: %v", name, r)
		}
	}()
	return f(ctx, args)
}

func (pyHost) Log(ctx context.Context, app uint64, level int, logger, msg string) {
	lg := slog.Default()
	if h := appByID(app, false); h != nil {
		lg = h.cfg.logger
	}
	lg.Log(ctx, pythonLevel(level), msg, "logger", logger)
}

// pythonLevel maps a logging level number to slog's.
func pythonLevel(l int) slog.Level {
	switch {
	case l <= 10:
		return slog.LevelDebug
	case l <= 20:
		return slog.LevelInfo
	case l <= 30:
		return slog.LevelWarn
	case l <= 40:
		return slog.LevelError
	}
	return slog.LevelError + 4 // CRITICAL
}
