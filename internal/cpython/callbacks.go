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

var host Host

// SetHost installs the receiver of gohost calls and log records. Call it
// before Initialize.
func SetHost(h Host) { host = h }

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

//export wsgiGoEarlyHints
func wsgiGoEarlyHints(h C.uintptr_t, p *C.char, n C.int64_t, nh C.int32_t, errbuf *C.char, errcap C.int64_t) (rc C.int32_t) {
	defer func() {
		if r := recover(); r != nil {
			rc = 2
			setErr(errbuf, errcap, panicMessage("wsgi.early_hints", r))
		}
	}()
	req, ok := lookup(h)
	if !ok {
		setErr(errbuf, errcap, errEnded{}.Error())
		return 2
	}
	if err := req.EarlyHints(C.GoStringN(p, C.int(n)), int(nh)); err != nil {
		setErr(errbuf, errcap, err.Error())
		if _, state := err.(interface{ StateError() }); state {
			return 2
		}
		if errors.Is(err, ErrBadValue) {
			return 3
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
