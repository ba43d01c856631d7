//go:build cgo

package cpython

// Every Go function that C calls. Each recovers its own panics: a Go panic
// unwinding through Python frames would skip Python's cleanup and leave the
// GIL held, deadlocking the next request.

/*
#include <stdint.h>
*/
import "C"

import (
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
	// result's length. The GIL is released.
	Read(op int, n int64) (int64, error)
	// Take copies the kept result into dst (zero-filling what is missing)
	// and forgets it. It returns how many bytes were copied.
	Take(dst []byte) int
	// LogErrors receives text written to wsgi.errors. The GIL is released.
	LogErrors(text []byte)
}

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
	r := Handle(h).request()
	return r, r != nil
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
func wsgiGoRead(h C.uintptr_t, op C.int, n C.int64_t, errbuf *C.char, errcap C.int64_t) (got C.int64_t) {
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
	k, err := req.Read(int(op), int64(n))
	if err != nil {
		setErr(errbuf, errcap, err.Error())
		return -1
	}
	return C.int64_t(k)
}

//export wsgiGoReadTake
func wsgiGoReadTake(h C.uintptr_t, dst *C.char, n C.int64_t) (copied C.int64_t) {
	var b []byte
	if dst != nil && n > 0 {
		b = unsafe.Slice((*byte)(unsafe.Pointer(dst)), int(n))
	}
	defer func() {
		if recover() != nil {
			clear(b)
			copied = n
		}
	}()
	req, ok := lookup(h)
	if !ok {
		clear(b)
		return n
	}
	return C.int64_t(req.Take(b))
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
