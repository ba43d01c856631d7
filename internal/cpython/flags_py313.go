//go:build cgo && py313

package cpython

// Python 3.13, for example a pyenv build: set PKG_CONFIG_PATH to its
// lib/pkgconfig and add -Wl,-rpath to its lib directory (see the Makefile).

/*
#cgo pkg-config: python-3.13-embed
*/
import "C"
