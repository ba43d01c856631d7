// Declarations shared by the package's C files (not used from Go).
#ifndef WSGI_INTERNAL_H
#define WSGI_INTERNAL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "shim.h"

// What this OS thread is running: the request (0 outside one) and the app
// (0 outside an app's import or request). Set around every call into an
// app, read by the gohost bridge and the logging handler.
extern __thread uintptr_t wsgi_tls_handle;
extern __thread uint64_t wsgi_tls_app;

// C functions of the _wsgi_host module (bridge.c, asgi.c).
extern PyMethodDef wsgi_host_methods[];
extern PyMethodDef wsgi_asgi_methods[];

// The gohost value format (bridge.c): a growable buffer, an encoder and a
// decoder. Both raise a Python exception on failure.
typedef struct {
    char *p;
    size_t n, cap;
} buf_t;

int wsgi_encode_value(buf_t *b, PyObject *o, int depth);
int wsgi_buf_put(buf_t *b, const void *d, size_t n);
PyObject *wsgi_decode_value(const char **p, const char *end, int depth);
// A string of the known keys (cpython.Initialize), interned: a new
// reference, or NULL with a Python error.
PyObject *wsgi_known_str(uint32_t id);

// shim.c helpers for the other C files.
void wsgi_enter(void);
void wsgi_leave(void);
// wsgi_enter in interpreter i (0: the main one).
void wsgi_enter_in(int i);
// wsgi_enter_in for an ASGI loop's step: keeps the loop state the thread
// was left with (asgi.c).
void wsgi_enter_loop(int i);
// The interpreter the calling thread holds the GIL of.
int wsgi_cur_interp(void);
// The ASGI loop this thread was left entered on in each interpreter, or
// NULL; wsgi_loop_forget leaves the current interpreter's (asgi.c).
extern __thread PyObject *wsgi_tls_loops[WSGI_MAX_INTERPS];
void wsgi_loop_forget(void);
void wsgi_take_error(wsgi_error *e);
PyObject *wsgi_app_callable(wsgi_app *app);  // borrowed
uint64_t wsgi_app_id(wsgi_app *app);
// wsgi_enter in the app's interpreter.
void wsgi_enter_app(wsgi_app *app);

// The app a Python thread works for: the thread's own (set around calls
// into an app) or, for threads that carry an app's context (an ASGI app's
// worker threads), host.current_app. 0 if none.
uint64_t wsgi_current_app(void);

// Formats an exception as Python prints it (shim.c); new reference or NULL.
PyObject *wsgi_format_exception(PyObject *exc);

#endif
