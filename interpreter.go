package wsgi

import (
	"github.com/gowsgi/wsgi/internal/cpython"
)

// The process has one CPython interpreter. The first New starts it (with
// Python's signal handlers off, so Go keeps SIGINT, SIGTERM and SIGPIPE)
// and it lives until the process exits: finalizing and starting CPython
// again is unreliable with C extensions loaded. Every Handler shares it,
// each with its own app module.

// startInterpreter starts the interpreter once; later calls return the
// first call's result.
func startInterpreter() error {
	cpython.SetHost(pyHost{})
	return cpython.Initialize(knownEnvironKeys)
}

// PythonVersion is the version of the Python this binary is linked
// against, as sys.version prints it.
func PythonVersion() string { return cpython.Version() }

// PythonExecutable is the interpreter binary matching the linked
// libpython. It is what sys.executable holds inside the app, so that
// subprocesses and multiprocessing run the same Python.
func PythonExecutable() string { return cpython.Executable() }
