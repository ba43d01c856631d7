// The C half of package cpython: everything that touches the CPython C-API.
//
// Thread rules (see doc.go):
//   * Every function here that runs Python takes the GIL on entry and drops
//     it before returning, using a thread state cached per OS thread. A
//     goroutine cannot change OS thread during one cgo call, so a single
//     call needs no runtime.LockOSThread; a request that spans several calls
//     is pinned by the Go caller so that it keeps one thread state.
//   * While Go code runs from a callback (reading the body, writing to the
//     client, logging) the GIL is released, except for the quick
//     start_response validation.
//   * Only integers (request handles) cross from Go into C and stay there.
#ifndef WSGI_SHIM_H
#define WSGI_SHIM_H

#include <stddef.h>
#include <stdint.h>

typedef struct wsgi_app wsgi_app;
typedef struct wsgi_req wsgi_req;

// A Python exception, as malloc'd UTF-8 strings; free with wsgi_error_free.
typedef struct {
    char *type;       // qualified type name, "ValueError" or "pkg.MyError"
    char *message;    // str(exception)
    char *traceback;  // the formatted traceback, as Python prints it
} wsgi_error;

void wsgi_error_free(wsgi_error *e);

// What one step of a request produced.
enum {
    WSGI_STEP_DONE = 0,   // finished and closed; body (if any) copied to the caller's buffer
    WSGI_STEP_CHUNK = 1,  // one body chunk in data/len; more may follow
    WSGI_STEP_LIST = 2,   // a list/tuple body too big to copy: iov/niov
    WSGI_STEP_FILE = 3,   // wsgi.file_wrapper over a regular file: fd (a dup, the caller closes it) from offset
    WSGI_STEP_ERROR = 4,  // the app raised: err is set; call wsgi_req_finish
    WSGI_STEP_END = 5,    // the iterable is exhausted; call wsgi_req_finish (close()) once the response is out
};

typedef struct {
    const char *base;
    int64_t len;
} wsgi_iov;

typedef struct {
    int32_t kind;
    int32_t closed_err;  // DONE only: 1 if close() raised (err is set)
    const char *data;    // CHUNK: view into a bytes object, valid until the next call on the request
    int64_t len;         // CHUNK: length; DONE: bytes copied into the caller's buffer
    const wsgi_iov *iov; // LIST: views valid until wsgi_req_finish
    int64_t niov;
    int32_t fd;          // FILE
    int64_t offset;      // FILE: where the file object stood (tell())
    int64_t size;        // FILE: st_size
    wsgi_error err;
    int64_t gil_wait_ns; // wsgi_req_start only: how long taking the GIL took
} wsgi_step;

// Starts CPython once per process, with Python's signal handlers off, runs
// the host helper module from host_src, interns the known environ keys and
// releases the GIL. program may be NULL. Returns 0, or -1 with err set.
int wsgi_initialize(const char *program, const char *host_src,
                    const char *keys, int64_t keyslen, int32_t nkeys,
                    wsgi_error *err);

// The linked libpython's interpreter binary, guessed from where the library
// was loaded from; "" if not found. Static storage.
const char *wsgi_guess_executable(void);
const char *wsgi_version(void);

// The most interpreters a process makes (the main one included).
#define WSGI_MAX_INTERPS 64

// Makes an isolated sub-interpreter with its own GIL (PEP 684): no
// single-phase-init extensions, no fork or exec, threads allowed. It is
// never torn down. Returns its index (> 0), or -1 with err set. Call it on
// Python's main thread.
int wsgi_interp_new(wsgi_error *err);

// Imports the app in interpreter interp (0: the main one). strs holds NUL-terminated strings: name, dir, module,
// callable, site-packages ("" if none), then the extra sys.path entries.
// Signal dispositions the import changed are put back; *restored gets a
// bit (1 << signo) for each.
// id names the app to the Go callbacks (gohost calls, log records).
wsgi_app *wsgi_app_load(int interp, uint64_t id, const char *strs, int64_t strslen, int32_t nstrs,
                        int64_t *restored, wsgi_error *err);
// Drops the app's references; with collect, runs the cyclic garbage
// collector so that the app's module is freed now (reloads).
void wsgi_app_free(wsgi_app *app, int collect);
// The interpreter the app was imported in.
int wsgi_app_interp(wsgi_app *app);

// Runs the app for one request: builds the environ from the packed buffer
// (format in environ.go), calls the app and takes the first step of its
// body. A list or tuple body that fits buf is copied there and the request
// is finished at once (DONE, *reqp = NULL). Otherwise *reqp is a live
// request that wsgi_req_next steps and wsgi_req_finish ends.
// thread, if not NULL, receives the serving thread's Python identifier
// (an atomic store) before the app is called.
void wsgi_req_start(wsgi_app *app, uintptr_t handle, const char *env,
                    int64_t envlen, char *buf, int64_t bufcap, uint64_t *thread,
                    wsgi_req **reqp, wsgi_step *step);

// Takes the next body chunk. On exhaustion the request is finished (DONE,
// the request is freed).
void wsgi_req_next(wsgi_req *req, wsgi_step *step);

// Calls the body's close() (once), marks the request's Python objects dead
// so that kept references raise, and frees the request. Returns 0, or -1
// with err set when close() raised.
int wsgi_req_finish(wsgi_req *req, wsgi_error *err);

// --- ASGI (asgi.c) ---
typedef struct wsgi_asgi wsgi_asgi;

int wsgi_app_is_asgi(wsgi_app *app);
// Whether the app's ASGI scopes should carry path relative to root_path
// (a Starlette app before 0.33) rather than the full path the spec asks for.
int wsgi_asgi_relative_paths(wsgi_app *app);
// Wraps a loaded app as ASGI, with an event loop that Go drives (asgi.go):
// no thread of its own; wsgi_asgi_step runs it on the calling thread.
wsgi_asgi *wsgi_asgi_new(wsgi_app *app, wsgi_error *err);
void wsgi_asgi_free(wsgi_asgi *a);
// The loop's selector: an epoll fd, readable when I/O the loop waits for
// is ready (including callbacks posted by other threads).
int wsgi_asgi_epoll_fd(wsgi_asgi *a);

// What wsgi_asgi_step does, under the loop's lock: start a connection
// (scope x, first message y), deliver message x to receive(), wake a send()
// waiting for Go's queue, cancel the task, or run one loop iteration.
enum {
    WSGI_ASGI_START = 0,
    WSGI_ASGI_DELIVER = 1,
    WSGI_ASGI_DRAINED = 2,
    WSGI_ASGI_CANCEL = 3,
    WSGI_ASGI_RUN_ONCE = 4,
};
// Takes the GIL, enters the loop on this thread, does kind, runs one loop
// iteration if callbacks became ready or a timer is due, and leaves. *next
// says what is left: -2 ready callbacks, -1 nothing, else the seconds
// until the earliest timer; for a start, *gil_wait_ns says how long taking
// the GIL took. Returns 0, or -1 with err set.
int wsgi_asgi_step(wsgi_asgi *a, int kind, uintptr_t handle, const char *x, int64_t xlen,
                   const char *y, int64_t ylen, double *next, int64_t *gil_wait_ns, wsgi_error *err);
// Sends lifespan.<event> and waits (at most timeout seconds) for the answer:
// status "complete", "failed" (msg says why) or "unsupported". Blocks until
// the driver has run it: never call it with the loop's lock held.
int wsgi_asgi_lifespan(wsgi_asgi *a, const char *event, double timeout, char **status,
                       char **msg, wsgi_error *err);
// Cancels the tasks still running and finalizes async generators, waiting
// at most timeout seconds (same rule as lifespan).
int wsgi_asgi_shutdown(wsgi_asgi *a, double timeout, wsgi_error *err);
// Closes the loop, once the driver has stopped.
void wsgi_asgi_close(wsgi_asgi *a);

// Finalizes Python (call on the thread that initialised it). 0 or -1.
int wsgi_finalize(void);

// The calling thread's Python thread identifier (no GIL needed).
unsigned long wsgi_thread_ident(void);
// Raises host.RequestTimeout asynchronously in the thread (set), or clears
// one still pending (!set).
void wsgi_interrupt(int interp, unsigned long ident, int set);

// Calls fn(arg) of the host helper module (host.py) of interpreter interp
// under its GIL.
int wsgi_host_call(int interp, const char *fn, const char *arg, wsgi_error *err);

// Calls fn(arg) of the host helper module under the GIL, taken once, and
// returns its str result via out (malloc'd; out NULL: the result is dropped);
// -1 with err set on failure.
int wsgi_host_call_str(int interp, const char *fn, const char *arg, char **out, wsgi_error *err);

// Runs a few lines of Python in __main__ under the GIL (tests and the
// command's diagnostics). Returns the str() of the value of the last
// expression via out (malloc'd) or -1 with err set.
int wsgi_eval(int interp, const char *src, char **out, wsgi_error *err);

#endif
