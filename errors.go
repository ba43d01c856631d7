package wsgi

import (
	"fmt"
	"io"

	"github.com/gowsgi/wsgi/internal/cpython"
)

// PythonError is an exception raised by Python code: the app while it was
// imported or while it served a request. Print it with %+v to get the
// traceback.
type PythonError struct {
	Type      string // qualified exception type: "ValueError", "myapp.errors.Oops"
	Message   string // str() of the exception
	Traceback string // the traceback as Python prints it, ending with "Type: message"
}

func newPythonError(e *cpython.Exception) *PythonError {
	return &PythonError{Type: e.Type, Message: e.Message, Traceback: e.Traceback}
}

// Error returns "Type: message".
func (e *PythonError) Error() string {
	if e.Message == "" {
		return e.Type
	}
	return e.Type + ": " + e.Message
}

// Format implements fmt.Formatter: %+v prints the traceback, other verbs
// print Error().
func (e *PythonError) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('+') && e.Traceback != "" {
		_, _ = io.WriteString(f, e.Traceback)
		return
	}
	_, _ = io.WriteString(f, e.Error())
}

// contextError adds what the handler was doing to an error while keeping
// %+v (the Python traceback) and errors.As working.
type contextError struct {
	msg string
	err error
}

func (e *contextError) Error() string { return e.msg + ": " + e.err.Error() }
func (e *contextError) Unwrap() error { return e.err }

// Format implements fmt.Formatter: %+v adds the wrapped error's detail.
func (e *contextError) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('+') {
		_, _ = fmt.Fprintf(f, "%s:\n%+v", e.msg, e.err)
		return
	}
	_, _ = io.WriteString(f, e.Error())
}
