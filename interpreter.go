package wsgi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/gowsgi/wsgi/internal/cpython"
)

// The process has one CPython interpreter. The first New starts it (with
// Python's signal handlers off, so Go keeps SIGINT, SIGTERM and SIGPIPE)
// and it lives until Finalize, or the last Close once a Handler with
// FinalizeOnClose was closed, or the process exits. It is never started
// again: finalizing and starting CPython again is unreliable with C
// extensions loaded. Every Handler shares it, each with its own app
// module.

// startInterpreter starts the interpreter once; later calls return the
// first call's result.
func startInterpreter() error {
	if finalized.Load() {
		return ErrFinalized
	}
	cpython.SetHost(pyHost{})
	return cpython.Initialize(knownStrs)
}

// openHandlers counts Handlers not yet closed.
var openHandlers atomic.Int64

var finalized atomic.Bool

// lifecycle orders New (shared) against finalizing (exclusive), so that
// no New runs on an interpreter being finalized.
var lifecycle sync.RWMutex

// finalizeWhenIdle is set once a Handler with FinalizeOnClose is closed:
// the interpreter is finalized when no Handler is open.
var finalizeWhenIdle atomic.Bool

// ErrFinalized is returned by New after Finalize.
var ErrFinalized = errors.New("wsgi: the Python interpreter has been finalized")

// Finalize shuts the interpreter down (Py_FinalizeEx: atexit handlers run,
// non-daemon Python threads are joined) once every Handler is closed. It
// refuses while a Handler is open, and returns ctx's error if finalizing
// takes longer than ctx allows (an app thread that never ends). After it,
// New fails: CPython cannot be started again reliably in one process. A
// program calls it last, before it exits; it is never needed for
// correctness. In a process that made sub-interpreters
// (Options.Interpreters) Python is not finalized (ending them would abort
// the process): Finalize only makes New fail, and atexit handlers do not
// run.
func Finalize(ctx context.Context) error {
	lifecycle.Lock()
	defer lifecycle.Unlock()
	if n := openHandlers.Load(); n > 0 {
		return fmt.Errorf("wsgi: cannot finalize Python: %d handlers are still open", n)
	}
	return finalizeLocked(ctx)
}

// finalizeIfIdle finalizes for the last Handler's Close, unless a New
// opened another Handler meanwhile: then that one's Close will.
func finalizeIfIdle(ctx context.Context) error {
	lifecycle.Lock()
	defer lifecycle.Unlock()
	if openHandlers.Load() > 0 {
		return nil
	}
	return finalizeLocked(ctx)
}

// finalizeLocked runs Py_FinalizeEx once, bounded by ctx; the caller holds
// lifecycle exclusively.
func finalizeLocked(ctx context.Context) error {
	if !finalized.CompareAndSwap(false, true) {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- cpython.Finalize() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("wsgi: finalizing Python: %w", ctx.Err())
	}
}

// PythonVersion is the version of the Python this binary is linked
// against, as sys.version prints it.
func PythonVersion() string { return cpython.Version() }

// PythonExecutable is the interpreter binary matching the linked
// libpython. It is what sys.executable holds inside the app, so that
// subprocesses and multiprocessing run the same Python.
func PythonExecutable() string { return cpython.Executable() }
