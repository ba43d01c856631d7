// The gohost bridge (Python calling Go functions) and the logging handler's
// way out to Go. Values cross as a small tagged binary format, decoded on
// the Go side by values.go:
//   'N' None | 'T' True | 'F' False | 'i' int64 | 'd' float64
//   's' u32 len, UTF-8 | 'b' u32 len, bytes | 'l'/'t' u32 n, n values
//   'm' u32 n, n (str key, value) pairs            (little-endian)
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "_cgo_export.h"

__thread uintptr_t wsgi_tls_handle;
__thread uint64_t wsgi_tls_app;

// context_int reads an int ContextVar of the host module; 0 if unset.
static uint64_t context_int(const char *name) {
    PyObject *mod = PyImport_ImportModule("_wsgi_host");
    PyObject *var = mod ? PyObject_GetAttrString(mod, name) : NULL;
    PyObject *v = NULL;
    uint64_t id = 0;
    if (var != NULL && PyContextVar_Get(var, NULL, &v) == 0 && v != NULL && PyLong_Check(v))
        id = PyLong_AsUnsignedLongLong(v);
    PyErr_Clear();
    Py_XDECREF(v);
    Py_XDECREF(var);
    Py_XDECREF(mod);
    return id;
}

uint64_t wsgi_current_app(void) {
    return wsgi_tls_app != 0 ? wsgi_tls_app : context_int("current_app");
}

// The request this code serves: the thread's (WSGI) or the context's (an
// ASGI task, or a thread started from a request).
static uintptr_t current_handle(void) {
    return wsgi_tls_handle != 0 ? wsgi_tls_handle : (uintptr_t)context_int("current_request");
}

#define MAX_DEPTH 64
#define ERRBUF 512

int wsgi_buf_put(buf_t *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
    return 0;
}

static int put_tag(buf_t *b, char tag) { return wsgi_buf_put(b, &tag, 1); }

static int put_u32(buf_t *b, Py_ssize_t n) {
    if (n < 0 || (uint64_t)n > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "gohost: value too large to pass to Go");
        return -1;
    }
    uint32_t v = (uint32_t)n;
    return wsgi_buf_put(b, &v, 4);
}

static int put_bytes(buf_t *b, char tag, const char *p, Py_ssize_t n) {
    if (put_tag(b, tag) < 0 || put_u32(b, n) < 0) return -1;
    return wsgi_buf_put(b, p, (size_t)n);
}

int wsgi_encode_value(buf_t *b, PyObject *o, int depth) {
    if (depth > MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError, "gohost: value nested too deeply (or cyclic)");
        return -1;
    }
    if (o == Py_None) return put_tag(b, 'N');
    if (PyBool_Check(o)) return put_tag(b, o == Py_True ? 'T' : 'F');
    if (PyLong_Check(o)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow) {
            PyErr_SetString(PyExc_OverflowError, "gohost: int does not fit Go's int64");
            return -1;
        }
        if (v == -1 && PyErr_Occurred()) return -1;
        int64_t v64 = v;
        if (put_tag(b, 'i') < 0) return -1;
        return wsgi_buf_put(b, &v64, 8);
    }
    if (PyFloat_Check(o)) {
        double d = PyFloat_AS_DOUBLE(o);
        if (put_tag(b, 'd') < 0) return -1;
        return wsgi_buf_put(b, &d, 8);
    }
    if (PyUnicode_Check(o)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(o, &n);
        if (s == NULL) return -1;
        return put_bytes(b, 's', s, n);
    }
    if (PyBytes_Check(o)) return put_bytes(b, 'b', PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o));
    if (PyByteArray_Check(o))
        return put_bytes(b, 'b', PyByteArray_AS_STRING(o), PyByteArray_GET_SIZE(o));
    if (PyList_Check(o) || PyTuple_Check(o)) {
        PyObject *seq = PySequence_Tuple(o);  // a snapshot: the list may change as we go
        if (seq == NULL) return -1;
        Py_ssize_t n = PyTuple_GET_SIZE(seq);
        int rc = put_tag(b, PyList_Check(o) ? 'l' : 't');
        if (rc == 0) rc = put_u32(b, n);
        for (Py_ssize_t i = 0; rc == 0 && i < n; i++)
            rc = wsgi_encode_value(b, PyTuple_GET_ITEM(seq, i), depth + 1);
        Py_DECREF(seq);
        return rc;
    }
    if (PyDict_Check(o)) {
        PyObject *items = PyDict_Items(o);
        if (items == NULL) return -1;
        Py_ssize_t n = PyList_GET_SIZE(items);
        int rc = put_tag(b, 'm');
        if (rc == 0) rc = put_u32(b, n);
        for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
            PyObject *kv = PyList_GET_ITEM(items, i);
            PyObject *k = PyTuple_GET_ITEM(kv, 0);
            if (!PyUnicode_Check(k)) {
                PyErr_Format(PyExc_TypeError, "gohost: dict keys passed to Go must be str, not %.200s",
                             Py_TYPE(k)->tp_name);
                rc = -1;
                break;
            }
            rc = wsgi_encode_value(b, k, depth + 1);
            if (rc == 0) rc = wsgi_encode_value(b, PyTuple_GET_ITEM(kv, 1), depth + 1);
        }
        Py_DECREF(items);
        return rc;
    }
    PyErr_Format(PyExc_TypeError, "gohost: cannot pass %.200s to Go", Py_TYPE(o)->tp_name);
    return -1;
}

static int get_u32(const char **p, const char *end, uint32_t *v) {
    if (end - *p < 4) return -1;
    memcpy(v, *p, 4);
    *p += 4;
    return 0;
}

PyObject *wsgi_decode_value(const char **p, const char *end, int depth) {
    if (*p >= end || depth > MAX_DEPTH) goto bad;
    char tag = *(*p)++;
    uint32_t n;
    switch (tag) {
    case 'N':
        Py_RETURN_NONE;
    case 'T':
        Py_RETURN_TRUE;
    case 'F':
        Py_RETURN_FALSE;
    case 'i': {
        int64_t v;
        if (end - *p < 8) goto bad;
        memcpy(&v, *p, 8);
        *p += 8;
        return PyLong_FromLongLong(v);
    }
    case 'd': {
        double d;
        if (end - *p < 8) goto bad;
        memcpy(&d, *p, 8);
        *p += 8;
        return PyFloat_FromDouble(d);
    }
    case 'k':  // a known string, by id: the same interned str each time
        if (get_u32(p, end, &n) < 0) goto bad;
        return wsgi_known_str(n);
    case 's':
    case 'b': {
        if (get_u32(p, end, &n) < 0 || (uint64_t)(end - *p) < n) goto bad;
        const char *s = *p;
        *p += n;
        return tag == 's' ? PyUnicode_DecodeUTF8(s, n, "surrogateescape")
                          : PyBytes_FromStringAndSize(s, n);
    }
    case 'l': {
        if (get_u32(p, end, &n) < 0 || (uint64_t)(end - *p) < n) goto bad;
        PyObject *l = PyList_New(n);
        if (l == NULL) return NULL;
        for (uint32_t i = 0; i < n; i++) {
            PyObject *v = wsgi_decode_value(p, end, depth + 1);
            if (v == NULL) {
                Py_DECREF(l);
                return NULL;
            }
            PyList_SET_ITEM(l, i, v);
        }
        return l;
    }
    case 'm': {
        if (get_u32(p, end, &n) < 0 || (uint64_t)(end - *p) < n) goto bad;
        PyObject *d = PyDict_New();
        if (d == NULL) return NULL;
        for (uint32_t i = 0; i < n; i++) {
            PyObject *k = wsgi_decode_value(p, end, depth + 1);
            PyObject *v = k ? wsgi_decode_value(p, end, depth + 1) : NULL;
            if (v == NULL || PyDict_SetItem(d, k, v) < 0) {
                Py_XDECREF(k);
                Py_XDECREF(v);
                Py_DECREF(d);
                return NULL;
            }
            Py_DECREF(k);
            Py_DECREF(v);
        }
        return d;
    }
    }
bad:
    PyErr_SetString(PyExc_SystemError, "gohost: malformed value from Go");
    return NULL;
}

// _call(name, args): runs the Go function name of the current app.
static PyObject *host_call(PyObject *self, PyObject *args) {
    PyObject *name, *fargs;
    if (!PyArg_ParseTuple(args, "UO!:call", &name, &PyTuple_Type, &fargs)) return NULL;
    Py_ssize_t nlen;
    const char *nm = PyUnicode_AsUTF8AndSize(name, &nlen);
    if (nm == NULL) return NULL;
    buf_t b = {0};
    if (wsgi_encode_value(&b, fargs, 0) < 0) {
        free(b.p);
        return NULL;
    }
    char err[ERRBUF];
    char *out = NULL;
    int64_t outlen = 0;
    int32_t rc;
    uint64_t app = wsgi_current_app();
    uintptr_t h = current_handle();
    Py_INCREF(name);  // keeps nm valid while the GIL is released
    Py_BEGIN_ALLOW_THREADS
    rc = wsgiGoCall(app, h, (char *)nm, nlen, b.p, (int64_t)b.n, &out, &outlen, err, sizeof err);
    Py_END_ALLOW_THREADS
    Py_DECREF(name);
    free(b.p);
    if (rc != 0) {
        free(out);
        PyErr_SetString(rc == 2 ? PyExc_AttributeError : rc == 3 ? PyExc_TypeError : PyExc_RuntimeError,
                        err);
        return NULL;
    }
    const char *p = out;
    PyObject *v = wsgi_decode_value(&p, out + outlen, 0);
    free(out);
    return v;
}

// _log(level, logger_name, message): a Python logging record for Go.
static PyObject *host_log(PyObject *self, PyObject *args) {
    int level;
    const char *name, *msg;
    Py_ssize_t nlen, mlen;
    if (!PyArg_ParseTuple(args, "is#s#:log", &level, &name, &nlen, &msg, &mlen)) return NULL;
    uint64_t app = wsgi_current_app();
    uintptr_t h = current_handle();
    PyObject *keep = args;  // owns the strings while the GIL is released
    Py_INCREF(keep);
    Py_BEGIN_ALLOW_THREADS
    wsgiGoPyLog(app, h, level, (char *)name, nlen, (char *)msg, mlen);
    Py_END_ALLOW_THREADS
    Py_DECREF(keep);
    Py_RETURN_NONE;
}

static PyObject *host_current_app(PyObject *self, PyObject *unused) {
    return Py_BuildValue("KK", (unsigned long long)wsgi_current_app(),
                         (unsigned long long)current_handle());
}

PyMethodDef wsgi_host_methods[] = {
    {"_current_app", host_current_app, METH_NOARGS, "_current_app(): (app id, request handle) of the work this thread does."},
    {"_call", host_call, METH_VARARGS, "_call(name, args): call a Go function of the current app."},
    {"_log", host_log, METH_VARARGS, "_log(level, name, message): send a log record to Go."},
    {NULL, NULL, 0, NULL},
};
