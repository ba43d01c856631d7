// See shim.h for the contract and the thread rules.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"
#include "internal.h"
#include "_cgo_export.h"

// ---------------------------------------------------------------------------
// Version differences.

#if PY_VERSION_HEX < 0x030D0000
#define PyObject_GetOptionalAttr _PyObject_LookupAttr
#endif

// ---------------------------------------------------------------------------
// Interpreters. Index 0 is the main interpreter; 1.. are isolated
// sub-interpreters with their own GIL (PEP 684), made by wsgi_interp_new
// and never torn down (cpython#136423). Each holds its own copy of every
// Python object the C code caches: an object of one interpreter must never
// be touched under another's GIL.

typedef struct {
    PyInterpreterState *interp;
    PyObject *host_mod;        // the helper module (host.py)
    PyObject *host_load_app;   // host.load_app
    PyObject *host_format_exc; // host.format_exception
    PyObject *file_wrapper_t;  // host.FileWrapper
    PyObject **known_keys;     // interned environ keys
    PyObject *s_close, *s_fileno, *s_tell, *s_filelike, *s_wsgi_input, *s_wsgi_errors,
        *s_wsgi_early_hints;
    PyTypeObject *input_t, *errors_t, *responder_t;
} istate;

static istate interps[WSGI_MAX_INTERPS];
static int n_interps;  // made so far (only on Python's main thread)
static int32_t n_known_keys;
static char *saved_host_src, *saved_keys;  // for the interpreters made later
static int64_t saved_keyslen;

// ---------------------------------------------------------------------------
// Thread states: one per (OS thread, interpreter), created on first use,
// kept for the life of the thread. The main interpreter's is created
// through PyGILState_Ensure so that C extensions that call
// PyGILState_Ensure themselves find this thread's state (a state made with
// PyThreadState_New and moved between threads would make them create a
// second one and deadlock on the GIL). PyGILState_* know only the main
// interpreter: a sub-interpreter's state is made with PyThreadState_New,
// after the main one, so that the thread's PyGILState binding stays the
// main interpreter's.

static __thread PyThreadState *tls_ts[WSGI_MAX_INTERPS];

// The interpreter this thread works in while it holds a GIL, and the ones
// that nested entries (a gohost call serving another app in process)
// replaced.
#define WSGI_MAX_NEST 128
static __thread istate *tls_is;
static __thread istate *tls_nest[WSGI_MAX_NEST];
static __thread int tls_nest_n;

// Our threads take a GIL in the order they asked for it. CPython's GIL
// lets the thread that drops it take it back at once: the waiter it woke
// finds it taken and waits out another switch interval (5 ms) before it
// may ask the holder to drop it, and even then any waiter may win. Under
// load a request could wait many intervals while other threads came and
// went (a Flask app with 8 threads had a p99 of 48 ms at a p50 of 1.5 ms).
// So a thread queues here for its turn to wait on the GIL: at most one of
// ours contends with the holder, and it is the one that asked first.
// Python's own re-takes (after blocking I/O, Py_END_ALLOW_THREADS) do not
// queue, so a request under way goes before new ones. One queue per GIL
// (each sub-interpreter has its own). A thread has its turn only while it
// waits for the GIL, never while it holds it, so turns add nothing to the
// lock order (a loop lock, then the GIL).
typedef struct gil_waiter {
    pthread_cond_t cv;
    int turn, ready;
    struct gil_waiter *next;
} gil_waiter;

typedef struct {
    pthread_mutex_t mu;
    int busy;  // a thread has its turn (waits on the GIL or is about to)
    gil_waiter *head, *tail;
} gil_queue;

static gil_queue gil_queues[WSGI_MAX_INTERPS] = {
    [0 ... WSGI_MAX_INTERPS - 1] = {PTHREAD_MUTEX_INITIALIZER, 0, NULL, NULL}};
static __thread gil_waiter tls_waiter;

static void gil_queue_wait(gil_queue *q) {
    pthread_mutex_lock(&q->mu);
    if (!q->busy) {
        q->busy = 1;
        pthread_mutex_unlock(&q->mu);
        return;
    }
    gil_waiter *w = &tls_waiter;
    if (!w->ready) {
        pthread_cond_init(&w->cv, NULL);
        w->ready = 1;
    }
    w->turn = 0;
    w->next = NULL;
    if (q->tail != NULL) q->tail->next = w;
    else q->head = w;
    q->tail = w;
    while (!w->turn) pthread_cond_wait(&w->cv, &q->mu);
    pthread_mutex_unlock(&q->mu);  // busy stays set: the turn was handed over
}

static void gil_queue_next(gil_queue *q) {
    pthread_mutex_lock(&q->mu);
    gil_waiter *w = q->head;
    if (w == NULL) {
        q->busy = 0;
    } else {
        q->head = w->next;
        if (q->head == NULL) q->tail = NULL;
        w->turn = 1;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&q->mu);
}

static void take_gil_unqueued(int i);

static void gil_queue_pass(void *q) { gil_queue_next((gil_queue *)q); }

static void take_gil(int i) {
#ifdef Py_GIL_DISABLED
    take_gil_unqueued(i);  // no GIL: nothing to take turns for
#else
    gil_queue *q = &gil_queues[i];
    gil_queue_wait(q);
    // A thread that asks for the GIL while Python finalizes ends inside
    // PyEval_RestoreThread (3.10-3.13): it passes its turn on as it goes.
    pthread_cleanup_push(gil_queue_pass, q);
    take_gil_unqueued(i);
    pthread_cleanup_pop(1);
#endif
}

static void take_gil_unqueued(int i) {
    PyThreadState *ts = tls_ts[i];
    if (ts != NULL) {
        PyEval_RestoreThread(ts);
        return;
    }
    if (i == 0 || tls_ts[0] == NULL) {
        PyGILState_Ensure();  // never released: the state lives with the thread
        tls_ts[0] = PyThreadState_Get();
        if (i == 0) return;
        PyEval_SaveThread();
    }
    ts = PyThreadState_New(interps[i].interp);
    PyEval_RestoreThread(ts);
    tls_ts[i] = ts;
}

static void push_is(istate *s) {
    if (tls_nest_n < WSGI_MAX_NEST) tls_nest[tls_nest_n] = tls_is;
    tls_nest_n++;
    tls_is = s;
}

static void pop_is(void) {
    if (tls_nest_n == 0) return;
    tls_nest_n--;
    tls_is = tls_nest_n < WSGI_MAX_NEST ? tls_nest[tls_nest_n] : NULL;
}

#define IS tls_is

// Python work on a thread that an ASGI loop was left entered on starts by
// leaving it (see asgi.c): asyncio.run() and async_to_sync must not find
// a running loop.
static void enter_in(int i) {
    take_gil(i);
    push_is(&interps[i]);
    if (wsgi_tls_loops[i] != NULL) wsgi_loop_forget();
}

static void enter(void) { enter_in(0); }

static void leave(void) {
    pop_is();
    PyEval_SaveThread();
}

void wsgi_enter(void) { enter(); }
void wsgi_enter_in(int i) { enter_in(i); }
void wsgi_enter_loop(int i) {
    take_gil(i);
    push_is(&interps[i]);
}
int wsgi_cur_interp(void) { return (int)(tls_is - interps); }
void wsgi_leave(void) { leave(); }

// enter_req and leave_req bracket Python work for a request, telling the
// gohost bridge and the logging handler which request and app it is.
static void enter_req(uintptr_t handle, uint64_t app, int interp) {
    enter_in(interp);
    wsgi_tls_handle = handle;
    wsgi_tls_app = app;
}

static void leave_req(void) {
    wsgi_tls_handle = 0;
    wsgi_tls_app = 0;
    leave();
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

void wsgi_error_free(wsgi_error *e) {
    free(e->type);
    free(e->message);
    free(e->traceback);
    e->type = e->message = e->traceback = NULL;
}

static char *str_of(PyObject *o) {
    PyObject *s = o ? PyObject_Str(o) : NULL;
    const char *u = s ? PyUnicode_AsUTF8(s) : NULL;
    char *r = xstrdup(u ? u : "<unprintable>");
    Py_XDECREF(s);
    PyErr_Clear();
    return r;
}

static char *type_name(PyObject *t) {
    PyObject *mod = PyObject_GetAttrString(t, "__module__");
    PyObject *qual = PyObject_GetAttrString(t, "__qualname__");
    const char *m = mod && PyUnicode_Check(mod) ? PyUnicode_AsUTF8(mod) : NULL;
    const char *q = qual && PyUnicode_Check(qual) ? PyUnicode_AsUTF8(qual) : NULL;
    char *r;
    PyErr_Clear();
    if (q == NULL) {
        r = xstrdup(((PyTypeObject *)t)->tp_name);
    } else if (m == NULL || strcmp(m, "builtins") == 0) {
        r = xstrdup(q);
    } else {
        size_t n = strlen(m) + strlen(q) + 2;
        r = malloc(n);
        if (r) snprintf(r, n, "%s.%s", m, q);
    }
    Py_XDECREF(mod);
    Py_XDECREF(qual);
    return r;
}

// Takes the current exception into e and clears it. Never prints it:
// PyErr_Print on SystemExit would exit the host process.
static void take_error(wsgi_error *e) {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *v = PyErr_GetRaisedException();
#else
    PyObject *t = NULL, *v = NULL, *tb = NULL;
    PyErr_Fetch(&t, &v, &tb);
    if (t != NULL) {
        PyErr_NormalizeException(&t, &v, &tb);
        if (tb != NULL && v != NULL) PyException_SetTraceback(v, tb);
    }
    Py_XDECREF(t);
    Py_XDECREF(tb);
#endif
    if (v == NULL) {
        e->type = xstrdup("SystemError");
        e->message = xstrdup("error return without exception set");
        e->traceback = xstrdup("");
        return;
    }
    e->type = type_name((PyObject *)Py_TYPE(v));
    e->message = str_of(v);
    e->traceback = NULL;
    if (IS != NULL && IS->host_format_exc != NULL) {
        PyObject *s = PyObject_CallOneArg(IS->host_format_exc, v);
        if (s != NULL && PyUnicode_Check(s)) e->traceback = xstrdup(PyUnicode_AsUTF8(s));
        Py_XDECREF(s);
        PyErr_Clear();
    }
    if (e->traceback == NULL) e->traceback = xstrdup("");
    Py_DECREF(v);
}

PyObject *wsgi_format_exception(PyObject *exc) {
    return IS && IS->host_format_exc ? PyObject_CallOneArg(IS->host_format_exc, exc) : NULL;
}

void wsgi_take_error(wsgi_error *e) { take_error(e); }

static void set_error(wsgi_error *e, const char *type, const char *msg) {
    e->type = xstrdup(type);
    e->message = xstrdup(msg);
    e->traceback = xstrdup("");
}

// ---------------------------------------------------------------------------
// Per-thread scratch buffer for packing start_response arguments.

static __thread char *scratch;
static __thread size_t scratch_cap;

static int scratch_reserve(size_t need) {
    if (need <= scratch_cap) return 0;
    size_t cap = scratch_cap ? scratch_cap : 1024;
    while (cap < need) cap *= 2;
    char *p = realloc(scratch, cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    scratch = p;
    scratch_cap = cap;
    return 0;
}

// Appends [u32 len][latin-1 bytes of s] at scratch+*off. what names the
// value in error messages.
static int pack_latin1(PyObject *s, size_t *off, const char *what) {
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "wsgi: %s must be str, not %.200s", what,
                     Py_TYPE(s)->tp_name);
        return -1;
    }
    const char *p;
    Py_ssize_t n;
    PyObject *tmp = NULL;
    if (PyUnicode_IS_ASCII(s)) {
        p = PyUnicode_AsUTF8AndSize(s, &n);
        if (p == NULL) return -1;
    } else {
        tmp = PyUnicode_AsLatin1String(s);
        if (tmp == NULL) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "wsgi: %s %R is not latin-1 text", what, s);
            return -1;
        }
        p = PyBytes_AS_STRING(tmp);
        n = PyBytes_GET_SIZE(tmp);
    }
    if ((uint64_t)n > UINT32_MAX || scratch_reserve(*off + 4 + (size_t)n) < 0) {
        Py_XDECREF(tmp);
        if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "wsgi: %s too long", what);
        return -1;
    }
    uint32_t n32 = (uint32_t)n;
    memcpy(scratch + *off, &n32, 4);
    memcpy(scratch + *off + 4, p, (size_t)n);
    *off += 4 + (size_t)n;
    Py_XDECREF(tmp);
    return 0;
}

// ---------------------------------------------------------------------------
// The per-request Python objects. Each holds the Go handle of its request;
// wsgi_req_finish zeroes it, so objects the app kept raise afterwards.

typedef struct {
    PyObject_HEAD
    uintptr_t h;
    unsigned long owner;  // the request's thread: the only one that may call
    PyObject *write;      // bound write(), made on the first start_response
} responder;

typedef struct {
    PyObject_HEAD
    uintptr_t h;
    unsigned long owner;
} handle_obj;  // wsgi.input and wsgi.errors

#define ERRBUF 512

static PyObject *raise_ended(const char *what) {
    PyErr_Format(PyExc_ValueError, "wsgi: %s used after the request ended", what);
    return NULL;
}

// The request's objects serve its own thread only: the Go side of a
// request is not safe for concurrent use, and another thread of the app
// could otherwise write into the response while the request does.
#define CHECK_OWNER(obj, what)                                                           \
    if ((obj)->owner != PyThread_get_thread_ident()) {                                  \
        PyErr_Format(PyExc_RuntimeError,                                                 \
                     "wsgi: %s may only be used by the thread serving the request", what); \
        return NULL;                                                                     \
    }

// Packs a list of (name, value) str tuples after *off in the scratch
// buffer, for start_response and wsgi.early_hints. list and item name the
// argument in errors. Returns how many headers, or -1 with an exception.
static Py_ssize_t pack_headers(PyObject *headers, const char *list, const char *item,
                               size_t *off) {
    if (!PyList_Check(headers)) {
        PyErr_Format(PyExc_TypeError, "wsgi: %s must be a list, not %.200s", list,
                     Py_TYPE(headers)->tp_name);
        return -1;
    }
    Py_ssize_t nh = PyList_GET_SIZE(headers);
    if (nh > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "wsgi: too many headers");
        return -1;
    }
    for (Py_ssize_t i = 0; i < nh; i++) {
        PyObject *t = PyList_GET_ITEM(headers, i);
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 2) {
            PyErr_Format(PyExc_TypeError, "wsgi: %s %zd must be a (name, value) tuple, not %R",
                         item, i, t);
            return -1;
        }
        if (pack_latin1(PyTuple_GET_ITEM(t, 0), off, "header name") < 0) return -1;
        if (pack_latin1(PyTuple_GET_ITEM(t, 1), off, "header value") < 0) return -1;
    }
    return nh;
}

// write(data): sends data now, with the GIL released while Go writes.
static PyObject *responder_write(PyObject *self, PyObject *data) {
    responder *r = (responder *)self;
    if (r->h == 0) return raise_ended("write()");
    CHECK_OWNER(r, "write()")
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "wsgi: write() argument must be bytes, not %.200s",
                     Py_TYPE(data)->tp_name);
        return NULL;
    }
    char err[ERRBUF];
    int32_t rc;
    uintptr_t h = r->h;
    const char *p = PyBytes_AS_STRING(data);
    int64_t n = PyBytes_GET_SIZE(data);
    Py_INCREF(data);  // keep the buffer alive while the GIL is released
    Py_BEGIN_ALLOW_THREADS
    rc = wsgiGoWrite(h, (char *)p, n, err, sizeof err);
    Py_END_ALLOW_THREADS
    Py_DECREF(data);
    if (rc != 0) {
        PyErr_SetString(rc == 2 ? PyExc_RuntimeError : PyExc_OSError, err);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef write_def = {"write", (PyCFunction)responder_write, METH_O,
                                "Writes bytes to the client at once (PEP 3333)."};

// wsgi.early_hints(headers): sends a 103 Early Hints response with these
// (name, value) headers now, before the final one (gunicorn's name). Go
// validates them like any response header; the GIL is released while it
// writes (the packed headers are in this thread's scratch buffer).
static PyObject *responder_early_hints(PyObject *self, PyObject *headers) {
    responder *r = (responder *)self;
    if (r->h == 0) return raise_ended("wsgi.early_hints");
    CHECK_OWNER(r, "wsgi.early_hints")
    size_t off = 0;
    Py_ssize_t nh = pack_headers(headers, "early hints", "early hint", &off);
    if (nh < 0) return NULL;
    char err[ERRBUF];
    int32_t rc;
    uintptr_t h = r->h;
    char *p = scratch;
    Py_BEGIN_ALLOW_THREADS
    rc = wsgiGoEarlyHints(h, p, (int64_t)off, (int32_t)nh, err, sizeof err);
    Py_END_ALLOW_THREADS
    switch (rc) {
    case 0:
        Py_RETURN_NONE;
    case 2:
        PyErr_SetString(PyExc_RuntimeError, err);
        return NULL;
    case 3:
        PyErr_SetString(PyExc_ValueError, err);
        return NULL;
    default:
        PyErr_SetString(PyExc_OSError, err);
        return NULL;
    }
}

static PyMethodDef early_hints_def = {"early_hints", (PyCFunction)responder_early_hints, METH_O,
                                      "Sends 103 Early Hints with these (name, value) headers now."};

static PyObject *reraise(PyObject *exc_info) {
    if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
        PyErr_SetString(PyExc_TypeError, "wsgi: exc_info must be a (type, value, traceback) tuple");
        return NULL;
    }
    PyObject *t = PyTuple_GET_ITEM(exc_info, 0), *v = PyTuple_GET_ITEM(exc_info, 1),
             *tb = PyTuple_GET_ITEM(exc_info, 2);
    Py_INCREF(t);
    Py_INCREF(v);
    Py_INCREF(tb);
    PyErr_Restore(t, v, tb == Py_None ? (Py_DECREF(tb), NULL) : tb);
    return NULL;
}

// start_response(status, response_headers, exc_info=None)
static PyObject *responder_start(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"status", "response_headers", "exc_info", NULL};
    responder *r = (responder *)self;
    PyObject *status, *headers, *exc_info = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O:start_response", kwlist, &status,
                                     &headers, &exc_info))
        return NULL;
    if (r->h == 0) return raise_ended("start_response()");
    CHECK_OWNER(r, "start_response()")
    if (!PyList_Check(headers)) {  // checked before the status, as always
        PyErr_Format(PyExc_TypeError, "wsgi: response_headers must be a list, not %.200s",
                     Py_TYPE(headers)->tp_name);
        return NULL;
    }
    size_t off = 0;
    if (pack_latin1(status, &off, "status") < 0) return NULL;
    Py_ssize_t nh = pack_headers(headers, "response_headers", "response header", &off);
    if (nh < 0) return NULL;
    char err[ERRBUF];
    int has_exc = exc_info != Py_None;
    // Pure validation in Go: quick, so the GIL stays held.
    int32_t rc = wsgiGoStartResponse(r->h, scratch, (int64_t)off, (int32_t)nh, has_exc, err,
                                     sizeof err);
    switch (rc) {
    case 0:
        break;
    case 1:
        return reraise(exc_info);
    case 2:
        PyErr_SetString(PyExc_RuntimeError, err);
        return NULL;
    default:
        PyErr_SetString(PyExc_ValueError, err);
        return NULL;
    }
    if (r->write == NULL) {
        r->write = PyCFunction_New(&write_def, self);
        if (r->write == NULL) return NULL;
    }
    Py_INCREF(r->write);
    return r->write;
}

static PyObject *responder_call(PyObject *self, PyObject *args, PyObject *kw) {
    return responder_start(self, args, kw);
}

static void responder_dealloc(PyObject *self) {
    responder *r = (responder *)self;
    PyTypeObject *tp = Py_TYPE(self);
    Py_CLEAR(r->write);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyType_Slot responder_slots[] = {
    {Py_tp_call, responder_call},
    {Py_tp_dealloc, responder_dealloc},
    {Py_tp_doc, "start_response(status, response_headers, exc_info=None) (PEP 3333)."},
    {0, NULL},
};

static PyType_Spec responder_spec = {
    "wsgi.start_response", sizeof(responder), 0, Py_TPFLAGS_DEFAULT, responder_slots,
};

// --- wsgi.input -------------------------------------------------------------

enum { OP_READ = 0, OP_READLINE = 1 };

// Parses an optional size argument the way io.BytesIO does: None or a
// negative number means "all".
static int size_arg(PyObject *args, Py_ssize_t *n) {
    PyObject *o = Py_None;
    *n = -1;
    if (!PyArg_UnpackTuple(args, "read", 0, 1, &o)) return -1;
    if (o == Py_None) return 0;
    if (!PyIndex_Check(o)) {
        PyErr_Format(PyExc_TypeError, "argument should be integer or None, not '%.200s'",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    *n = PyNumber_AsSsize_t(o, PyExc_OverflowError);
    if (*n == -1 && PyErr_Occurred()) return -1;
    return 0;
}

static PyObject *input_op(handle_obj *in, int op, Py_ssize_t n) {
    if (in->h == 0) return raise_ended("wsgi.input");
    CHECK_OWNER(in, "wsgi.input")
    char err[ERRBUF];
    int64_t got;
    int direct = 0;
    uintptr_t h = in->h;
    Py_BEGIN_ALLOW_THREADS
    got = wsgiGoRead(h, op, (int64_t)n, &direct, err, sizeof err);
    Py_END_ALLOW_THREADS
    if (got < 0) {
        PyErr_SetString(got == -2 ? PyExc_ValueError : PyExc_OSError, err);
        return NULL;
    }
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)got);
    if (b == NULL) {
        wsgiGoReadTake(h, NULL, 0, err, sizeof err);  // drop the pending data
        return NULL;
    }
    int64_t copied;
    char *dst = PyBytes_AS_STRING(b);
    if (direct) {
        // Go reads the body from the client into the new bytes object,
        // which nothing else can see yet: no GIL needed, no copy.
        Py_BEGIN_ALLOW_THREADS
        copied = wsgiGoReadTake(h, dst, got, err, sizeof err);
        Py_END_ALLOW_THREADS
    } else {
        copied = wsgiGoReadTake(h, dst, got, err, sizeof err);
    }
    if (copied < 0) {
        Py_DECREF(b);
        PyErr_SetString(PyExc_OSError, err);
        return NULL;
    }
    if (copied != got && _PyBytes_Resize(&b, (Py_ssize_t)copied) < 0) return NULL;
    return b;
}

static PyObject *input_read(PyObject *self, PyObject *args) {
    Py_ssize_t n;
    if (size_arg(args, &n) < 0) return NULL;
    return input_op((handle_obj *)self, OP_READ, n);
}

static PyObject *input_readline(PyObject *self, PyObject *args) {
    Py_ssize_t n;
    if (size_arg(args, &n) < 0) return NULL;
    return input_op((handle_obj *)self, OP_READLINE, n);
}

// readlines(hint=-1): lines until EOF, or until their total reaches hint.
static PyObject *input_readlines(PyObject *self, PyObject *args) {
    Py_ssize_t hint;
    if (size_arg(args, &hint) < 0) return NULL;
    PyObject *lines = PyList_New(0);
    if (lines == NULL) return NULL;
    Py_ssize_t total = 0;
    for (;;) {
        PyObject *line = input_op((handle_obj *)self, OP_READLINE, -1);
        if (line == NULL) {
            Py_DECREF(lines);
            return NULL;
        }
        Py_ssize_t n = PyBytes_GET_SIZE(line);
        if (n == 0) {
            Py_DECREF(line);
            break;
        }
        int rc = PyList_Append(lines, line);
        Py_DECREF(line);
        if (rc < 0) {
            Py_DECREF(lines);
            return NULL;
        }
        total += n;
        if (hint > 0 && total >= hint) break;
    }
    return lines;
}

static PyObject *input_iter(PyObject *self) {
    Py_INCREF(self);
    return self;
}

static PyObject *input_next(PyObject *self) {
    PyObject *line = input_op((handle_obj *)self, OP_READLINE, -1);
    if (line != NULL && PyBytes_GET_SIZE(line) == 0) {
        Py_DECREF(line);
        return NULL;  // StopIteration
    }
    return line;
}

static PyObject *noop(PyObject *self, PyObject *unused) { Py_RETURN_NONE; }

static PyMethodDef input_methods[] = {
    {"read", input_read, METH_VARARGS, "read(size=-1) -> bytes, as io.BytesIO.read."},
    {"readline", input_readline, METH_VARARGS, "readline(size=-1) -> bytes."},
    {"readlines", input_readlines, METH_VARARGS, "readlines(hint=-1) -> list of bytes."},
    {"close", noop, METH_NOARGS, "Does nothing: the server owns the stream."},
    {NULL, NULL, 0, NULL},
};

static void handle_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyType_Slot input_slots[] = {
    {Py_tp_methods, input_methods}, {Py_tp_iter, input_iter},
    {Py_tp_iternext, input_next},    {Py_tp_dealloc, handle_dealloc},
    {Py_tp_doc, "The request body, streamed from the client (wsgi.input)."},
    {0, NULL},
};

static PyType_Spec input_spec = {
    "wsgi.Input", sizeof(handle_obj), 0, Py_TPFLAGS_DEFAULT, input_slots,
};

// --- wsgi.errors ------------------------------------------------------------

static PyObject *errors_write(PyObject *self, PyObject *s) {
    handle_obj *e = (handle_obj *)self;
    if (e->h == 0) return raise_ended("wsgi.errors");
    CHECK_OWNER(e, "wsgi.errors")
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "write() argument must be str, not %.200s",
                     Py_TYPE(s)->tp_name);
        return NULL;
    }
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(s, &n);
    if (p == NULL) return NULL;
    uintptr_t h = e->h;
    Py_INCREF(s);
    Py_BEGIN_ALLOW_THREADS
    wsgiGoLog(h, (char *)p, (int64_t)n);
    Py_END_ALLOW_THREADS
    Py_DECREF(s);
    return PyLong_FromSsize_t(PyUnicode_GET_LENGTH(s));
}

static PyObject *errors_writelines(PyObject *self, PyObject *seq) {
    PyObject *it = PyObject_GetIter(seq);
    if (it == NULL) return NULL;
    PyObject *s;
    while ((s = PyIter_Next(it)) != NULL) {
        PyObject *r = errors_write(self, s);
        Py_DECREF(s);
        if (r == NULL) {
            Py_DECREF(it);
            return NULL;
        }
        Py_DECREF(r);
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef errors_methods[] = {
    {"write", errors_write, METH_O, "Logs text; one log record per line."},
    {"writelines", errors_writelines, METH_O, "Writes each string of a sequence."},
    {"flush", noop, METH_NOARGS, "Does nothing: lines are logged as they complete."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot errors_slots[] = {
    {Py_tp_methods, errors_methods},
    {Py_tp_dealloc, handle_dealloc},
    {Py_tp_doc, "The app's error stream (wsgi.errors), written to the host's logger."},
    {0, NULL},
};

static PyType_Spec errors_spec = {
    "wsgi.Errors", sizeof(handle_obj), 0, Py_TPFLAGS_DEFAULT, errors_slots,
};

// ---------------------------------------------------------------------------
// Initialisation.

static const char *py_version_short(void) {
    static char v[16];
    snprintf(v, sizeof v, "%d.%d", PY_MAJOR_VERSION, PY_MINOR_VERSION);
    return v;
}

const char *wsgi_version(void) { return Py_GetVersion(); }

#define WSGI_STR(x) #x
#define WSGI_XSTR(x) WSGI_STR(x)

const char *wsgi_guess_executable(void) {
    static char exe[PATH_MAX + 32];
    Dl_info info;
    if (exe[0] != 0) return exe;
    if (dladdr((void *)&Py_InitializeFromConfig, &info) == 0 || info.dli_fname == NULL)
        return "";
    char lib[PATH_MAX];
    if (realpath(info.dli_fname, lib) == NULL) return "";
#ifdef WSGI_PYTHON_PREFIX
    // A static libpython is part of this binary: its Python's binary is
    // under the prefix it was built for (flags_default.go).
    char self[PATH_MAX];
    if (realpath("/proc/self/exe", self) != NULL && strcmp(lib, self) == 0) {
        snprintf(exe, sizeof exe, "%s/bin/python%s", WSGI_XSTR(WSGI_PYTHON_PREFIX), py_version_short());
        if (access(exe, X_OK) == 0) return exe;
        exe[0] = 0;
        return "";
    }
#endif
    char *slash = strrchr(lib, '/');
    if (slash == NULL) return "";
    *slash = 0;  // the library's directory
    // <prefix>/lib/libpython.so (pyenv, source builds) or
    // <prefix>/lib/<multiarch>/libpython.so (Debian).
    const char *ups[] = {"/..", "/../.."};
    for (size_t i = 0; i < sizeof ups / sizeof ups[0]; i++) {
        char bin[PATH_MAX + 16], real[PATH_MAX];
        snprintf(bin, sizeof bin, "%s%s/bin", lib, ups[i]);
        if (strlen(bin) >= PATH_MAX || realpath(bin, real) == NULL) continue;
        snprintf(exe, sizeof exe, "%s/python%s", real, py_version_short());
        if (access(exe, X_OK) == 0) return exe;
    }
    exe[0] = 0;
    return "";
}

static PyTypeObject *make_type(PyType_Spec *spec) {
    return (PyTypeObject *)PyType_FromSpec(spec);
}

// Sets up s, the interpreter the calling thread holds the GIL of: runs the
// host module and caches its objects, the interned strings and the types.
// Returns -1 with a Python exception set.
static int init_istate(istate *s) {
    s->interp = PyInterpreterState_Get();
    s->host_mod = PyModule_New("_wsgi_host");
    if (s->host_mod == NULL) return -1;
    if (PyModule_AddFunctions(s->host_mod, wsgi_host_methods) < 0) return -1;
    if (PyModule_AddFunctions(s->host_mod, wsgi_asgi_methods) < 0) return -1;
    PyObject *d = PyModule_GetDict(s->host_mod);
    if (PyDict_SetItemString(d, "__builtins__", PyEval_GetBuiltins()) < 0) return -1;
    PyObject *code = Py_CompileString(saved_host_src, "<wsgi host>", Py_file_input);
    if (code == NULL) return -1;
    PyObject *r = PyEval_EvalCode(code, d, d);
    Py_DECREF(code);
    if (r == NULL) return -1;
    Py_DECREF(r);
    PyObject *sysmods = PyImport_GetModuleDict();
    if (PyDict_SetItemString(sysmods, "_wsgi_host", s->host_mod) < 0) return -1;
    s->host_load_app = PyObject_GetAttrString(s->host_mod, "load_app");
    s->host_format_exc = PyObject_GetAttrString(s->host_mod, "format_exception");
    s->file_wrapper_t = PyObject_GetAttrString(s->host_mod, "FileWrapper");
    if (!s->host_load_app || !s->host_format_exc || !s->file_wrapper_t) return -1;

    s->s_close = PyUnicode_InternFromString("close");
    s->s_fileno = PyUnicode_InternFromString("fileno");
    s->s_tell = PyUnicode_InternFromString("tell");
    s->s_filelike = PyUnicode_InternFromString("filelike");
    s->s_wsgi_input = PyUnicode_InternFromString("wsgi.input");
    s->s_wsgi_errors = PyUnicode_InternFromString("wsgi.errors");
    s->s_wsgi_early_hints = PyUnicode_InternFromString("wsgi.early_hints");
    if (!s->s_close || !s->s_fileno || !s->s_tell || !s->s_filelike || !s->s_wsgi_input ||
        !s->s_wsgi_errors || !s->s_wsgi_early_hints)
        return -1;

    s->known_keys = calloc((size_t)n_known_keys, sizeof(PyObject *));
    if (s->known_keys == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    const char *p = saved_keys, *end = saved_keys + saved_keyslen;
    for (int32_t i = 0; i < n_known_keys; i++) {
        size_t n = strnlen(p, (size_t)(end - p));
        s->known_keys[i] = PyUnicode_InternFromString(p);
        if (s->known_keys[i] == NULL) return -1;
        p += n + 1;
    }

    s->responder_t = make_type(&responder_spec);
    s->input_t = make_type(&input_spec);
    s->errors_t = make_type(&errors_spec);
    if (!s->responder_t || !s->input_t || !s->errors_t) return -1;
    return 0;
}

int wsgi_initialize(const char *program, const char *host_src, const char *keys,
                    int64_t keyslen, int32_t nkeys, wsgi_error *err) {
    if (Py_IsInitialized()) {
        set_error(err, "RuntimeError", "python is already initialized");
        return -1;
    }
    saved_host_src = xstrdup(host_src);
    saved_keys = malloc(keyslen > 0 ? (size_t)keyslen : 1);
    if (saved_host_src == NULL || saved_keys == NULL) {
        set_error(err, "MemoryError", "out of memory");
        return -1;
    }
    memcpy(saved_keys, keys, (size_t)keyslen);
    saved_keyslen = keyslen;
    n_known_keys = nkeys;

    PyConfig cfg;
    PyConfig_InitPythonConfig(&cfg);
    cfg.install_signal_handlers = 0;  // Go owns the process' signals
    cfg.parse_argv = 0;
    PyStatus st;
    if (program != NULL && program[0] != 0) {
        st = PyConfig_SetBytesString(&cfg, &cfg.program_name, program);
        if (PyStatus_Exception(st)) goto config_fail;
    }
    st = Py_InitializeFromConfig(&cfg);
    if (PyStatus_Exception(st)) goto config_fail;
    PyConfig_Clear(&cfg);

    // The initialising thread now holds the GIL with the main thread state.
    tls_ts[0] = PyThreadState_Get();
    push_is(&interps[0]);
    n_interps = 1;
    if (init_istate(&interps[0]) < 0) goto py_fail;
    leave();  // drop the GIL so that any thread can take it
    return 0;

config_fail:
    set_error(err, "PyConfigError", st.err_msg ? st.err_msg : "python initialization failed");
    PyConfig_Clear(&cfg);
    return -1;
py_fail:
    take_error(err);
    leave();
    return -1;
}

int wsgi_interp_new(wsgi_error *err) {
#if PY_VERSION_HEX >= 0x030C0000
    if (n_interps >= WSGI_MAX_INTERPS) {
        set_error(err, "RuntimeError", "too many interpreters");
        return -1;
    }
    int i = n_interps;
    enter();
    PyInterpreterConfig config = {
        .use_main_obmalloc = 0,
        .allow_fork = 0,
        .allow_exec = 0,
        .allow_threads = 1,
        .allow_daemon_threads = 0,
        .check_multi_interp_extensions = 1,
        .gil = PyInterpreterConfig_OWN_GIL,
    };
    PyThreadState *ts = NULL;
    PyStatus st = Py_NewInterpreterFromConfig(&ts, &config);
    if (PyStatus_Exception(st) || ts == NULL) {
        // The main interpreter's state is current again.
        set_error(err, "RuntimeError",
                  st.err_msg ? st.err_msg : "Py_NewInterpreterFromConfig failed");
        leave();
        return -1;
    }
    // The new interpreter's state is current, holding its own GIL; the
    // main one's state was detached. This thread keeps the new state.
    tls_ts[i] = ts;
    pop_is();
    push_is(&interps[i]);
    int rc = init_istate(&interps[i]);
    if (rc < 0) take_error(err);
    pop_is();
    PyEval_SaveThread();
    if (rc < 0) return -1;  // an interpreter we cannot use, left alone (never torn down)
    n_interps = i + 1;
    return i;
#else
    set_error(err, "RuntimeError", "sub-interpreters with their own GIL need Python 3.12 or later");
    return -1;
#endif
}

// ---------------------------------------------------------------------------
// Apps.

struct wsgi_app {
    uint64_t id;
    int interp;  // index into interps
    PyObject *callable;
    PyObject *base_env;  // wsgi.version, wsgi.multithread, ... copied per request
};

// The signals whose handling an import may not take from Go.
#define WSGI_NSIG 64

static void save_signals(struct sigaction *saved) {
    for (int s = 1; s < WSGI_NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        sigaction(s, NULL, &saved[s]);
    }
}

// Puts back every handler that changed since save_signals.
static int64_t restore_signals(const struct sigaction *saved) {
    int64_t changed = 0;
    for (int s = 1; s < WSGI_NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        struct sigaction now;
        if (sigaction(s, NULL, &now) != 0) continue;
        if (now.sa_handler != saved[s].sa_handler || now.sa_flags != saved[s].sa_flags) {
            sigaction(s, &saved[s], NULL);
            changed |= (int64_t)1 << s;
        }
    }
    return changed;
}

wsgi_app *wsgi_app_load(int interp, uint64_t id, const char *strs, int64_t strslen, int32_t nstrs,
                        int64_t *restored, wsgi_error *err) {
    wsgi_app *app = NULL;
    struct sigaction saved[WSGI_NSIG];
    save_signals(saved);
    if (interp < 0 || interp >= n_interps) {
        set_error(err, "RuntimeError", "no such interpreter");
        *restored = 0;
        return NULL;
    }
    enter_in(interp);
    uint64_t prev_app = wsgi_tls_app;
    wsgi_tls_app = id;  // gohost calls and log records at import belong to this app
    PyObject *args = PyTuple_New(nstrs);
    if (args == NULL) goto fail;
    const char *p = strs, *end = strs + strslen;
    for (int32_t i = 0; i < nstrs; i++) {
        size_t n = strnlen(p, (size_t)(end - p));
        PyObject *s = PyUnicode_DecodeFSDefaultAndSize(p, (Py_ssize_t)n);
        if (s == NULL) goto fail;
        PyTuple_SET_ITEM(args, i, s);
        p += n + 1;
    }
    PyObject *res = PyObject_Call(IS->host_load_app, args, NULL);
    Py_CLEAR(args);
    if (res == NULL) goto fail;
    // load_app returns (callable, base_environ)
    if (!PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 2 ||
        !PyDict_Check(PyTuple_GET_ITEM(res, 1))) {
        Py_DECREF(res);
        PyErr_SetString(PyExc_SystemError, "wsgi: load_app returned a bad value");
        goto fail;
    }
    app = calloc(1, sizeof *app);
    if (app == NULL) {
        Py_DECREF(res);
        PyErr_NoMemory();
        goto fail;
    }
    app->id = id;
    app->interp = interp;
    app->callable = PyTuple_GET_ITEM(res, 0);
    app->base_env = PyTuple_GET_ITEM(res, 1);
    Py_INCREF(app->callable);
    Py_INCREF(app->base_env);
    Py_DECREF(res);
    wsgi_tls_app = prev_app;
    leave();
    *restored = restore_signals(saved);
    return app;
fail:
    Py_XDECREF(args);
    take_error(err);
    wsgi_tls_app = prev_app;
    leave();
    *restored = restore_signals(saved);
    return NULL;
}

PyObject *wsgi_app_callable(wsgi_app *app) { return app->callable; }
uint64_t wsgi_app_id(wsgi_app *app) { return app->id; }
int wsgi_app_interp(wsgi_app *app) { return app->interp; }
void wsgi_enter_app(wsgi_app *app) { enter_in(app->interp); }

void wsgi_app_free(wsgi_app *app, int collect) {
    if (app == NULL) return;
    enter_in(app->interp);
    Py_CLEAR(app->callable);
    Py_CLEAR(app->base_env);
    // A module's functions and its globals form cycles: only the
    // collector frees a dropped app.
    if (collect) PyGC_Collect();
    leave();
    free(app);
}

// ---------------------------------------------------------------------------
// Requests.

struct wsgi_req {
    uintptr_t handle;
    uint64_t app;
    int interp;
    PyObject *result;   // what the app returned
    PyObject *iter;     // iter(result), for iterables that are not lists/tuples
    PyObject *chunk;    // the chunk last handed out
    PyObject *items;    // a list body's items, held while Go writes them
    responder *resp;
    handle_obj *input, *errors;
    wsgi_iov *iov;
};

// The known string id of the current interpreter (a new reference), or
// NULL with a Python error: the 'k' values of the gohost format (bridge.c).
PyObject *wsgi_known_str(uint32_t id) {
    if (id >= (uint32_t)n_known_keys) {
        PyErr_SetString(PyExc_ValueError, "gohost: unknown string id");
        return NULL;
    }
    PyObject *k = IS->known_keys[id];
    Py_INCREF(k);
    return k;
}

static inline uint16_t rd16(const char *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static inline uint32_t rd32(const char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static PyObject *build_environ(wsgi_app *app, wsgi_req *req, const char *env, int64_t envlen) {
    PyObject *d = PyDict_Copy(app->base_env);
    if (d == NULL) return NULL;
    const char *p = env, *end = env + envlen;
    while (p < end) {
        if (end - p < 2) goto bad;
        uint16_t id = rd16(p);
        p += 2;
        PyObject *k;
        if (id == 0xFFFF) {
            if (end - p < 4) goto bad;
            uint32_t kl = rd32(p);
            p += 4;
            if ((uint64_t)(end - p) < kl) goto bad;
            k = PyUnicode_DecodeLatin1(p, kl, NULL);
            p += kl;
        } else {
            if (id >= n_known_keys) goto bad;
            k = IS->known_keys[id];
            Py_INCREF(k);
        }
        if (k == NULL) goto fail;
        if (end - p < 4) {
            Py_DECREF(k);
            goto bad;
        }
        uint32_t vl = rd32(p);
        p += 4;
        if ((uint64_t)(end - p) < vl) {
            Py_DECREF(k);
            goto bad;
        }
        PyObject *v = PyUnicode_DecodeLatin1(p, vl, NULL);  // PEP 3333 native strings
        p += vl;
        if (v == NULL) {
            Py_DECREF(k);
            goto fail;
        }
        int rc = PyDict_SetItem(d, k, v);
        Py_DECREF(k);
        Py_DECREF(v);
        if (rc < 0) goto fail;
    }
    if (PyDict_SetItem(d, IS->s_wsgi_input, (PyObject *)req->input) < 0) goto fail;
    if (PyDict_SetItem(d, IS->s_wsgi_errors, (PyObject *)req->errors) < 0) goto fail;
    PyObject *hints = PyCFunction_New(&early_hints_def, (PyObject *)req->resp);
    if (hints == NULL) goto fail;
    int rc = PyDict_SetItem(d, IS->s_wsgi_early_hints, hints);
    Py_DECREF(hints);
    if (rc < 0) goto fail;
    return d;
bad:
    PyErr_SetString(PyExc_SystemError, "wsgi: malformed environ buffer");
fail:
    Py_DECREF(d);
    return NULL;
}

static handle_obj *new_handle_obj(PyTypeObject *t, uintptr_t h) {
    handle_obj *o = PyObject_New(handle_obj, t);
    if (o != NULL) {
        o->h = h;  // PyObject_New took a reference to the heap type
        o->owner = PyThread_get_thread_ident();
    }
    return o;
}

static void req_free(wsgi_req *req) {
    if (req->resp) {
        req->resp->h = 0;
        // write() is bound to the responder: break that cycle (the type
        // is not tracked by the garbage collector).
        Py_CLEAR(req->resp->write);
    }
    if (req->input) req->input->h = 0;
    if (req->errors) req->errors->h = 0;
    Py_CLEAR(req->chunk);
    Py_CLEAR(req->items);
    Py_CLEAR(req->iter);
    Py_CLEAR(req->result);
    Py_CLEAR(req->resp);
    Py_CLEAR(req->input);
    Py_CLEAR(req->errors);
    free(req->iov);
    free(req);
}

// Calls result.close() if there is one. Returns -1 with the exception set
// when close() raised.
static int call_close(PyObject *result) {
    if (result == NULL || PyList_CheckExact(result) || PyTuple_CheckExact(result)) return 0;
    PyObject *close;
    if (PyObject_GetOptionalAttr(result, IS->s_close, &close) < 0) return -1;
    if (close == NULL) return 0;
    PyObject *r = PyObject_CallNoArgs(close);
    Py_DECREF(close);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

// Finishes req into step as DONE.
static void finish_done(wsgi_req *req, wsgi_step *step, int64_t copied) {
    step->kind = WSGI_STEP_DONE;
    step->len = copied;
    step->closed_err = 0;
    Py_CLEAR(req->chunk);
    if (call_close(req->result) < 0) {
        step->closed_err = 1;
        take_error(&step->err);
    }
    req_free(req);
}

static void step_error(wsgi_step *step) {
    step->kind = WSGI_STEP_ERROR;
    take_error(&step->err);
}

// Takes the next item of req->iter into step.
static void next_chunk(wsgi_req *req, wsgi_step *step) {
    Py_CLEAR(req->chunk);
    PyObject *item = PyIter_Next(req->iter);
    if (item == NULL) {
        if (PyErr_Occurred()) {
            step_error(step);
            return;
        }
        // close() waits for wsgi_req_finish: the client gets the whole
        // response before the app's post-response work runs.
        step->kind = WSGI_STEP_END;
        return;
    }
    if (!PyBytes_Check(item)) {
        PyErr_Format(PyExc_TypeError, "wsgi: the app yielded %.200s; body chunks must be bytes",
                     Py_TYPE(item)->tp_name);
        Py_DECREF(item);
        step_error(step);
        return;
    }
    req->chunk = item;
    step->kind = WSGI_STEP_CHUNK;
    step->data = PyBytes_AS_STRING(item);
    step->len = PyBytes_GET_SIZE(item);
}

// A wsgi.file_wrapper over a regular file: hand Go a dup of its descriptor
// so that it can sendfile. Returns 1 if it did, 0 to iterate instead.
static int try_file(wsgi_req *req, wsgi_step *step) {
    PyObject *filelike = PyObject_GetAttr(req->result, IS->s_filelike);
    if (filelike == NULL) {
        PyErr_Clear();
        return 0;
    }
    int ok = 0;
    PyObject *fdo = PyObject_CallMethodNoArgs(filelike, IS->s_fileno);
    PyObject *pos = fdo ? PyObject_CallMethodNoArgs(filelike, IS->s_tell) : NULL;
    if (fdo != NULL && pos != NULL && PyLong_Check(fdo) && PyLong_Check(pos)) {
        long fd = PyLong_AsLong(fdo);
        long long off = PyLong_AsLongLong(pos);
        struct stat st;
        if (!PyErr_Occurred() && fd >= 0 && off >= 0 && fstat((int)fd, &st) == 0 &&
            S_ISREG(st.st_mode)) {
            int dup = fcntl((int)fd, F_DUPFD_CLOEXEC, 3);
            if (dup >= 0) {
                step->kind = WSGI_STEP_FILE;
                step->fd = dup;
                step->offset = off;
                step->size = (int64_t)st.st_size;
                ok = 1;
            }
        }
    }
    PyErr_Clear();  // anything unusual: fall back to iterating
    Py_XDECREF(fdo);
    Py_XDECREF(pos);
    Py_DECREF(filelike);
    return ok;
}

void wsgi_req_start(wsgi_app *app, uintptr_t handle, const char *env, int64_t envlen,
                    char *buf, int64_t bufcap, uint64_t *thread, wsgi_req **reqp,
                    wsgi_step *step) {
    memset(step, 0, sizeof *step);
    *reqp = NULL;
    wsgi_req *req = calloc(1, sizeof *req);
    if (req == NULL) {
        set_error(&step->err, "MemoryError", "out of memory");
        step->kind = WSGI_STEP_ERROR;
        return;
    }
    // The wait for the GIL, for the metrics: two reads of the monotonic
    // clock (vDSO, tens of nanoseconds) per request.
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    enter_req(handle, app->id, app->interp);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    step->gil_wait_ns = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec);
    if (thread != NULL) __atomic_store_n(thread, (uint64_t)PyThread_get_thread_ident(), __ATOMIC_RELAXED);
    *reqp = req;
    req->handle = handle;
    req->app = app->id;
    req->interp = app->interp;
    req->resp = PyObject_New(responder, IS->responder_t);
    if (req->resp == NULL) goto error;
    req->resp->h = handle;
    req->resp->owner = PyThread_get_thread_ident();
    req->resp->write = NULL;
    req->input = new_handle_obj(IS->input_t, handle);
    req->errors = new_handle_obj(IS->errors_t, handle);
    if (req->input == NULL || req->errors == NULL) goto error;

    PyObject *environ = build_environ(app, req, env, envlen);
    if (environ == NULL) goto error;
    PyObject *args[2] = {environ, (PyObject *)req->resp};
    PyObject *result = PyObject_Vectorcall(app->callable, args, 2, NULL);
    Py_DECREF(environ);
    if (result == NULL) goto error;
    req->result = result;

    if (PyUnicode_Check(result) || PyBytes_Check(result) || PyByteArray_Check(result)) {
        PyErr_Format(PyExc_TypeError,
                     "wsgi: the app returned %.200s; it must return an iterable of bytes, "
                     "such as [body]",
                     Py_TYPE(result)->tp_name);
        goto error;
    }
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(result);
        PyObject **items = PySequence_Fast_ITEMS(result);
        int64_t total = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!PyBytes_Check(items[i])) {
                PyErr_Format(PyExc_TypeError,
                             "wsgi: body item %zd is %.200s; body chunks must be bytes", i,
                             Py_TYPE(items[i])->tp_name);
                goto error;
            }
            total += PyBytes_GET_SIZE(items[i]);
        }
        if (total <= bufcap) {
            char *q = buf;
            for (Py_ssize_t i = 0; i < n; i++) {
                Py_ssize_t len = PyBytes_GET_SIZE(items[i]);
                memcpy(q, PyBytes_AS_STRING(items[i]), (size_t)len);
                q += len;
            }
            *reqp = NULL;
            finish_done(req, step, total);
            leave_req();
            return;
        }
        // Go writes these with the GIL released: hold the items in a
        // tuple of our own, so that another thread changing the app's list
        // cannot free one under us.
        req->items = PySequence_Tuple(result);
        req->iov = malloc(sizeof(wsgi_iov) * (size_t)(n ? n : 1));
        if (req->items == NULL || req->iov == NULL) {
            if (!PyErr_Occurred()) PyErr_NoMemory();
            goto error;
        }
        items = PySequence_Fast_ITEMS(req->items);
        n = PyTuple_GET_SIZE(req->items);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!PyBytes_Check(items[i])) {  // the list changed since we checked
                PyErr_SetString(PyExc_RuntimeError, "wsgi: the body list changed while being sent");
                goto error;
            }
            req->iov[i].base = PyBytes_AS_STRING(items[i]);
            req->iov[i].len = PyBytes_GET_SIZE(items[i]);
        }
        step->kind = WSGI_STEP_LIST;
        step->iov = req->iov;
        step->niov = n;
        leave_req();
        return;
    }
    if ((PyObject *)Py_TYPE(result) == IS->file_wrapper_t && try_file(req, step)) {
        leave_req();
        return;
    }
    req->iter = PyObject_GetIter(result);
    if (req->iter == NULL) goto error;
    next_chunk(req, step);
    leave_req();
    return;

error:
    step_error(step);
    leave_req();
}

void wsgi_req_next(wsgi_req *req, wsgi_step *step) {
    memset(step, 0, sizeof *step);
    enter_req(req->handle, req->app, req->interp);
    if (req->iter == NULL) {
        PyErr_SetString(PyExc_SystemError, "wsgi: next on a request without an iterator");
        step_error(step);
    } else {
        next_chunk(req, step);
    }
    leave_req();
}

int wsgi_req_finish(wsgi_req *req, wsgi_error *err) {
    int rc = 0;
    enter_req(req->handle, req->app, req->interp);
    Py_CLEAR(req->chunk);
    if (call_close(req->result) < 0) {
        take_error(err);
        rc = -1;
    }
    req_free(req);
    leave_req();
    return rc;
}

int wsgi_finalize(void) {
    // On the thread that initialised Python, with its own thread state.
    enter();
    return Py_FinalizeEx();
}

unsigned long wsgi_thread_ident(void) { return PyThread_get_thread_ident(); }

void wsgi_interrupt(int interp, unsigned long ident, int set) {
    if (interp < 0 || interp >= n_interps) return;
    // PyThreadState_SetAsyncExc looks for the thread among the current
    // interpreter's states: enter the one the request runs in.
    enter_in(interp);
    PyObject *exc = NULL;
    if (set) exc = PyObject_GetAttrString(IS->host_mod, "RequestTimeout");
    if (!set || exc != NULL) PyThreadState_SetAsyncExc(ident, exc);
    PyErr_Clear();
    Py_XDECREF(exc);
    leave();
}

int wsgi_host_call(int interp, const char *fn, const char *arg, wsgi_error *err) {
    return wsgi_host_call_str(interp, fn, arg, NULL, err);
}

int wsgi_host_call_str(int interp, const char *fn, const char *arg, char **out, wsgi_error *err) {
    int rc = -1;
    if (interp < 0 || interp >= n_interps) {
        set_error(err, "RuntimeError", "no such interpreter");
        return -1;
    }
    enter_in(interp);
    PyObject *r = PyObject_CallMethod(IS->host_mod, fn, "s", arg);
    if (r == NULL) {
        take_error(err);
    } else if (out == NULL) {
        rc = 0;  // the result is not wanted
    } else if (!PyUnicode_Check(r)) {
        set_error(err, "TypeError", "host function did not return a str");
    } else {
        *out = str_of(r);
        rc = *out != NULL ? 0 : -1;
        if (rc != 0) set_error(err, "MemoryError", "out of memory");
    }
    Py_XDECREF(r);
    leave();
    return rc;
}

int wsgi_eval(int interp, const char *src, char **out, wsgi_error *err) {
    int rc = -1;
    if (interp < 0 || interp >= n_interps) {
        set_error(err, "RuntimeError", "no such interpreter");
        return -1;
    }
    enter_in(interp);
    PyObject *d = PyDict_New();
    PyObject *v = NULL;
    if (d != NULL && PyDict_SetItemString(d, "__builtins__", PyEval_GetBuiltins()) == 0)
        v = PyRun_String(src, Py_file_input, d, d);
    if (v == NULL) {
        take_error(err);
    } else {
        PyObject *res = PyDict_GetItemString(d, "result");  // borrowed
        *out = str_of(res ? res : Py_None);
        Py_DECREF(v);
        rc = 0;
    }
    Py_XDECREF(d);
    leave();
    return rc;
}
