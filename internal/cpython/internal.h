// Declarations shared by the package's C files (not used from Go).
#ifndef WSGI_INTERNAL_H
#define WSGI_INTERNAL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

// What this OS thread is running: the request (0 outside one) and the app
// (0 outside an app's import or request). Set around every call into an
// app, read by the gohost bridge and the logging handler.
extern __thread uintptr_t wsgi_tls_handle;
extern __thread uint64_t wsgi_tls_app;

// C functions of the _wsgi_host module (bridge.c).
extern PyMethodDef wsgi_host_methods[];

#endif
