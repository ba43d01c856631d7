//go:build cgo && py310

package cpython

// Python 3.10, for example a pyenv build: set PKG_CONFIG_PATH to its
// lib/pkgconfig and add -Wl,-rpath to its lib directory (see the Makefile).

/*
#cgo pkg-config: python-3.10-embed
*/
import "C"
