// ASGI: the C side of running an app on its own asyncio loop. The Python
// side is the ASGIApp and Request classes of host.py; messages cross in
// the gohost value format (bridge.c), decoded on the Go side by values.go.
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "_cgo_export.h"

#define ERRBUF 512

// Go hands requests and messages to the loop through a mailbox, without
// taking the GIL: a queue under a mutex and an eventfd the loop watches
// (add_reader). One wake-up serves every post made before the loop
// drains, so a burst of requests costs the loop one wake-up.
enum { POST_START = 0, POST_DELIVER = 1, POST_DRAINED = 2, POST_CANCEL = 3 };

typedef struct post {
    struct post *next;
    int kind;
    uintptr_t handle;
    char *a, *b;  // value-encoded scope or message, first message
    int64_t alen, blen;
} post;

struct wsgi_asgi {
    PyObject *obj;  // host.ASGIApp
    uint64_t app;   // the app's id, for gohost calls and log records
    int efd;        // the mailbox's eventfd
    pthread_mutex_t mu;
    post *head, *tail;
    int pending;    // the eventfd was written and not drained yet
};

static void free_posts(post *p) {
    while (p != NULL) {
        post *next = p->next;
        free(p->a);
        free(p->b);
        free(p);
        p = next;
    }
}

int wsgi_asgi_post(wsgi_asgi *a, int kind, uintptr_t handle, const char *x, int64_t xlen,
                   const char *y, int64_t ylen) {
    post *p = calloc(1, sizeof *p);
    if (p == NULL) return -1;
    p->kind = kind;
    p->handle = handle;
    if (xlen > 0 && (p->a = malloc((size_t)xlen)) == NULL) goto nomem;
    if (ylen > 0 && (p->b = malloc((size_t)ylen)) == NULL) goto nomem;
    if (xlen > 0) memcpy(p->a, x, (size_t)xlen);
    if (ylen > 0) memcpy(p->b, y, (size_t)ylen);
    p->alen = xlen;
    p->blen = ylen;
    pthread_mutex_lock(&a->mu);
    if (a->tail) a->tail->next = p;
    else a->head = p;
    a->tail = p;
    int wake = !a->pending;
    a->pending = 1;
    pthread_mutex_unlock(&a->mu);
    if (wake) {
        uint64_t one = 1;
        ssize_t w = write(a->efd, &one, sizeof one);
        (void)w;  // EAGAIN means the counter is already non-zero: awake anyway
    }
    return 0;
nomem:
    free_posts(p);
    return -1;
}

static PyObject *decode_or_none(const char *p, int64_t n);

wsgi_asgi *wsgi_asgi_new(wsgi_app *app, wsgi_error *err) {
    wsgi_asgi *a = NULL;
    wsgi_enter();
    PyObject *mod = PyImport_ImportModule("_wsgi_host");
    PyObject *obj = mod ? PyObject_CallMethod(mod, "load_asgi", "OK", wsgi_app_callable(app),
                                              (unsigned long long)wsgi_app_id(app))
                        : NULL;
    Py_XDECREF(mod);
    if (obj == NULL) {
        wsgi_take_error(err);
    } else if ((a = calloc(1, sizeof *a)) == NULL) {
        Py_DECREF(obj);
        PyErr_NoMemory();
        wsgi_take_error(err);
    } else {
        a->obj = obj;
        a->app = wsgi_app_id(app);
        a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        pthread_mutex_init(&a->mu, NULL);
        PyObject *cap = PyCapsule_New(a, "wsgi_asgi", NULL);
        PyObject *r = cap ? PyObject_CallMethod(obj, "attach", "Oi", cap, a->efd) : NULL;
        Py_XDECREF(cap);
        if (r == NULL || a->efd < 0) {
            if (!PyErr_Occurred()) PyErr_SetFromErrno(PyExc_OSError);
            wsgi_take_error(err);
            Py_XDECREF(r);
            if (a->efd >= 0) close(a->efd);
            Py_CLEAR(a->obj);
            pthread_mutex_destroy(&a->mu);
            free(a);
            a = NULL;
        } else {
            Py_DECREF(r);
        }
    }
    wsgi_leave();
    return a;
}

void wsgi_asgi_free(wsgi_asgi *a) {
    if (a == NULL) return;
    wsgi_enter();
    Py_CLEAR(a->obj);
    PyGC_Collect();
    wsgi_leave();
    free_posts(a->head);
    close(a->efd);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

int wsgi_asgi_run(wsgi_asgi *a, wsgi_error *err) {
    int rc = 0;
    wsgi_enter();
    // The thread belongs to this app for the loop's whole life.
    wsgi_tls_app = a->app;
    PyObject *r = PyObject_CallMethod(a->obj, "run_loop", NULL);
    wsgi_tls_app = 0;
    if (r == NULL) {
        wsgi_take_error(err);
        rc = -1;
    }
    Py_XDECREF(r);
    wsgi_leave();
    return rc;
}

void wsgi_asgi_stop(wsgi_asgi *a) {
    wsgi_enter();
    PyObject *r = PyObject_CallMethod(a->obj, "stop_loop", NULL);
    if (r == NULL) PyErr_Clear();
    Py_XDECREF(r);
    wsgi_leave();
}

int wsgi_asgi_lifespan(wsgi_asgi *a, const char *event, double timeout, char **status, char **msg,
                       wsgi_error *err) {
    int rc = -1;
    wsgi_enter();
    // Blocks this thread (not the loop) until the app answers; the wait
    // releases the GIL.
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
    wsgi_enter();
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

// --- called from Python, on the app's loop thread --------------------------

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
    static PyObject *s_type, *s_start, *s_body, *s_status, *s_headers, *s_trailers, *s_bodykey,
        *s_more;
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

// _asgi_take(capsule) -> [(kind, handle, value, value), ...]: what Go
// posted since the last call. Runs on the loop, which add_reader calls when
// the eventfd is readable.
static PyObject *asgi_take(PyObject *self, PyObject *cap) {
    wsgi_asgi *a = PyCapsule_GetPointer(cap, "wsgi_asgi");
    if (a == NULL) return NULL;
    uint64_t n;
    ssize_t r = read(a->efd, &n, sizeof n);
    (void)r;
    pthread_mutex_lock(&a->mu);
    post *p = a->head;
    a->head = a->tail = NULL;
    a->pending = 0;
    pthread_mutex_unlock(&a->mu);
    PyObject *list = PyList_New(0);
    for (post *q = p; list != NULL && q != NULL; q = q->next) {
        PyObject *x = decode_or_none(q->a, q->alen);
        PyObject *y = x ? decode_or_none(q->b, q->blen) : NULL;
        PyObject *t = y ? Py_BuildValue("iKNN", q->kind, (unsigned long long)q->handle, x, y) : NULL;
        if (t == NULL) {
            Py_XDECREF(x);
            Py_XDECREF(y);
            Py_CLEAR(list);
            break;
        }
        if (PyList_Append(list, t) < 0) Py_CLEAR(list);
        Py_DECREF(t);
    }
    free_posts(p);
    return list;
}

PyMethodDef wsgi_asgi_methods[] = {
    {"_asgi_take", asgi_take, METH_O, "_asgi_take(mailbox): what Go posted to the loop."},
    {"_asgi_send", asgi_send, METH_VARARGS, "_asgi_send(handle, message): hand a message to Go."},
    {"_asgi_want", asgi_want, METH_O, "_asgi_want(handle): ask Go for the next message."},
    {"_asgi_done", asgi_done, METH_VARARGS, "_asgi_done(handle, exc): the app returned or raised."},
    {NULL, NULL, 0, NULL},
};
