package wsgi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gowsgi/wsgi/internal/cpython"
)

// The live view (Handler.Snapshot): every request in progress, with the
// Python stack serving it. Each request has an activeRequest record,
// linked into its Handler's list from ServeHTTP's start until both
// ServeHTTP and the request's Python work (a WSGI close(), an ASGI task
// running on after its response) are done. The request path pays a lock
// to link and one to unlink, and atomic stores when its state changes;
// records are pooled.

// RequestState is where a request in progress stands.
type RequestState string

// The states of a request in progress.
const (
	// StateQueued: waiting for a thread slot (Options.Threads).
	StateQueued RequestState = "queued"
	// StateInPython: the app runs (or the request is between steps
	// of its body).
	StateInPython RequestState = "in python"
	// StateWriting: Go writes the response to the client (WSGI).
	StateWriting RequestState = "writing"
	// StateAfterResponse: the response is out; Python still runs for
	// the request (a WSGI body's close(), an ASGI task running on).
	StateAfterResponse RequestState = "after response"
	// StatePastTimeout: past Options.RequestTimeout and still running.
	StatePastTimeout RequestState = "past timeout"
)

// state values kept in activeRequest.state.
const (
	stateQueued int32 = iota
	stateInPython
	stateWriting
	stateAfterResponse
)

var stateNames = [...]RequestState{StateQueued, StateInPython, StateWriting, StateAfterResponse}

// activeRequest is a request in progress, for the live view.
type activeRequest struct {
	prev, next *activeRequest // in Handler.live, under its lock

	method string
	url    *url.URL
	client string        // RemoteAddr
	start  time.Duration // on the Handler's clock (counters.now)

	state  atomic.Int32
	thread atomic.Uint64 // the Python thread serving it (WSGI); 0 until known
	task   atomic.Uint64 // the handle of its ASGI task; 0 if none
	refs   atomic.Int32  // ServeHTTP, and the Python goroutine of a WSGI request or an ASGI task running on
}

// setState records where the request stands; nil-safe (no live view).
func (a *activeRequest) setState(s int32) {
	if a != nil {
		a.state.Store(s)
	}
}

// liveList is a Handler's requests in progress: a circular list around
// head.
type liveList struct {
	mu   sync.Mutex
	head activeRequest
	n    int
}

var activePool = sync.Pool{New: func() any { return new(activeRequest) }}

// track links a new request in, queued, held once (by ServeHTTP).
func (h *Handler) track(r *http.Request, start time.Duration) *activeRequest {
	a := activePool.Get().(*activeRequest)
	a.method, a.url, a.client, a.start = r.Method, r.URL, r.RemoteAddr, start
	a.state.Store(stateQueued)
	a.thread.Store(0)
	a.task.Store(0)
	a.refs.Store(1)
	l := &h.live
	l.mu.Lock()
	if l.head.next == nil {
		l.head.next, l.head.prev = &l.head, &l.head
	}
	a.prev, a.next = l.head.prev, &l.head
	a.prev.next, l.head.prev = a, a
	l.n++
	l.mu.Unlock()
	return a
}

// hold adds a holder of a (a goroutine that outlives ServeHTTP); each
// holder calls release once. nil-safe.
func (a *activeRequest) hold() {
	if a != nil {
		a.refs.Add(1)
	}
}

// release drops a holder: the last one unlinks the record. answered says
// the holder is ServeHTTP returning: if Python still runs, the request is
// then after its response. nil-safe.
func (h *Handler) release(a *activeRequest, answered bool) {
	if a == nil {
		return
	}
	l := &h.live
	l.mu.Lock()
	n := a.refs.Add(-1)
	if n == 0 {
		a.prev.next, a.next.prev = a.next, a.prev
		a.prev, a.next = nil, nil
		l.n--
	} else if answered {
		a.state.Store(stateAfterResponse)
	}
	l.mu.Unlock()
	if n == 0 {
		a.url = nil
		activePool.Put(a)
	}
}

// Snapshot is the live view of a Handler: the requests in progress when
// it was taken.
type Snapshot struct {
	App      string    // Handler.Name
	Protocol string    // "wsgi" or "asgi"
	Taken    time.Time // when the snapshot was taken
	Threads  int       // thread slots (Options.Threads)
	Busy     int       // slots held
	// Requests are the requests in progress, oldest first.
	Requests []ActiveRequest
	// StackError says why the Python stacks are missing, if they are
	// (the interpreter is finalized, say); "" when they were read.
	StackError string
}

// ActiveRequest is one request in progress.
type ActiveRequest struct {
	Method  string
	Path    string // the URL path, without the query (which may hold secrets)
	Client  string // the client's address (http.Request.RemoteAddr)
	Started time.Time
	Elapsed time.Duration
	State   RequestState
	// Thread is the identifier of the Python thread serving a WSGI
	// request (threading.get_ident()); 0 before it runs, and for ASGI.
	Thread uint64
	// Stack is the Python stack serving the request, outermost frame
	// first: the thread's (WSGI), or the coroutine chain of its task
	// (ASGI HTTP). Empty when it runs no Python (queued, writing) or
	// when the stack could not be read.
	Stack []Frame
}

// Frame is one frame of a Python stack.
type Frame struct {
	File     string
	Line     int
	Function string
	Code     string // the source line, stripped; "" if not found
}

// Snapshot returns the requests in progress with the Python stack of
// each. It holds the Handler's list lock while it copies the list (the
// request path waits on it that long), then takes the GIL once to read
// every stack. It is safe to call at any time, also after Close; a
// failure to read the stacks is reported in Snapshot.StackError.
func (h *Handler) Snapshot() Snapshot {
	now := h.m.now()
	s := Snapshot{
		App: h.Name(), Protocol: h.Protocol(), Taken: h.m.epoch.Add(now),
		Threads: h.cfg.threads, Busy: len(h.slots),
	}
	type ids struct{ thread, task uint64 }
	var refs []ids
	l := &h.live
	l.mu.Lock()
	if l.head.next != nil {
		s.Requests = make([]ActiveRequest, 0, l.n)
		refs = make([]ids, 0, l.n)
		for a := l.head.next; a != &l.head; a = a.next {
			st := a.state.Load()
			r := ActiveRequest{
				Method:  a.method,
				Path:    a.url.Path,
				Client:  a.client,
				Started: h.m.epoch.Add(a.start),
				Elapsed: now - a.start,
				State:   stateNames[st],
				Thread:  a.thread.Load(),
			}
			if t := h.cfg.requestTimeout; t > 0 && r.Elapsed > t && st != stateQueued {
				r.State = StatePastTimeout
			}
			s.Requests = append(s.Requests, r)
			refs = append(refs, ids{r.Thread, a.task.Load()})
		}
	}
	l.mu.Unlock()

	var want struct {
		Threads []uint64 `json:"threads"`
		Tasks   []uint64 `json:"tasks"`
	}
	for i, r := range s.Requests {
		switch {
		case r.State == StateQueued || r.State == StateWriting:
		case refs[i].task != 0:
			want.Tasks = append(want.Tasks, refs[i].task)
		case refs[i].thread != 0:
			want.Threads = append(want.Threads, refs[i].thread)
		}
	}
	if len(want.Threads) > 0 && cpython.InterpretersInUse() > 0 {
		// sys._current_frames() walks the threads of every interpreter:
		// it would read the frames of sub-interpreters running under
		// their own GIL, and make frame objects for them in the wrong
		// interpreter.
		want.Threads = nil
		s.StackError = "wsgi: the Python stacks of WSGI requests are not read while a handler of the process uses sub-interpreters (Options.Interpreters)"
	}
	if len(want.Threads)+len(want.Tasks) == 0 {
		return s
	}
	got, err := pythonStacks(want)
	if err != nil {
		s.StackError = err.Error()
		return s
	}
	for i := range s.Requests {
		r := &s.Requests[i]
		switch {
		case r.State == StateQueued || r.State == StateWriting:
		case refs[i].task != 0:
			r.Stack = frames(got.Tasks[strconv.FormatUint(refs[i].task, 10)])
		case refs[i].thread != 0:
			r.Stack = frames(got.Threads[strconv.FormatUint(refs[i].thread, 10)])
		}
	}
	return s
}

// stacks is host.py's answer: frames by thread identifier and by task
// handle, each frame [file, line, function, code].
type stacks struct {
	Threads map[string][][]any
	Tasks   map[string][][]any
}

// frames converts host.py's frames.
func frames(raw [][]any) []Frame {
	out := make([]Frame, 0, len(raw))
	for _, f := range raw {
		if len(f) != 4 {
			continue
		}
		var fr Frame
		fr.File, _ = f[0].(string)
		if n, ok := f[1].(float64); ok {
			fr.Line = int(n)
		}
		fr.Function, _ = f[2].(string)
		fr.Code, _ = f[3].(string)
		out = append(out, fr)
	}
	return out
}

// pythonStacks asks the interpreter for the stacks of want's threads and
// tasks, with the GIL taken once.
func pythonStacks(want any) (*stacks, error) {
	lifecycle.RLock()
	defer lifecycle.RUnlock()
	if finalized.Load() {
		return nil, ErrFinalized
	}
	req, err := json.Marshal(want)
	if err != nil {
		return nil, err
	}
	out, err := cpython.Stacks(string(req))
	if err != nil {
		return nil, fmt.Errorf("wsgi: reading python stacks: %w", err)
	}
	var got stacks
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		return nil, fmt.Errorf("wsgi: reading python stacks: %w", err)
	}
	return &got, nil
}
