// ASGI: the C side of running an app on its own asyncio loop. The Python
// side is the ASGIApp and Request classes of host.py; messages cross in
// the gohost value format (bridge.c), decoded on the Go side by values.go.
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "_cgo_export.h"

#define ERRBUF 512

struct wsgi_asgi {
    PyObject *obj;  // host.ASGIApp
    uint64_t app;   // the app's id, for gohost calls and log records
};

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

// Decodes a message (or scope) Go sent.
static PyObject *decode_from_go(const char *p, int64_t n) {
    const char *end = p + n;
    PyObject *v = wsgi_decode_value(&p, end, 0);
    if (v != NULL && p != end) {
        Py_DECREF(v);
        PyErr_SetString(PyExc_SystemError, "wsgi: trailing bytes in a value from Go");
        return NULL;
    }
    return v;
}

void *wsgi_asgi_start(wsgi_asgi *a, uintptr_t handle, const char *scope, int64_t scopelen,
                      const char *first, int64_t firstlen, wsgi_error *err) {
    PyObject *req = NULL;
    wsgi_enter();
    PyObject *s = decode_from_go(scope, scopelen);
    PyObject *f = s == NULL ? NULL : firstlen > 0 ? decode_from_go(first, firstlen) : Py_NewRef(Py_None);
    if (f != NULL) req = PyObject_CallMethod(a->obj, "start", "kOO", (unsigned long)handle, s, f);
    if (req == NULL) wsgi_take_error(err);
    Py_XDECREF(s);
    Py_XDECREF(f);
    wsgi_leave();
    return req;
}

int wsgi_asgi_deliver(wsgi_asgi *a, void *req, const char *msg, int64_t len, wsgi_error *err) {
    int rc = 0;
    wsgi_enter();
    PyObject *m = decode_from_go(msg, len);
    PyObject *r = m ? PyObject_CallMethod(a->obj, "deliver", "OO", (PyObject *)req, m) : NULL;
    if (r == NULL) {
        wsgi_take_error(err);
        rc = -1;
    }
    Py_XDECREF(m);
    Py_XDECREF(r);
    wsgi_leave();
    return rc;
}

void wsgi_asgi_drained(wsgi_asgi *a, void *req) {
    wsgi_enter();
    PyObject *r = PyObject_CallMethod(a->obj, "drained", "O", (PyObject *)req);
    if (r == NULL) PyErr_Clear();
    Py_XDECREF(r);
    wsgi_leave();
}

void wsgi_asgi_cancel(wsgi_asgi *a, void *req) {
    wsgi_enter();
    PyObject *r = PyObject_CallMethod(a->obj, "cancel", "O", (PyObject *)req);
    if (r == NULL) PyErr_Clear();
    Py_XDECREF(r);
    wsgi_leave();
}

void wsgi_asgi_release(void *req) {
    wsgi_enter();
    Py_XDECREF((PyObject *)req);
    wsgi_leave();
}

int wsgi_asgi_relative_paths(wsgi_app *app) {
    wsgi_enter();
    PyObject *mod = PyImport_ImportModule("_wsgi_host");
    PyObject *r = mod ? PyObject_CallMethod(mod, "asgi_relative_paths", "O", wsgi_app_callable(app)) : NULL;
    int yes = r != NULL && PyObject_IsTrue(r) == 1;
    PyErr_Clear();
    Py_XDECREF(r);
    Py_XDECREF(mod);
    wsgi_leave();
    return yes;
}

int wsgi_app_is_asgi(wsgi_app *app) {
    wsgi_enter();
    PyObject *mod = PyImport_ImportModule("_wsgi_host");
    PyObject *r = mod ? PyObject_CallMethod(mod, "is_asgi", "O", wsgi_app_callable(app)) : NULL;
    int yes = r != NULL && PyObject_IsTrue(r) == 1;
    PyErr_Clear();
    Py_XDECREF(r);
    Py_XDECREF(mod);
    wsgi_leave();
    return yes;
}

// --- called from Python, on the app's loop thread --------------------------

static uintptr_t handle_arg(PyObject *o) {
    unsigned long long h = PyLong_AsUnsignedLongLong(o);
    if (h == (unsigned long long)-1 && PyErr_Occurred()) return 0;
    return (uintptr_t)h;
}

// _asgi_send(handle, message) -> 1 when the caller must wait for drained()
static PyObject *asgi_send(PyObject *self, PyObject *args) {
    PyObject *ho, *msg;
    if (!PyArg_ParseTuple(args, "OO!:send", &ho, &PyDict_Type, &msg)) return NULL;
    uintptr_t h = handle_arg(ho);
    if (PyErr_Occurred()) return NULL;
    buf_t b = {0};
    if (wsgi_encode_value(&b, msg, 0) < 0) {
        free(b.p);
        return NULL;
    }
    char err[ERRBUF];
    // Go only validates and queues: quick, so the GIL stays held.
    int32_t rc = wsgiGoASGISend(h, b.p, (int64_t)b.n, err, sizeof err);
    free(b.p);
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
