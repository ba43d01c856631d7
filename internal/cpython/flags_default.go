//go:build cgo && !py310 && !py312 && !py313 && !py314

package cpython

// The system Python (Debian bookworm: 3.11). Other versions are chosen with
// a build tag per version, never by PKG_CONFIG_PATH alone: Go's build cache
// does not hash pkg-config output (golang/go#24544), so switching only the
// path silently reuses objects linked against the old libpython.

/*
#cgo pkg-config: python3-embed
*/
import "C"
