//go:build cgo

package cpython

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"runtime"
	"time"
	"unsafe"
)

// RelativePaths reports whether the app's ASGI scopes should carry path
// relative to root_path: a Starlette (or FastAPI) app on Starlette before
// 0.33 routes on path as is. Other apps get the spec's full path.
func (a *App) RelativePaths() bool { return C.wsgi_asgi_relative_paths(a.p) != 0 }

// IsASGI reports whether the app's callable is async (an ASGI app).
func (a *App) IsASGI() bool { return C.wsgi_app_is_asgi(a.p) != 0 }

// ASGI is an app served on an asyncio event loop of its own.
type ASGI struct {
	p    *C.wsgi_asgi
	done chan error // the loop's thread ended
}

// NewASGI creates the app's event loop and starts it on an OS thread kept
// for it.
func NewASGI(app *App) (*ASGI, error) {
	var e C.wsgi_error
	p := C.wsgi_asgi_new(app.p, &e)
	if p == nil {
		return nil, takeError(&e)
	}
	a := &ASGI{p: p, done: make(chan error, 1)}
	go func() {
		// The loop's Python code runs on this thread for as long as the
		// loop runs; Go callbacks from it are ordinary cgo callbacks.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var e C.wsgi_error
		if C.wsgi_asgi_run(a.p, &e) != 0 {
			a.done <- takeError(&e)
			return
		}
		a.done <- nil
	}()
	return a, nil
}

// Stop stops the event loop (tasks still running are cancelled), waits
// for its thread and frees the app.
func (a *ASGI) Stop() error {
	C.wsgi_asgi_stop(a.p)
	err := <-a.done
	C.wsgi_asgi_free(a.p)
	return err
}

// Lifespan sends lifespan.<event> ("startup" or "shutdown") and waits for
// the app's answer: "complete", "failed" (msg says why) or "unsupported".
func (a *ASGI) Lifespan(event string, timeout time.Duration) (status, msg string, err error) {
	ev := C.CString(event)
	defer C.free(unsafe.Pointer(ev))
	var cs, cm *C.char
	var e C.wsgi_error
	if C.wsgi_asgi_lifespan(a.p, ev, C.double(timeout.Seconds()), &cs, &cm, &e) != 0 {
		return "", "", takeError(&e)
	}
	defer C.free(unsafe.Pointer(cs))
	defer C.free(unsafe.Pointer(cm))
	return C.GoString(cs), C.GoString(cm), nil
}

// Conn is a connection scope running on the loop: the Python request
// object, kept by Go as a C pointer.
type Conn struct{ p unsafe.Pointer }

// Start starts the app on scope (a map[string]any, converted as gohost
// values: use []byte for bytes) with first, if not nil, queued for the
// first receive().
func (a *ASGI) Start(h Handle, scope map[string]any, first map[string]any) (Conn, error) {
	sb, err := encodeValue(nil, scope, 0)
	if err != nil {
		return Conn{}, err
	}
	var fb []byte
	if first != nil {
		if fb, err = encodeValue(nil, first, 0); err != nil {
			return Conn{}, err
		}
	}
	var e C.wsgi_error
	p := C.wsgi_asgi_start(a.p, C.uintptr_t(h), cbytes(sb), C.int64_t(len(sb)), cbytes(fb), C.int64_t(len(fb)), &e)
	runtime.KeepAlive(sb)
	runtime.KeepAlive(fb)
	if p == nil {
		return Conn{}, takeError(&e)
	}
	return Conn{p: p}, nil
}

// Deliver hands msg to the connection's receive().
func (a *ASGI) Deliver(c Conn, msg map[string]any) error {
	b, err := encodeValue(nil, msg, 0)
	if err != nil {
		return err
	}
	var e C.wsgi_error
	rc := C.wsgi_asgi_deliver(a.p, c.p, cbytes(b), C.int64_t(len(b)), &e)
	runtime.KeepAlive(b)
	if rc != 0 {
		return takeError(&e)
	}
	return nil
}

// Drained wakes a send() that waits for Go's queue to drain.
func (a *ASGI) Drained(c Conn) { C.wsgi_asgi_drained(a.p, c.p) }

// Cancel cancels the connection's task.
func (a *ASGI) Cancel(c Conn) { C.wsgi_asgi_cancel(a.p, c.p) }

// Release drops Go's reference to the connection's Python object.
func (c Conn) Release() {
	if c.p != nil {
		C.wsgi_asgi_release(c.p)
	}
}

func cbytes(b []byte) *C.char {
	if len(b) == 0 {
		return nil
	}
	return (*C.char)(unsafe.Pointer(&b[0]))
}
