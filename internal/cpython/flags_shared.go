//go:build cgo && pyshared && !py310 && !py312 && !py313 && !py314

package cpython

// The system Python through its shared libpython (pkg-config's
// python3-embed), for systems without a static libpython3.X.a; see
// flags_default.go for why the static library is the default.

/*
#cgo pkg-config: python3-embed
*/
import "C"
