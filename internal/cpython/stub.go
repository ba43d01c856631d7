//go:build !cgo

package cpython

import (
	"errors"
	"sync/atomic"
	"syscall"
	"time"
)

// Available reports whether this build can run Python.
const Available = false

var errNoCgo = errors.New("wsgi: built without cgo: rebuild with CGO_ENABLED=1 and python3-dev installed")

// SetHost does nothing without cgo.
func SetHost(h Host) {}

// Initialize always fails without cgo.
func Initialize(keys []string) error { return errNoCgo }

// Version is empty without cgo.
func Version() string { return "" }

// MinorVersion is empty without cgo.
func MinorVersion() string { return "" }

// Executable is empty without cgo.
func Executable() string { return "" }

// Exception is a Python exception.
type Exception struct{ Type, Message, Traceback string }

func (e *Exception) Error() string { return e.Type + ": " + e.Message }

// App is never loaded without cgo.
type App struct{}

// LoadApp always fails without cgo.
func LoadApp(interp int, id uint64, name, dir, module, callable, sitePackages string, pythonPath []string) (*App, []syscall.Signal, error) {
	return nil, nil, errNoCgo
}

// PurgeModules fails without cgo.
func PurgeModules(interp int, dir string) error { return errNoCgo }

// Interp is the app's interpreter.
func (a *App) Interp() int { return 0 }

// MaxInterpreters is how many sub-interpreters a process can make.
const MaxInterpreters = 0

// AcquireInterpreters needs cgo.
func AcquireInterpreters(n int) ([]int, error) { return nil, errNoCgo }

// ReleaseInterpreters needs cgo.
func ReleaseInterpreters(ids []int) {}

// InterpretersInUse is always 0 without cgo.
func InterpretersInUse() int { return 0 }

// SubInterpreters is always 0 without cgo.
func SubInterpreters() int { return 0 }

// EvalIn needs cgo.
func EvalIn(interp int, src string) (string, error) { return "", errNoCgo }

// StacksIn needs cgo.
func StacksIn(interp int, request string) (string, error) { return "", errNoCgo }

// Free does nothing.
func (a *App) Free() {}

// StepKind says what one step of a request produced.
type StepKind int

// The step kinds.
const (
	Done StepKind = iota
	Chunk
	List
	File
	Error
	End
)

// Step is the outcome of Start or Next.
type Step struct {
	Kind    StepKind
	Data    []byte
	Views   [][]byte
	Copied  int
	FD      int
	Offset  int64
	Size    int64
	Err     *Exception
	GILWait time.Duration
}

// Call is one request in progress.
type Call struct{}

// Live is always false without cgo.
func (c *Call) Live() bool { return false }

// Start fails without cgo.
func (a *App) Start(c *Call, handle Handle, env []byte, buf []byte, thread *atomic.Uint64) Step {
	return Step{Kind: Error, Err: &Exception{Type: "RuntimeError", Message: errNoCgo.Error()}}
}

// Next fails without cgo.
func (c *Call) Next() Step { return Step{Kind: Done} }

// Finish does nothing without cgo.
func (c *Call) Finish() *Exception { return nil }

// Eval fails without cgo.
func Eval(src string) (string, error) { return "", errNoCgo }

// RelativePaths is false without cgo.
func (a *App) RelativePaths() bool { return false }

// IsASGI is false without cgo.
func (a *App) IsASGI() bool { return false }

// ASGI is never created without cgo.
type ASGI struct{}

// NewASGI fails without cgo.
func NewASGI(app *App, onErr func(error)) (*ASGI, error) { return nil, errNoCgo }

// Stop does nothing.
func (a *ASGI) Stop(timeout time.Duration) error { return nil }

// Lifespan fails without cgo.
func (a *ASGI) Lifespan(event string, timeout time.Duration) (status, msg string, err error) {
	return "", "", errNoCgo
}

// Conn is a connection scope.
type Conn struct{}

// Start fails without cgo.
func (a *ASGI) Start(h Handle, scope, first []byte) (Conn, time.Duration, error) {
	return Conn{}, 0, errNoCgo
}

// Deliver fails without cgo.
func (a *ASGI) Deliver(c Conn, msg map[string]any) error { return errNoCgo }

// Drained does nothing.
func (a *ASGI) Drained(c Conn) {}

// Cancel does nothing.
func (a *ASGI) Cancel(c Conn) {}

// Release does nothing.
func (c Conn) Release() {}

// ThreadIdent is 0 without cgo.
func ThreadIdent() uint64 { return 0 }

// Interrupt does nothing without cgo.
func Interrupt(interp int, ident uint64, set bool) {}

// Stacks always fails without cgo.
func Stacks(request string) (string, error) { return "", errNoCgo }

// Finalize does nothing without cgo.
func Finalize() error { return nil }
