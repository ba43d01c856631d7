//go:build cgo

package cpython

/*
#cgo CFLAGS: -O2 -Wall -Wno-unused-parameter
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	_ "embed"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

//go:embed host.py
var hostSource string

// Available reports whether this build can run Python.
const Available = true

var (
	initOnce sync.Once
	initErr  error
	// mainCalls runs functions on Python's main thread: the OS thread
	// that initialised the interpreter, kept for that purpose only.
	mainCalls = make(chan func())
	started   atomic.Bool // the interpreter is up
)

// Initialize starts the process' interpreter on the first call, with
// Python's signal handlers off and the GIL released; later calls return the
// first call's result. keys are the environ keys that a packed environ
// refers to by index.
//
// The interpreter is started on a goroutine locked to its OS thread for
// the life of the process. That thread is Python's main thread: apps are
// imported there (as under every WSGI server, so import-time code that
// needs the main thread works), and requests never run there.
func Initialize(keys []string) error {
	initOnce.Do(func() {
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread() // never unlocked: this thread stays Python's main thread
			initErr = initialize(keys)
			started.Store(initErr == nil)
			close(done)
			if initErr != nil {
				return
			}
			for f := range mainCalls {
				f()
			}
		}()
		<-done
	})
	return initErr
}

func initialize(keys []string) error {
	var packed []byte
	for _, k := range keys {
		packed = append(packed, k...)
		packed = append(packed, 0)
	}
	packed = append(packed, 0)
	program := C.CString(Executable())
	defer C.free(unsafe.Pointer(program))
	src := C.CString(hostSource)
	defer C.free(unsafe.Pointer(src))
	var e C.wsgi_error
	if C.wsgi_initialize(program, src, (*C.char)(unsafe.Pointer(&packed[0])),
		C.int64_t(len(packed)), C.int32_t(len(keys)), &e) != 0 {
		return errors.New("wsgi: starting python: " + takeError(&e).Error())
	}
	return nil
}

// onMainThread runs f on Python's main thread and waits for it.
func onMainThread(f func()) {
	done := make(chan struct{})
	mainCalls <- func() {
		defer close(done)
		f()
	}
	<-done
}

// Finalize finalizes the interpreter on its main thread. Nothing may run
// Python afterwards. Once sub-interpreters were made it does nothing:
// Py_FinalizeEx would end them, which aborts the process ("not the last
// thread": every thread that served a request keeps a state in them, and
// tearing them down aborts on 3.13.0 anyway, cpython#136423).
func Finalize() error {
	if !started.Load() || SubInterpreters() > 0 {
		return nil
	}
	var rc C.int
	onMainThread(func() { rc = C.wsgi_finalize() })
	if rc != 0 {
		return errors.New("wsgi: Py_FinalizeEx reported an error (see stderr)")
	}
	return nil
}

// Version is the linked Python's version string (sys.version).
func Version() string { return C.GoString(C.wsgi_version()) }

// MinorVersion is the linked Python's "major.minor", as in "3.11".
func MinorVersion() string {
	v, _, _ := strings.Cut(Version(), " ")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}

// Executable is the interpreter binary of the linked libpython, which
// becomes sys.executable, so that code starting sys.executable
// (multiprocessing, subprocess helpers) runs the same Python. "" if it
// cannot be found.
func Executable() string { return C.GoString(C.wsgi_guess_executable()) }

// Exception is a Python exception copied out of the interpreter.
type Exception struct {
	Type      string // qualified type name: "ValueError", "myapp.Oops"
	Message   string // str(exception)
	Traceback string // formatted as Python prints it
}

func (e *Exception) Error() string {
	if e.Message == "" {
		return e.Type
	}
	return e.Type + ": " + e.Message
}

func takeError(e *C.wsgi_error) *Exception {
	x := &Exception{
		Type:      C.GoString(e._type),
		Message:   C.GoString(e.message),
		Traceback: C.GoString(e.traceback),
	}
	C.wsgi_error_free(e)
	return x
}

// App is a loaded WSGI callable.
type App struct {
	p      *C.wsgi_app
	interp int
}

// Interp is the interpreter the app was imported in (0: the main one).
func (a *App) Interp() int { return a.interp }

// MaxInterpreters is how many sub-interpreters a process can make.
const MaxInterpreters = C.WSGI_MAX_INTERPS - 1

var (
	poolMu sync.Mutex
	pool   []int // sub-interpreters made and not in use
	made   int   // sub-interpreters made
)

// AcquireInterpreters returns n isolated sub-interpreters, each with its
// own GIL: free ones from the process' pool first, then new ones. They are
// never torn down (tearing down interpreters that imported datetime,
// sqlite3 or email aborts on 3.13.0, cpython#136423): give them back with
// ReleaseInterpreters for a later caller to reuse. Needs Python 3.12+.
func AcquireInterpreters(n int) ([]int, error) {
	poolMu.Lock()
	defer poolMu.Unlock()
	if len(pool)+MaxInterpreters-made < n {
		return nil, fmt.Errorf("wsgi: %d interpreters wanted, %d left in this process (at most %d)",
			n, len(pool)+MaxInterpreters-made, MaxInterpreters)
	}
	var ids []int
	for len(ids) < n && len(pool) > 0 {
		ids = append(ids, pool[len(pool)-1])
		pool = pool[:len(pool)-1]
	}
	for len(ids) < n {
		var e C.wsgi_error
		var i C.int
		onMainThread(func() { i = C.wsgi_interp_new(&e) })
		if i < 0 {
			pool = append(pool, ids...)
			return nil, fmt.Errorf("wsgi: making a sub-interpreter: %w", takeError(&e))
		}
		made++
		ids = append(ids, int(i))
	}
	return ids, nil
}

// ReleaseInterpreters gives interpreters back to the pool. Nothing of the
// caller's may run in them any more; what it imported stays in their
// sys.modules.
func ReleaseInterpreters(ids []int) {
	poolMu.Lock()
	defer poolMu.Unlock()
	pool = append(pool, ids...)
}

// InterpretersInUse is how many sub-interpreters are acquired and not
// released.
func InterpretersInUse() int {
	poolMu.Lock()
	defer poolMu.Unlock()
	return made - len(pool)
}

// SubInterpreters is how many sub-interpreters the process has made.
func SubInterpreters() int {
	poolMu.Lock()
	defer poolMu.Unlock()
	return made
}

// LoadApp imports module from dir on Python's main thread, in interpreter
// interp (0: the main one, else one of AcquireInterpreters), and returns its
// callable. id names the app to the Host; name tags it. sitePackages ("" for none) is added with
// site.addsitedir; pythonPath entries go on sys.path after dir.
//
// Signal handlers the import installed (signal.signal at import time) are
// undone, since Go owns the process' signals; those signals are returned
// so that the caller can warn.
func LoadApp(interp int, id uint64, name, dir, module, callable, sitePackages string, pythonPath []string) (*App, []syscall.Signal, error) {
	strs := []string{name, dir, module, callable, sitePackages}
	strs = append(strs, pythonPath...)
	var packed []byte
	for _, s := range strs {
		if strings.IndexByte(s, 0) >= 0 {
			return nil, nil, errors.New("wsgi: NUL byte in app settings")
		}
		packed = append(packed, s...)
		packed = append(packed, 0)
	}
	var e C.wsgi_error
	var p *C.wsgi_app
	var restored C.int64_t
	onMainThread(func() {
		p = C.wsgi_app_load(C.int(interp), C.uint64_t(id), (*C.char)(unsafe.Pointer(&packed[0])), C.int64_t(len(packed)),
			C.int32_t(len(strs)), &restored, &e)
	})
	if p == nil {
		return nil, nil, takeError(&e)
	}
	var sigs []syscall.Signal
	for s := 1; s < 64; s++ {
		if restored&(1<<s) != 0 {
			sigs = append(sigs, syscall.Signal(s))
		}
	}
	return &App{p: p, interp: interp}, sigs, nil
}

// PurgeModules forgets (removes from sys.modules of interpreter interp)
// every module loaded from a file under dir, so that the next import reads
// the files again. It runs on Python's main thread, where apps are
// imported.
func PurgeModules(interp int, dir string) error {
	fn, arg := C.CString("purge_modules"), C.CString(dir)
	defer C.free(unsafe.Pointer(fn))
	defer C.free(unsafe.Pointer(arg))
	var e C.wsgi_error
	var rc C.int
	onMainThread(func() { rc = C.wsgi_host_call(C.int(interp), fn, arg, &e) })
	if rc != 0 {
		return takeError(&e)
	}
	return nil
}

// Free drops the app's Python references and collects the garbage they
// leave (a module is full of reference cycles). No request may be running.
func (a *App) Free() {
	if a.p != nil {
		C.wsgi_app_free(a.p, 1)
		a.p = nil
	}
}

// StepKind says what one step of a request produced.
type StepKind int

// The step kinds; see shim.h.
const (
	Done  StepKind = C.WSGI_STEP_DONE
	Chunk StepKind = C.WSGI_STEP_CHUNK
	List  StepKind = C.WSGI_STEP_LIST
	File  StepKind = C.WSGI_STEP_FILE
	Error StepKind = C.WSGI_STEP_ERROR
	End   StepKind = C.WSGI_STEP_END
)

// Step is the outcome of Start or Next.
type Step struct {
	Kind StepKind
	// Data is a Chunk's bytes; it points into a Python object and is
	// valid until the next call on the Call.
	Data []byte
	// Views are a List body's items, valid until Finish.
	Views [][]byte
	// Copied is how many body bytes Done copied into Start's buffer.
	Copied int
	// FD, Offset and Size describe a File: a descriptor the caller must
	// close, the file object's position and the file's size.
	FD     int
	Offset int64
	Size   int64
	// Err is the app's exception (Error), or close()'s (Done).
	Err *Exception
	// GILWait is how long Start waited for the GIL (Start's step only).
	GILWait time.Duration
}

// Call is one request in progress. A Call's methods must run on one OS
// thread from Start to the end (the caller pins the goroutine with
// runtime.LockOSThread) so that all Python work of the request uses one
// thread state.
type Call struct {
	req   *C.wsgi_req
	step  C.wsgi_step
	views [][]byte
}

// Live reports whether the request still needs Next or Finish.
func (c *Call) Live() bool { return c.req != nil }

// Start builds the environ from env (the packed format of environ.go),
// calls the app with the request registered as handle and returns its first step. A list body that
// fits buf is copied there and the request ends at once (Done). thread,
// if not nil, receives the identifier of the Python thread serving the
// request (threading.get_ident()) before the app is called: the live view
// reads it while the app runs.
func (a *App) Start(c *Call, handle Handle, env []byte, buf []byte, thread *atomic.Uint64) Step {
	var envp, bufp *C.char
	if len(env) > 0 {
		envp = (*C.char)(unsafe.Pointer(&env[0]))
	}
	if len(buf) > 0 {
		bufp = (*C.char)(unsafe.Pointer(&buf[0]))
	}
	C.wsgi_req_start(a.p, C.uintptr_t(handle), envp, C.int64_t(len(env)), bufp,
		C.int64_t(len(buf)), (*C.uint64_t)(unsafe.Pointer(thread)), &c.req, &c.step)
	return c.result()
}

// Next takes the next body chunk; at the end of the body it returns End,
// and the request waits for Finish to call close().
func (c *Call) Next() Step {
	C.wsgi_req_next(c.req, &c.step)
	return c.result()
}

// Finish calls the body's close() and releases the request. It returns
// close()'s exception, if any.
func (c *Call) Finish() *Exception {
	if c.req == nil {
		return nil
	}
	var e C.wsgi_error
	rc := C.wsgi_req_finish(c.req, &e)
	c.req = nil
	if rc != 0 {
		return takeError(&e)
	}
	return nil
}

func (c *Call) result() Step {
	s := &c.step
	st := Step{Kind: StepKind(s.kind), GILWait: time.Duration(s.gil_wait_ns)}
	switch st.Kind {
	case Done:
		c.req = nil
		st.Copied = int(s.len)
		if s.closed_err != 0 {
			st.Err = takeError(&s.err)
		}
	case Chunk:
		st.Data = unsafe.Slice((*byte)(unsafe.Pointer(s.data)), int(s.len))
	case List:
		iov := unsafe.Slice(s.iov, int(s.niov))
		c.views = c.views[:0]
		for _, v := range iov {
			c.views = append(c.views, unsafe.Slice((*byte)(unsafe.Pointer(v.base)), int(v.len)))
		}
		st.Views = c.views
	case File:
		st.FD, st.Offset, st.Size = int(s.fd), int64(s.offset), int64(s.size)
	case Error:
		st.Err = takeError(&s.err)
	}
	return st
}

// ThreadIdent is the calling OS thread's Python thread identifier.
func ThreadIdent() uint64 { return uint64(C.wsgi_thread_ident()) }

// Interrupt raises RequestTimeout in the Python thread ident of
// interpreter interp at its next bytecode (set), or takes back one not
// raised yet (!set).
func Interrupt(interp int, ident uint64, set bool) {
	s := C.int(0)
	if set {
		s = 1
	}
	C.wsgi_interrupt(C.int(interp), C.ulong(ident), s)
}

// Eval runs Python source in a fresh namespace of the main interpreter and
// returns str(result), where result is a variable the source may set. For
// tests and diagnostics.
func Eval(src string) (string, error) { return EvalIn(0, src) }

// EvalIn is Eval in interpreter interp.
func EvalIn(interp int, src string) (string, error) {
	cs := C.CString(src)
	defer C.free(unsafe.Pointer(cs))
	var out *C.char
	var e C.wsgi_error
	if C.wsgi_eval(C.int(interp), cs, &out, &e) != 0 {
		return "", takeError(&e)
	}
	defer C.free(unsafe.Pointer(out))
	return C.GoString(out), nil
}

// Stacks calls the host module's stacks(request) with the GIL taken once
// and returns its answer: the Python stacks of requests in progress (see
// host.py for the JSON formats).
func Stacks(request string) (string, error) { return StacksIn(0, request) }

// StacksIn is Stacks for the requests of interpreter interp.
func StacksIn(interp int, request string) (string, error) {
	fn := C.CString("stacks")
	defer C.free(unsafe.Pointer(fn))
	arg := C.CString(request)
	defer C.free(unsafe.Pointer(arg))
	var out *C.char
	var e C.wsgi_error
	if C.wsgi_host_call_str(C.int(interp), fn, arg, &out, &e) != 0 {
		return "", takeError(&e)
	}
	defer C.free(unsafe.Pointer(out))
	return C.GoString(out), nil
}
