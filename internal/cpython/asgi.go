//go:build cgo

package cpython

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
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

// Conn is a connection scope running on the loop, named by its handle.
type Conn struct{ h Handle }

// post hands a message to the loop (see wsgi_asgi_post); no GIL is taken.
func (a *ASGI) post(kind int, h Handle, x, y []byte) error {
	rc := C.wsgi_asgi_post(a.p, C.int(kind), C.uintptr_t(h), cbytes(x), C.int64_t(len(x)), cbytes(y), C.int64_t(len(y)))
	runtime.KeepAlive(x)
	runtime.KeepAlive(y)
	if rc != 0 {
		return errors.New("wsgi: out of memory posting to the event loop")
	}
	return nil
}

// Start starts the app on scope (a value-encoded dict, see Encoder) with
// first (encoded, or nil) queued for the first receive().
func (a *ASGI) Start(h Handle, scope, first []byte) (Conn, error) {
	if err := a.post(0, h, scope, first); err != nil {
		return Conn{}, err
	}
	return Conn{h: h}, nil
}

// Deliver hands msg to the connection's receive().
func (a *ASGI) Deliver(c Conn, msg map[string]any) error {
	b, err := encodeValue(nil, msg, 0)
	if err != nil {
		return err
	}
	return a.post(1, c.h, b, nil)
}

// Drained wakes a send() that waits for Go's queue to drain.
func (a *ASGI) Drained(c Conn) { _ = a.post(2, c.h, nil, nil) }

// Cancel cancels the connection's task.
func (a *ASGI) Cancel(c Conn) { _ = a.post(3, c.h, nil, nil) }

// Release is a no-op: the loop forgets a connection when its task ends.
func (c Conn) Release() {}

func cbytes(b []byte) *C.char {
	if len(b) == 0 {
		return nil
	}
	return (*C.char)(unsafe.Pointer(&b[0]))
}
