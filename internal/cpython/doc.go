// Package cpython is the project's only cgo: a thin layer over the CPython
// C-API, shaped around whole units of work (start a request, take the next
// body chunk, finish) so that a request costs a few cgo crossings, not one
// per C-API call.
//
// Rules the C side relies on:
//   - Python runs only inside a C function that takes the GIL on entry and
//     drops it on return, with a thread state cached per OS thread.
//   - The calls of one request (Start, Next, Finish) run on one OS thread:
//     the caller pins its goroutine with runtime.LockOSThread, so that
//     threading.local and contextvars see one thread for the request.
//   - Callbacks into Go (callbacks.go) recover their panics and, except for
//     start_response validation, run with the GIL released.
//   - Only integers cross into C and stay there: a request is a
//     Handle (a reused small integer), never a Go pointer.
//
// Builds without cgo get a stub whose Initialize fails with a clear error.
package cpython
