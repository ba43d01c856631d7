//go:build cgo

package cpython

// Every Go function that C calls. Each recovers its own panics: a Go panic
// unwinding through Python frames would skip Python's cleanup and leave the
// GIL held, deadlocking the next request.

/*
#include <stdint.h>
#include <stdlib.h>
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"unsafe"
)

// Request is the Go side of one request, as the C layer sees it. Its
// methods are called on the request's own goroutine (the one that called
// Start), from inside the app call or a body step.
type Request interface {
	// StartResponse validates start_response's arguments: packed holds
	// [u32 len][latin-1 bytes] for the status, then for each header its
	// name and value. It returns one of the StartResponse* codes and, for
	// errors, the message.
	StartResponse(packed string, nheaders int, hasExcInfo bool) (code int, msg string)
	// Write sends body bytes from write() at once. The GIL is released.
	Write(p []byte) error
	// Read performs a wsgi.input operation (ReadOp or ReadLineOp, size n;
	// n < 0 means no limit) and keeps the result for Take. It returns the
	// result's length, and direct when the bytes are not read yet: Take
	// reads them from the client. The GIL is released.
	Read(op int, n int64) (k int64, direct bool, err error)
	// Take copies the kept result into dst (zero-filling what is missing),
	// or for a direct result reads it into dst, and forgets it. It returns
	// how many bytes dst holds. The GIL is held, except for a direct
	// result. A nil dst drops the result.
	Take(dst []byte) (int, error)
	// LogErrors receives text written to wsgi.errors. The GIL is released.
	LogErrors(text []byte)
	// Context is the request's context, for Go functions called from it.
	Context() context.Context
}

// Host receives what Python code sends to Go outside the WSGI protocol:
// gohost calls and logging records. app is the id given to LoadApp (0 when
// the Python thread is not running an app: a thread the app started); ctx
// is the request's context (context.Background() outside a request).
type Host interface {
	Call(ctx context.Context, app uint64, name string, args []any) (any, error)
	Log(ctx context.Context, app uint64, level int, logger, msg string)
}

var host Host

// SetHost installs the receiver of gohost calls and log records. Call it
// before Initialize.
func SetHost(h Host) { host = h }

// Errors a Host.Call may wrap to choose the Python exception.
var (
	ErrNoFunction = errors.New("no such function") // AttributeError
	ErrBadValue   = errors.New("bad value")        // TypeError or ValueError
)

// BadValue marks err as ErrBadValue without changing its message.
func BadValue(err error) error { return badValue{err} }

type badValue struct{ err error }

func (b badValue) Error() string        { return b.err.Error() }
func (b badValue) Unwrap() error        { return b.err }
func (b badValue) Is(target error) bool { return target == ErrBadValue }

// Codes returned by Request.StartResponse.
const (
	StartResponseOK      = 0 // headers accepted
	StartResponseReraise = 1 // exc_info given after headers were sent: re-raise it
	StartResponseState   = 2 // called at the wrong time: RuntimeError
	StartResponseInvalid = 3 // bad status or header: ValueError
)

// Operations for Request.Read.
const (
	ReadOp     = 0
	ReadLineOp = 1
)

// ErrRequestEnded is reported for objects used after their request ended.
type errEnded struct{}

func (errEnded) Error() string { return "wsgi: request has ended" }

func lookup(h C.uintptr_t) (Request, bool) {
	r, ok := Handle(h).request().(Request)
	return r, ok
}

// contextOf is the context of the request behind h, WSGI or ASGI.
func contextOf(h C.uintptr_t) context.Context {
	if r, ok := Handle(h).request().(interface{ Context() context.Context }); ok {
		return r.Context()
	}
	return context.Background()
}

// setErr copies msg into C's error buffer, NUL-terminated and truncated.
func setErr(buf *C.char, n C.int64_t, msg string) {
	if n <= 0 {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(n))
	k := copy(b[:len(b)-1], msg)
	b[k] = 0
}

func panicMessage(where string, r any) string {
	return fmt.Sprintf("wsgi: internal error in %s: %v", where, r)
}

//export wsgiGoStartResponse
func wsgiGoStartResponse(h C.uintptr_t, p *C.char, n C.int64_t, nh C.int32_t, hasExc C.int32_t,
	errbuf *C.char, errcap C.int64_t) (rc C.int32_t) {
	defer func() {
		if r := recover(); r != nil {
			rc = StartResponseState
			setErr(errbuf, errcap, panicMessage("start_response", r))
		}
	}()
	req, ok := lookup(h)
	if !ok {
		setErr(errbuf, errcap, errEnded{}.Error())
		return StartResponseState
	}
	code, msg := req.StartResponse(C.GoStringN(p, C.int(n)), int(nh), hasExc != 0)
	if code != StartResponseOK {
		setErr(errbuf, errcap, msg)
	}
	return C.int32_t(code)
}

//export wsgiGoWrite
func wsgiGoWrite(h C.uintptr_t, p *C.char, n C.int64_t, errbuf *C.char, errcap C.int64_t) (rc C.int32_t) {
	defer func() {
		if r := recover(); r != nil {
			rc = 2
			setErr(errbuf, errcap, panicMessage("write", r))
		}
	}()
	req, ok := lookup(h)
	if !ok {
		setErr(errbuf, errcap, errEnded{}.Error())
		return 2
	}
	var b []byte
	if n > 0 {
		b = unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))
	}
	if err := req.Write(b); err != nil {
		setErr(errbuf, errcap, err.Error())
		if _, state := err.(interface{ StateError() }); state {
			return 2
		}
		return 1
	}
	return 0
}

//export wsgiGoRead
func wsgiGoRead(h C.uintptr_t, op C.int, n C.int64_t, direct *C.int, errbuf *C.char, errcap C.int64_t) (got C.int64_t) {
	defer func() {
		if r := recover(); r != nil {
			got = -1
			setErr(errbuf, errcap, panicMessage("wsgi.input", r))
		}
	}()
	req, ok := lookup(h)
	if !ok {
		setErr(errbuf, errcap, errEnded{}.Error())
		return -2
	}
	k, d, err := req.Read(int(op), int64(n))
	if err != nil {
		setErr(errbuf, errcap, err.Error())
		return -1
	}
	if d {
		*direct = 1
	}
	return C.int64_t(k)
}

//export wsgiGoReadTake
func wsgiGoReadTake(h C.uintptr_t, dst *C.char, n C.int64_t, errbuf *C.char, errcap C.int64_t) (copied C.int64_t) {
	var b []byte
	if dst != nil && n > 0 {
		b = unsafe.Slice((*byte)(unsafe.Pointer(dst)), int(n))
	}
	defer func() {
		if r := recover(); r != nil {
			copied = -1
			setErr(errbuf, errcap, panicMessage("wsgi.input", r))
		}
	}()
	req, ok := lookup(h)
	if !ok {
		setErr(errbuf, errcap, errEnded{}.Error())
		return -1
	}
	k, err := req.Take(b)
	if err != nil {
		setErr(errbuf, errcap, err.Error())
		return -1
	}
	return C.int64_t(k)
}

//export wsgiGoLog
func wsgiGoLog(h C.uintptr_t, p *C.char, n C.int64_t) {
	defer func() { _ = recover() }()
	req, ok := lookup(h)
	if !ok || n <= 0 {
		return
	}
	req.LogErrors(unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)))
}

//export wsgiGoCall
func wsgiGoCall(app C.uint64_t, h C.uintptr_t, name *C.char, nameLen C.int64_t, args *C.char, argsLen C.int64_t,
	out **C.char, outLen *C.int64_t, errbuf *C.char, errcap C.int64_t) (rc C.int32_t) {
	defer func() {
		if r := recover(); r != nil {
			rc = 1
			setErr(errbuf, errcap, fmt.Sprintf("gohost: Go function panicked: %v", r))
		}
	}()
	fail := func(err error) C.int32_t {
		setErr(errbuf, errcap, err.Error())
		switch {
		case errors.Is(err, ErrNoFunction):
			return 2
		case errors.Is(err, ErrBadValue):
			return 3
		}
		return 1
	}
	if host == nil {
		return fail(fmt.Errorf("gohost: no Go functions here: %w", ErrNoFunction))
	}
	decoded, err := decodeArgs(C.GoBytes(unsafe.Pointer(args), C.int(argsLen)))
	if err != nil {
		return fail(BadValue(err))
	}
	result, err := host.Call(contextOf(h), uint64(app), C.GoStringN(name, C.int(nameLen)), decoded)
	if err != nil {
		return fail(err)
	}
	enc, err := encodeValue(nil, result, 0)
	if err != nil {
		return fail(BadValue(err))
	}
	p := C.malloc(C.size_t(max(len(enc), 1)))
	copy(unsafe.Slice((*byte)(p), len(enc)), enc)
	*out, *outLen = (*C.char)(p), C.int64_t(len(enc))
	return 0
}

//export wsgiGoPyLog
func wsgiGoPyLog(app C.uint64_t, h C.uintptr_t, level C.int, name *C.char, nameLen C.int64_t, msg *C.char, msgLen C.int64_t) {
	defer func() { _ = recover() }()
	if host == nil {
		return
	}
	host.Log(contextOf(h), uint64(app), int(level), C.GoStringN(name, C.int(nameLen)), C.GoStringN(msg, C.int(msgLen)))
}

// ASGIRequest is the Go side of one ASGI connection scope.
type ASGIRequest interface {
	// Send takes a message the app sent. It returns true when the app
	// must wait for Drained before sending more. Errors raise in the app:
	// ErrGone as OSError, ErrBadValue as ValueError, others RuntimeError.
	Send(msg map[string]any) (wait bool, err error)
	// Start and Body are Send for http.response.start (headers as name,
	// value, ...) and http.response.body (p is Python's memory: copy it).
	Start(status int64, headers []string, trailers bool) (wait bool, err error)
	Body(p []byte, more bool) (wait bool, err error)
	// Want says a receive() is waiting for a message.
	Want()
	// Done says the app returned (exc nil) or raised.
	Done(exc *Exception)
	Context() context.Context
}

// ErrGone makes send() raise OSError: the client has left.
var ErrGone = errors.New("client disconnected")

func lookupASGI(h C.uintptr_t) ASGIRequest {
	r, _ := Handle(h).request().(ASGIRequest)
	return r
}

// asgiSend runs one of send()'s callbacks for request h: a panic, or a
// request already gone, becomes send()'s error code like Send's own errors.
func asgiSend(h C.uintptr_t, errbuf *C.char, errcap C.int64_t, send func(ASGIRequest) (wait bool, err error)) (rc C.int32_t) {
	defer func() {
		if r := recover(); r != nil {
			rc = 4
			setErr(errbuf, errcap, panicMessage("send", r))
		}
	}()
	req := lookupASGI(h)
	if req == nil {
		setErr(errbuf, errcap, "wsgi: send() after the connection ended")
		return 2
	}
	wait, err := send(req)
	return sendResult(wait, err, errbuf, errcap)
}

// sendResult maps Send's outcome to asgi_send's codes.
func sendResult(wait bool, err error, errbuf *C.char, errcap C.int64_t) C.int32_t {
	if err != nil {
		setErr(errbuf, errcap, err.Error())
		switch {
		case errors.Is(err, ErrGone):
			return 2
		case errors.Is(err, ErrBadValue):
			return 3
		}
		return 4
	}
	if wait {
		return 1
	}
	return 0
}

//export wsgiGoASGISend
func wsgiGoASGISend(h C.uintptr_t, p *C.char, n C.int64_t, errbuf *C.char, errcap C.int64_t) C.int32_t {
	return asgiSend(h, errbuf, errcap, func(req ASGIRequest) (bool, error) {
		v, rest, err := decodeValue(unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)), 0)
		msg, ok := v.(map[string]any)
		if err != nil || len(rest) != 0 || !ok {
			return false, BadValue(errors.New("wsgi: an ASGI message must be a dict"))
		}
		return req.Send(msg)
	})
}

//export wsgiGoASGIStart
func wsgiGoASGIStart(h C.uintptr_t, status C.int64_t, p *C.char, n C.int64_t, nh C.int64_t, trailers C.int,
	errbuf *C.char, errcap C.int64_t) C.int32_t {
	return asgiSend(h, errbuf, errcap, func(req ASGIRequest) (bool, error) {
		fields, _ := UnpackFields(C.GoStringN(p, C.int(n)), make([]string, 0, 2*int(nh)))
		return req.Start(int64(status), fields, trailers != 0)
	})
}

//export wsgiGoASGIBody
func wsgiGoASGIBody(h C.uintptr_t, p *C.char, n C.int64_t, more C.int, errbuf *C.char, errcap C.int64_t) C.int32_t {
	return asgiSend(h, errbuf, errcap, func(req ASGIRequest) (bool, error) {
		var b []byte
		if n > 0 {
			b = unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))
		}
		return req.Body(b, more != 0)
	})
}

//export wsgiGoASGIWant
func wsgiGoASGIWant(h C.uintptr_t) {
	defer func() { _ = recover() }()
	if req := lookupASGI(h); req != nil {
		req.Want()
	}
}

//export wsgiGoASGIDone
func wsgiGoASGIDone(h C.uintptr_t, typ, msg, tb *C.char) {
	defer func() { _ = recover() }()
	req := lookupASGI(h)
	if req == nil {
		return
	}
	if typ == nil {
		req.Done(nil)
		return
	}
	req.Done(&Exception{Type: C.GoString(typ), Message: C.GoString(msg), Traceback: C.GoString(tb)})
}
