package cpython

// What the Go side implements and may return, the same in the cgo and the
// !cgo builds.

import (
	"context"
	"errors"
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
	// EarlyHints sends a 103 response with the headers packed as for
	// StartResponse (names and values, no status). An error with a
	// StateError method raises RuntimeError, ErrBadValue ValueError,
	// others OSError. The GIL is released.
	EarlyHints(packed string, nheaders int) error
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
