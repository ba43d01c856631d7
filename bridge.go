package wsgi

import "context"

// Func is a Go function that Python code of the app can call as
// gohost.NAME(*args), with NAME its key in Options.Functions. ctx is the
// request's context when the call happens during a request (else
// context.Background()). Arguments and the result convert between Python
// and Go as: None - nil, bool - bool, int - int64, float - float64,
// str - string, bytes - []byte, list and tuple - []any, dict with str
// keys - map[string]any. A returned error raises RuntimeError with its
// message in Python. The GIL is released while the function runs.
type Func func(ctx context.Context, args []any) (any, error)
