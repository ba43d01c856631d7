// ASGI: the C side of running an app on its own asyncio loop. The Python
// side is the ASGIApp and Request classes of host.py; messages cross in
// the gohost value format (bridge.c), decoded on the Go side by values.go.
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "_cgo_export.h"

#define ERRBUF 512

// The loop has no thread of its own: Go runs it, one holder of the loop's
// lock at a time, from whichever goroutine (and so OS thread) needs it
// (see asgi.go). Every entry makes this thread the loop's thread for the
// span of one C call: the running loop, the async-generator hooks (both
// per thread) and the loop's thread id, restored on leave.

struct wsgi_asgi {
    PyObject *obj;                   // host.ASGIApp
    PyObject *loop;                  // its DrivenLoop
    PyObject *start, *call, *run_once;  // bound methods of obj
    PyObject *firstiter, *finalizer; // the loop's async-generator hooks
    uint64_t app;                    // the app's id, for gohost calls and log records
    unsigned long thread;            // the thread loop._thread_id names (0: not yet set)
    int interp;                      // the app's interpreter
    int epfd;                        // the loop's selector (an epoll fd)
};

// asyncio's and sys's per-thread state functions, looked up once.
// Per interpreter: the objects of one interpreter are never used in another.
static PyObject *get_running_loop_[WSGI_MAX_INTERPS], *set_running_loop_[WSGI_MAX_INTERPS],
    *get_hooks_[WSGI_MAX_INTERPS], *set_hooks_[WSGI_MAX_INTERPS], *s_thread_id_[WSGI_MAX_INTERPS];
#define get_running_loop get_running_loop_[wsgi_cur_interp()]
#define set_running_loop set_running_loop_[wsgi_cur_interp()]
#define get_hooks get_hooks_[wsgi_cur_interp()]
#define set_hooks set_hooks_[wsgi_cur_interp()]
#define s_thread_id s_thread_id_[wsgi_cur_interp()]

static int lookup_loop_functions(void) {
    if (s_thread_id != NULL) return 0;
    PyObject *events = PyImport_ImportModule("asyncio.events");
    PyObject *sys = events ? PyImport_ImportModule("sys") : NULL;
    if (sys != NULL) {
        get_running_loop = PyObject_GetAttrString(events, "_get_running_loop");
        set_running_loop = PyObject_GetAttrString(events, "_set_running_loop");
        get_hooks = PyObject_GetAttrString(sys, "get_asyncgen_hooks");
        set_hooks = PyObject_GetAttrString(sys, "set_asyncgen_hooks");
    }
    Py_XDECREF(events);
    Py_XDECREF(sys);
    if (get_running_loop == NULL || set_running_loop == NULL || get_hooks == NULL || set_hooks == NULL) return -1;
    s_thread_id = PyUnicode_InternFromString("_thread_id");
    return s_thread_id ? 0 : -1;
}

// Entering is lazy: a thread leaves the loop's running-loop and hooks
// set, and sets them again only when it enters another loop or runs other
// Python work (wsgi_enter calls wsgi_loop_forget). On 3.10 and 3.11 each
// _set_running_loop costs a getpid() system call (its fork check), ~1.4 us
// here, twice per request if done eagerly. Nested entries (a gohost call
// that serves another ASGI app in process) save and restore instead.
// Per interpreter, as each has its own thread state on this thread.
__thread PyObject *wsgi_tls_loops[WSGI_MAX_INTERPS];  // borrowed: the thread's running-loop holder keeps it alive
static __thread int tls_depth_[WSGI_MAX_INTERPS];     // loop entries on this thread's stack
#define wsgi_tls_loop wsgi_tls_loops[wsgi_cur_interp()]
#define tls_depth tls_depth_[wsgi_cur_interp()]

typedef struct {
    int nested;
    PyObject *loop, *hooks;  // what a nested entry replaced
    uint64_t app;
    uintptr_t handle;
} entered;

static int set_loop_state(PyObject *loop, PyObject *firstiter, PyObject *finalizer) {
    PyObject *r = PyObject_CallOneArg(set_running_loop, loop);
    if (r == NULL) return -1;
    Py_DECREF(r);
    r = PyObject_CallFunctionObjArgs(set_hooks, firstiter, finalizer, NULL);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

void wsgi_loop_forget(void) {
    if (wsgi_tls_loop == NULL || tls_depth > 0) return;
    wsgi_tls_loop = NULL;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (set_loop_state(Py_None, Py_None, Py_None) < 0) PyErr_Clear();
    PyErr_Restore(type, value, tb);
}

static int loop_enter(wsgi_asgi *a, entered *s) {
    s->nested = tls_depth++ > 0;
    s->app = wsgi_tls_app;
    s->handle = wsgi_tls_handle;
    wsgi_tls_app = a->app;  // log records and gohost calls of the loop's callbacks
    wsgi_tls_handle = 0;    // a task's request is in its context (host.current_request)
    s->loop = s->hooks = NULL;
    unsigned long ident = PyThread_get_thread_ident();
    if (ident != a->thread) {  // the loop's thread id changes only when its runner's thread does
        PyObject *tid = PyLong_FromUnsignedLong(ident);
        if (tid == NULL) return -1;
        int rc = PyObject_SetAttr(a->loop, s_thread_id, tid);
        Py_DECREF(tid);
        if (rc < 0) return -1;
        a->thread = ident;
    }
    if (!s->nested) {
        if (wsgi_tls_loop == a->loop) return 0;  // left set by this loop's last entry here
        wsgi_tls_loop = NULL;
    } else {
        if ((s->loop = PyObject_CallNoArgs(get_running_loop)) == NULL) return -1;
        if ((s->hooks = PyObject_CallNoArgs(get_hooks)) == NULL) return -1;
    }
    if (set_loop_state(a->loop, a->firstiter, a->finalizer) < 0) return -1;
    if (!s->nested) wsgi_tls_loop = a->loop;
    return 0;
}

// Ends an entry; an exception already set is kept.
static void loop_leave(entered *s) {
    tls_depth--;
    if (s->nested) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (s->hooks != NULL && s->loop != NULL) {
            PyObject *args = PySequence_Tuple(s->hooks);
            PyObject *r = args ? PyObject_Call(set_hooks, args, NULL) : NULL;
            Py_XDECREF(r);
            Py_XDECREF(args);
            r = PyObject_CallOneArg(set_running_loop, s->loop);
            Py_XDECREF(r);
        }
        Py_CLEAR(s->hooks);
        Py_CLEAR(s->loop);
        PyErr_Clear();
        PyErr_Restore(type, value, tb);
    }
    wsgi_tls_app = s->app;
    wsgi_tls_handle = s->handle;
}

static PyObject *decode_or_none(const char *p, int64_t n);

static void asgi_clear(wsgi_asgi *a) {
    Py_CLEAR(a->obj);
    Py_CLEAR(a->loop);
    Py_CLEAR(a->start);
    Py_CLEAR(a->call);
    Py_CLEAR(a->run_once);
    Py_CLEAR(a->firstiter);
    Py_CLEAR(a->finalizer);
}

wsgi_asgi *wsgi_asgi_new(wsgi_app *app, wsgi_error *err) {
    wsgi_asgi *a = calloc(1, sizeof *a);
    wsgi_enter_app(app);
    if (a == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    a->app = wsgi_app_id(app);
    a->interp = wsgi_app_interp(app);
    PyObject *mod = PyImport_ImportModule("_wsgi_host");
    a->obj = mod ? PyObject_CallMethod(mod, "load_asgi", "OK", wsgi_app_callable(app),
                                       (unsigned long long)a->app)
                 : NULL;
    Py_XDECREF(mod);
    if (a->obj == NULL || lookup_loop_functions() < 0) goto fail;
    if ((a->loop = PyObject_GetAttrString(a->obj, "loop")) == NULL ||
        (a->start = PyObject_GetAttrString(a->obj, "start")) == NULL ||
        (a->call = PyObject_GetAttrString(a->obj, "call")) == NULL ||
        (a->run_once = PyObject_GetAttrString(a->obj, "run_once")) == NULL ||
        (a->firstiter = PyObject_GetAttrString(a->loop, "_asyncgen_firstiter_hook")) == NULL ||
        (a->finalizer = PyObject_GetAttrString(a->loop, "_asyncgen_finalizer_hook")) == NULL)
        goto fail;
    PyObject *fd = PyObject_CallMethod(a->loop, "selector_fd", NULL);
    a->epfd = fd ? (int)PyLong_AsLong(fd) : -1;
    Py_XDECREF(fd);
    if (PyErr_Occurred()) goto fail;
    wsgi_leave();
    return a;
fail:
    wsgi_take_error(err);
    if (a != NULL) {
        asgi_clear(a);
        free(a);
    }
    wsgi_leave();
    return NULL;
}

int wsgi_asgi_epoll_fd(wsgi_asgi *a) { return a->epfd; }

void wsgi_asgi_free(wsgi_asgi *a) {
    if (a == NULL) return;
    wsgi_enter_in(a->interp);
    asgi_clear(a);
    PyGC_Collect();
    wsgi_leave();
    free(a);
}

int wsgi_asgi_step(wsgi_asgi *a, int kind, uintptr_t handle, const char *x, int64_t xlen, const char *y,
                   int64_t ylen, double *next, int64_t *gil_wait_ns, wsgi_error *err) {
    struct timespec t0, t1;
    if (kind == WSGI_ASGI_START) clock_gettime(CLOCK_MONOTONIC, &t0);
    wsgi_enter_loop(a->interp);
    if (kind == WSGI_ASGI_START) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        *gil_wait_ns = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec);
    }
    entered s;
    PyObject *r = NULL;
    if (loop_enter(a, &s) == 0) {
        PyObject *h = PyLong_FromUnsignedLongLong((unsigned long long)handle);
        PyObject *xo = h ? decode_or_none(x, xlen) : NULL;
        PyObject *yo = xo ? decode_or_none(y, ylen) : NULL;
        if (yo != NULL) {
            switch (kind) {
            case WSGI_ASGI_START:
                r = PyObject_CallFunctionObjArgs(a->start, h, xo, yo, NULL);
                break;
            case WSGI_ASGI_RUN_ONCE:
                r = PyObject_CallNoArgs(a->run_once);
                break;
            default: {
                PyObject *k = PyLong_FromLong(kind);
                r = k ? PyObject_CallFunctionObjArgs(a->call, k, h, xo, NULL) : NULL;
                Py_XDECREF(k);
            }
            }
        }
        Py_XDECREF(h);
        Py_XDECREF(xo);
        Py_XDECREF(yo);
    }
    loop_leave(&s);
    int rc = 0;
    if (r != NULL) *next = PyFloat_AsDouble(r);
    if (r == NULL || PyErr_Occurred()) {
        wsgi_take_error(err);
        rc = -1;
    }
    Py_XDECREF(r);
    wsgi_leave();
    return rc;
}

// lifespan and shutdown block the calling thread: the ASGIApp hands the
// work to the loop with call_soon_threadsafe and waits, the GIL released,
// for the driver to run it. Never called with the loop's lock held.

int wsgi_asgi_lifespan(wsgi_asgi *a, const char *event, double timeout, char **status, char **msg,
                       wsgi_error *err) {
    int rc = -1;
    wsgi_enter_in(a->interp);
    PyObject *r = PyObject_CallMethod(a->obj, "lifespan", "sd", event, timeout);
    if (r != NULL && PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 2) {
        const char *s = PyUnicode_AsUTF8(PyTuple_GET_ITEM(r, 0));
        const char *m = PyUnicode_AsUTF8(PyTuple_GET_ITEM(r, 1));
        if (s != NULL && m != NULL) {
            *status = strdup(s);
            *msg = strdup(m);
            rc = 0;
        }
    }
    if (rc != 0) wsgi_take_error(err);
    Py_XDECREF(r);
    wsgi_leave();
    return rc;
}

int wsgi_asgi_shutdown(wsgi_asgi *a, double timeout, wsgi_error *err) {
    wsgi_enter_in(a->interp);
    PyObject *r = PyObject_CallMethod(a->obj, "shutdown", "d", timeout);
    int rc = r ? 0 : -1;
    if (r == NULL) wsgi_take_error(err);
    Py_XDECREF(r);
    wsgi_leave();
    return rc;
}

void wsgi_asgi_close(wsgi_asgi *a) {
    wsgi_enter_in(a->interp);
    PyObject *r = PyObject_CallMethod(a->loop, "close", NULL);
    if (r == NULL) PyErr_Clear();
    Py_XDECREF(r);
    wsgi_leave();
}

// Decodes a value Go sent; None for an empty buffer.
static PyObject *decode_or_none(const char *p, int64_t n) {
    if (n <= 0) Py_RETURN_NONE;
    const char *end = p + n;
    PyObject *v = wsgi_decode_value(&p, end, 0);
    if (v != NULL && p != end) {
        Py_DECREF(v);
        PyErr_SetString(PyExc_SystemError, "wsgi: trailing bytes in a value from Go");
        return NULL;
    }
    return v;
}

// Calls _wsgi_host.NAME(app's callable) and reports whether it returned a
// true value (an error counts as false).
static int host_predicate(wsgi_app *app, const char *name) {
    wsgi_enter_app(app);
    PyObject *mod = PyImport_ImportModule("_wsgi_host");
    PyObject *r = mod ? PyObject_CallMethod(mod, name, "O", wsgi_app_callable(app)) : NULL;
    int yes = r != NULL && PyObject_IsTrue(r) == 1;
    PyErr_Clear();
    Py_XDECREF(r);
    Py_XDECREF(mod);
    wsgi_leave();
    return yes;
}

int wsgi_asgi_relative_paths(wsgi_app *app) { return host_predicate(app, "asgi_relative_paths"); }

int wsgi_app_is_asgi(wsgi_app *app) { return host_predicate(app, "is_asgi"); }

// --- called from Python, by the app's tasks ---------------------------------

static uintptr_t handle_arg(PyObject *o) {
    unsigned long long h = PyLong_AsUnsignedLongLong(o);
    if (h == (unsigned long long)-1 && PyErr_Occurred()) return 0;
    return (uintptr_t)h;
}

// _asgi_send(handle, message) -> 1 when the caller must wait for drained()
// The two messages every response sends take a direct way to Go: the
// body's bytes are copied once, into Go's queue, instead of encoded and
// decoded. Returns -2 when msg is not one of them.
static int32_t send_fast(uintptr_t h, PyObject *msg, char *err, size_t errcap) {
    static PyObject *strs[WSGI_MAX_INTERPS][8];  // per interpreter
    PyObject **ss = strs[wsgi_cur_interp()];
#define s_type ss[0]
#define s_start ss[1]
#define s_body ss[2]
#define s_status ss[3]
#define s_headers ss[4]
#define s_trailers ss[5]
#define s_bodykey ss[6]
#define s_more ss[7]
    if (s_type == NULL) {
        s_type = PyUnicode_InternFromString("type");
        s_start = PyUnicode_InternFromString("http.response.start");
        s_body = PyUnicode_InternFromString("http.response.body");
        s_status = PyUnicode_InternFromString("status");
        s_headers = PyUnicode_InternFromString("headers");
        s_trailers = PyUnicode_InternFromString("trailers");
        s_bodykey = PyUnicode_InternFromString("body");
        s_more = PyUnicode_InternFromString("more_body");
    }
    PyObject *type = PyDict_GetItemWithError(msg, s_type);  // borrowed
    if (type == NULL || !PyUnicode_Check(type)) return -2;
    if (PyUnicode_Compare(type, s_body) == 0) {
        PyObject *body = PyDict_GetItemWithError(msg, s_bodykey);
        PyObject *more = PyDict_GetItemWithError(msg, s_more);
        if (PyErr_Occurred()) return -2;
        const char *p = "";
        Py_ssize_t n = 0;
        if (body != NULL && PyBytes_Check(body)) {
            p = PyBytes_AS_STRING(body);
            n = PyBytes_GET_SIZE(body);
        } else if (body != NULL && body != Py_None) {
            return -2;  // bytearray, memoryview...: the general way
        }
        int m = more != NULL && PyObject_IsTrue(more) == 1;
        return wsgiGoASGIBody(h, (char *)p, (int64_t)n, m, err, (int64_t)errcap);
    }
    if (PyUnicode_Compare(type, s_start) == 0) {
        PyObject *status = PyDict_GetItemWithError(msg, s_status);
        PyObject *headers = PyDict_GetItemWithError(msg, s_headers);
        PyObject *trailers = PyDict_GetItemWithError(msg, s_trailers);
        if (PyErr_Occurred() || status == NULL || !PyLong_Check(status)) return -2;
        long code = PyLong_AsLong(status);
        if (code == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return -2;
        }
        // Headers packed as [u32 len][bytes] name, value, ...
        buf_t b = {0};
        int64_t nh = 0;
        if (headers != NULL && headers != Py_None) {
            PyObject *seq = PySequence_Fast(headers, "headers");
            if (seq == NULL) {
                PyErr_Clear();
                return -2;
            }
            Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
            for (Py_ssize_t i = 0; i < k; i++) {
                PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
                PyObject *nv = PySequence_Fast(pair, "header");
                if (nv == NULL || PySequence_Fast_GET_SIZE(nv) != 2 ||
                    !PyBytes_Check(PySequence_Fast_GET_ITEM(nv, 0)) ||
                    !PyBytes_Check(PySequence_Fast_GET_ITEM(nv, 1))) {
                    Py_XDECREF(nv);
                    Py_DECREF(seq);
                    free(b.p);
                    PyErr_Clear();
                    return -2;  // the general way reports it
                }
                for (int j = 0; j < 2; j++) {
                    PyObject *s = PySequence_Fast_GET_ITEM(nv, j);
                    uint32_t len = (uint32_t)PyBytes_GET_SIZE(s);
                    if (wsgi_buf_put(&b, &len, 4) < 0 || wsgi_buf_put(&b, PyBytes_AS_STRING(s), len) < 0) {
                        Py_DECREF(nv);
                        Py_DECREF(seq);
                        free(b.p);
                        PyErr_Clear();
                        return -2;
                    }
                }
                Py_DECREF(nv);
                nh++;
            }
            Py_DECREF(seq);
        }
        int t = trailers != NULL && PyObject_IsTrue(trailers) == 1;
        int32_t rc = wsgiGoASGIStart(h, (int64_t)code, b.p, (int64_t)b.n, nh, t, err, (int64_t)errcap);
        free(b.p);
        return rc;
    }
    return -2;
}
#undef s_type
#undef s_start
#undef s_body
#undef s_status
#undef s_headers
#undef s_trailers
#undef s_bodykey
#undef s_more

static PyObject *asgi_send(PyObject *self, PyObject *args) {
    PyObject *ho, *msg;
    if (!PyArg_ParseTuple(args, "OO!:send", &ho, &PyDict_Type, &msg)) return NULL;
    uintptr_t h = handle_arg(ho);
    if (PyErr_Occurred()) return NULL;
    char err[ERRBUF];
    // Go only validates and queues: quick, so the GIL stays held.
    int32_t rc = send_fast(h, msg, err, sizeof err);
    if (rc == -2) {
        buf_t b = {0};
        if (wsgi_encode_value(&b, msg, 0) < 0) {
            free(b.p);
            return NULL;
        }
        rc = wsgiGoASGISend(h, b.p, (int64_t)b.n, err, sizeof err);
        free(b.p);
    }
    switch (rc) {
    case 0:
        Py_RETURN_FALSE;
    case 1:
        Py_RETURN_TRUE;
    case 2:
        PyErr_SetString(PyExc_OSError, err);
        return NULL;
    case 3:
        PyErr_SetString(PyExc_ValueError, err);
        return NULL;
    default:
        PyErr_SetString(PyExc_RuntimeError, err);
        return NULL;
    }
}

static PyObject *asgi_want(PyObject *self, PyObject *ho) {
    uintptr_t h = handle_arg(ho);
    if (PyErr_Occurred()) return NULL;
    wsgiGoASGIWant(h);
    Py_RETURN_NONE;
}

// _asgi_done(handle, exception or None)
static PyObject *asgi_done(PyObject *self, PyObject *args) {
    PyObject *ho, *exc;
    if (!PyArg_ParseTuple(args, "OO:done", &ho, &exc)) return NULL;
    uintptr_t h = handle_arg(ho);
    if (PyErr_Occurred()) return NULL;
    if (exc == Py_None) {
        wsgiGoASGIDone(h, NULL, NULL, NULL);
        Py_RETURN_NONE;
    }
    PyObject *tn = PyObject_GetAttrString((PyObject *)Py_TYPE(exc), "__qualname__");
    PyObject *ms = PyObject_Str(exc);
    PyObject *tb = wsgi_format_exception(exc);
    PyErr_Clear();
    const char *t = tn && PyUnicode_Check(tn) ? PyUnicode_AsUTF8(tn) : "Exception";
    const char *m = ms && PyUnicode_Check(ms) ? PyUnicode_AsUTF8(ms) : "";
    const char *b = tb && PyUnicode_Check(tb) ? PyUnicode_AsUTF8(tb) : "";
    PyErr_Clear();
    wsgiGoASGIDone(h, (char *)(t ? t : "Exception"), (char *)(m ? m : ""), (char *)(b ? b : ""));
    Py_XDECREF(tn);
    Py_XDECREF(ms);
    Py_XDECREF(tb);
    Py_RETURN_NONE;
}

PyMethodDef wsgi_asgi_methods[] = {
    {"_asgi_send", asgi_send, METH_VARARGS, "_asgi_send(handle, message): hand a message to Go."},
    {"_asgi_want", asgi_want, METH_O, "_asgi_want(handle): ask Go for the next message."},
    {"_asgi_done", asgi_done, METH_VARARGS, "_asgi_done(handle, exc): the app returned or raised."},
    {NULL, NULL, 0, NULL},
};
