//go:build cgo && !py310 && !py312 && !py313 && !py314 && !pyshared

package cpython

// The system Python (Debian bookworm: 3.11), linked statically from
// libpython3.11-dev's libpython3.11.a, as Debian links /usr/bin/python3.11:
// the shared libpython is built position-independent, and calls within it
// go through the PLT; the same FastAPI request costs 19% more instructions
// with it (RATIONALE.md, "libpython linked statically"). --export-dynamic
// exports the C API from the binary to the extension modules Python loads,
// which do not link libpython themselves. WSGI_PYTHON_PREFIX is where that
// Python's own binary lives (sys.executable; shim.c).
//
// -tags pyshared links the shared library through pkg-config instead
// (flags_shared.go): for systems that do not ship libpython3.X.a.
//
// Other versions are chosen with a build tag per version, never by
// PKG_CONFIG_PATH alone: Go's build cache does not hash pkg-config output
// (golang/go#24544), so switching only the path silently reuses objects
// linked against the old libpython.

/*
#cgo CFLAGS: -I/usr/include/python3.11 -DWSGI_PYTHON_PREFIX=/usr
#cgo LDFLAGS: -l:libpython3.11.a -lexpat -lz -lm -ldl -Wl,--export-dynamic
*/
import "C"
