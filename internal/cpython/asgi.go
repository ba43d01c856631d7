//go:build cgo

package cpython

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RelativePaths reports whether the app's ASGI scopes should carry path
// relative to root_path: a Starlette (or FastAPI) app on Starlette before
// 0.33 routes on path as is. Other apps get the spec's full path.
func (a *App) RelativePaths() bool { return C.wsgi_asgi_relative_paths(a.p) != 0 }

// IsASGI reports whether the app's callable is async (an ASGI app).
func (a *App) IsASGI() bool { return C.wsgi_app_is_asgi(a.p) != 0 }

// ASGI is an app served on an asyncio event loop that has no thread of
// its own (see RATIONALE.md, "ASGI: a loop that request goroutines
// drive"). The goroutine that needs the loop (a request starting, a body
// chunk arriving, a client's queue drained) takes the loop's lock and runs
// it in one C call: a task that does not suspend completes there, with no
// thread hand-off. What no request goroutine is there for (timers, sockets
// the app opened, callbacks from other threads through the loop's
// self-pipe) is run by a driver goroutine parked in Go's netpoller on the
// loop's selector, a timer at the earliest deadline, and kicks.
//
// Lock order: mu, then the GIL. Python threads never take mu, and no Go
// callback from Python may take it or block on a goroutine that wants it.
type ASGI struct {
	p     *C.wsgi_asgi
	mu    sync.Mutex // the loop's lock: one holder runs the loop
	armed time.Time  // under mu: when the driver wakes for a timer; zero: no timer
	// Under mu: wsgi_asgi_step's results, here rather than on each
	// caller's stack, whose variables would escape to the heap.
	next    C.double
	gilWait C.int64_t
	err     C.wsgi_error

	kick  chan struct{} // the driver has work: ready callbacks, an earlier timer
	ready chan struct{} // the poller saw the selector readable
	ran   chan struct{} // the driver ran an iteration since ready
	stop  chan struct{}
	wg    sync.WaitGroup
	epoll *os.File // a duplicate of the selector's epoll fd, in Go's netpoller
	onErr func(error)
}

// NewASGI creates the app's event loop and starts its driver. onErr
// receives errors of the loop's own iterations (never an app's exception,
// which its task reports).
func NewASGI(app *App, onErr func(error)) (*ASGI, error) {
	var e C.wsgi_error
	p := C.wsgi_asgi_new(app.p, &e)
	if p == nil {
		return nil, takeError(&e)
	}
	f, err := pollable(int(C.wsgi_asgi_epoll_fd(p)))
	if err != nil {
		C.wsgi_asgi_close(p)
		C.wsgi_asgi_free(p)
		return nil, err
	}
	a := &ASGI{p: p, epoll: f, onErr: onErr,
		kick: make(chan struct{}, 1), ready: make(chan struct{}, 1), ran: make(chan struct{}, 1),
		stop: make(chan struct{})}
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		C.wsgi_asgi_close(p)
		C.wsgi_asgi_free(p)
		return nil, err
	}
	a.wg.Add(2)
	go a.drive()
	go a.poll(rc)
	return a, nil
}

// pollable duplicates the selector's epoll fd into an *os.File that Go's
// netpoller watches: an epoll fd is readable when it has events.
func pollable(epfd int) (*os.File, error) {
	fd, err := unix.FcntlInt(uintptr(epfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("wsgi: the event loop's selector: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("wsgi: the event loop's selector: %w", err)
	}
	f := os.NewFile(uintptr(fd), "asyncio-selector")
	if err := f.SetReadDeadline(time.Time{}); err != nil { // not in the netpoller
		_ = f.Close()
		return nil, fmt.Errorf("wsgi: the event loop's selector cannot be polled: %w", err)
	}
	return f, nil
}

// step runs one operation on the loop under its lock (see wsgi_asgi_step)
// and wakes the driver when work is left that no one else will run.
func (a *ASGI) step(kind C.int, h Handle, x, y []byte) error {
	_, err := a.stepWait(kind, h, x, y)
	return err
}

// stepWait is step, also reporting how long the caller waited for the
// loop's lock and the GIL (for a start; zero otherwise).
func (a *ASGI) stepWait(kind C.int, h Handle, x, y []byte) (time.Duration, error) {
	var wait time.Duration
	if !a.mu.TryLock() { // only a wait is timed: no clock reads when the loop is free
		t0 := time.Now()
		a.mu.Lock()
		if kind == C.WSGI_ASGI_START {
			wait = time.Since(t0)
		}
	}
	rc := C.wsgi_asgi_step(a.p, kind, C.uintptr_t(h), cbytes(x), C.int64_t(len(x)), cbytes(y), C.int64_t(len(y)),
		&a.next, &a.gilWait, &a.err)
	kick := rc != 0 || a.driverNeeded(float64(a.next))
	var err error
	if rc != 0 {
		e := a.err // copied under mu; only here, since it escapes
		err = takeError(&e)
	}
	if kind == C.WSGI_ASGI_START {
		wait += time.Duration(a.gilWait)
	}
	a.mu.Unlock()
	runtime.KeepAlive(x)
	runtime.KeepAlive(y)
	if kick {
		select {
		case a.kick <- struct{}{}:
		default: // a kick is pending already
		}
	}
	return wait, err
}

// driverNeeded reports whether the driver must wake after a step that left
// next (see wsgi_asgi_step): callbacks are ready, or the earliest timer is
// earlier than the one it sleeps for. a.mu is held, so the driver's own
// arming (also under a.mu) is never missed.
func (a *ASGI) driverNeeded(next float64) bool {
	switch {
	case next == -2:
		return true
	case next < 0:
		return false
	}
	due := time.Now().Add(time.Duration(next * float64(time.Second)))
	return a.armed.IsZero() || due.Before(a.armed)
}

// drive runs the loop's iterations that no request goroutine runs: timers,
// I/O the app waits for, callbacks from other threads, and ready callbacks
// left by a step. It yields between busy iterations, so that a task
// spinning on asyncio.sleep(0) cannot starve the requests (sync.Mutex
// hands the lock to a waiter that waited over 1ms).
func (a *ASGI) drive() {
	defer a.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var next C.double
		var e C.wsgi_error
		a.mu.Lock()
		var gilWait C.int64_t
		rc := C.wsgi_asgi_step(a.p, C.WSGI_ASGI_RUN_ONCE, 0, nil, 0, nil, 0, &next, &gilWait, &e)
		wait := time.Duration(-1) // no timer
		switch {
		case rc != 0:
		case next == -2:
			wait = 0
		case next >= 0:
			wait = time.Duration(float64(next) * float64(time.Second))
		}
		a.armed = time.Time{}
		if wait >= 0 {
			a.armed = time.Now().Add(wait)
		}
		a.mu.Unlock()
		if rc != 0 && a.onErr != nil {
			a.onErr(takeError(&e))
		}
		select {
		case a.ran <- struct{}{}:
		default:
		}
		if wait == 0 {
			select {
			case <-a.stop:
				return
			default:
				runtime.Gosched()
				continue
			}
		}
		if wait > 0 {
			timer.Reset(wait)
		}
		select {
		case <-a.stop:
			timer.Stop()
			return
		case <-a.kick:
		case <-a.ready:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// poll waits in Go's netpoller for the selector to have events, tells the
// driver, and waits for its next iteration before looking again (the
// selector stays readable until the loop has handled them).
func (a *ASGI) poll(rc syscall.RawConn) {
	defer a.wg.Done()
	var ev [1]unix.EpollEvent
	for {
		err := rc.Read(func(fd uintptr) bool {
			n, err := unix.EpollWait(int(fd), ev[:], 0)
			return n > 0 || (err != nil && err != unix.EINTR)
		})
		if err != nil {
			return // closed by Stop
		}
		select {
		case <-a.ran: // a stale one, from before these events
		default:
		}
		select {
		case a.ready <- struct{}{}:
		case <-a.stop:
			return
		}
		select {
		case <-a.ran:
		case <-a.stop:
			return
		}
	}
}

// Stop cancels the tasks still running (waiting at most timeout for them),
// stops the driver, closes the loop and frees the app.
func (a *ASGI) Stop(timeout time.Duration) error {
	var e C.wsgi_error
	var err error
	if C.wsgi_asgi_shutdown(a.p, C.double(timeout.Seconds()), &e) != 0 {
		err = takeError(&e)
	}
	close(a.stop)
	_ = a.epoll.Close()
	a.wg.Wait()
	a.mu.Lock()
	C.wsgi_asgi_close(a.p)
	a.mu.Unlock()
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

// Start starts the app on scope (a value-encoded dict, see Encoder) with
// first (encoded, or nil) queued for the first receive(). The app runs in
// the calling goroutine until its task first suspends. wait is how long
// the start waited for the loop (another goroutine running it) and the GIL.
func (a *ASGI) Start(h Handle, scope, first []byte) (c Conn, wait time.Duration, err error) {
	wait, err = a.stepWait(C.WSGI_ASGI_START, h, scope, first)
	if err != nil {
		return Conn{}, wait, err
	}
	return Conn{h: h}, wait, nil
}

// Deliver hands msg to the connection's receive(); what it wakes runs in
// the calling goroutine.
func (a *ASGI) Deliver(c Conn, msg map[string]any) error {
	bp := deliverBufs.Get().(*[]byte)
	b, err := encodeValue((*bp)[:0], msg, 0)
	if err == nil {
		err = a.step(C.WSGI_ASGI_DELIVER, c.h, b, nil)
	}
	if cap(b) <= maxPooledDelivery {
		*bp = b[:0]
		deliverBufs.Put(bp)
	}
	return err
}

// deliverBufs holds Deliver's encoding buffers: the loop makes Python
// objects of a message within the step, so its buffer is free once the
// step returns. Those of messages over maxPooledDelivery are left to the
// GC, so that a few large WebSocket messages hold no memory.
var deliverBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledDelivery = 64 << 10

// Drained wakes a send() that waits for Go's queue to drain.
func (a *ASGI) Drained(c Conn) { a.report(a.step(C.WSGI_ASGI_DRAINED, c.h, nil, nil)) }

// Cancel cancels the connection's task.
func (a *ASGI) Cancel(c Conn) { a.report(a.step(C.WSGI_ASGI_CANCEL, c.h, nil, nil)) }

func (a *ASGI) report(err error) {
	if err != nil && a.onErr != nil {
		a.onErr(err)
	}
}

// Release is a no-op: the loop forgets a connection when its task ends.
func (c Conn) Release() {}

func cbytes(b []byte) *C.char {
	if len(b) == 0 {
		return nil
	}
	return (*C.char)(unsafe.Pointer(&b[0]))
}
