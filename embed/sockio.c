/* The hot calls of carbon.patch()'s sockets in C: recv, recv_into, send and
 * sendall on a descriptor the patched socket keeps non-blocking, with the
 * retry after EAGAIN and the wait for readiness (poll.c, its handle kept
 * armed between waits) in one C loop. patch.py's socket methods call these
 * with the descriptor and the socket's timeout (None, or seconds > 0; a
 * timeout of 0.0 never gets here). Errors are those of the socket module:
 * OSError from errno (ConnectionResetError, BrokenPipeError...), and
 * TimeoutError("timed out") when the timeout passes.
 *
 * Measured (tools/bench --profile net --impl patched, 64 B echo): the
 * Python loop (try the call, catch BlockingIOError, wait_fd, try again) cost
 * ~11,600 instructions per message; see docs/performance.md for this. */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <sys/socket.h>

static int parse_int(PyObject *o, const char *what, long lo, long hi, int *out)
{
    long v = PyLong_AsLong(o);

    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < lo || v > hi) {
        PyErr_Format(PyExc_ValueError, "%s out of range", what);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* Every call is (fd, token, ..., flags, timeout). */
static int parse_common(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want, const char *fn,
                        int *fd, unsigned long long *token, int *flags, long long *deadline)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments", fn, want);
        return -1;
    }
    if (parse_int(args[0], "file descriptor", -1, INT_MAX, fd) < 0 ||
        parse_int(args[want - 2], "flags", INT_MIN, INT_MAX, flags) < 0)
        return -1;
    *token = PyLong_AsUnsignedLongLong(args[1]);
    if (*token == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    if (*fd < 0) { /* closed: what the socket module says */
        errno = EBADF;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return cb_embed_parse_deadline(args[want - 1], deadline);
}

/* After a failed call: 1 to try again (EAGAIN and now ready, or EINTR),
 * -1 with an exception (the error, a timeout, or the wait's). */
static int retry(int err, int fd, unsigned long long token, int events, long long deadline)
{
    int r;

    if (err == EINTR)
        return PyErr_CheckSignals() < 0 ? -1 : 1;
    if (err != EAGAIN && err != EWOULDBLOCK) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    r = cb_embed_wait_sock(fd, events, deadline, token);
    if (r < 0)
        return -1;
    if (r == 0) {
        PyErr_SetString(PyExc_TimeoutError, "timed out");
        return -1;
    }
    return 1;
}

/* _sock_recv(fd, token, bufsize, flags, timeout) -> bytes */
static PyObject *sock_recv(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    int fd, flags, size;
    unsigned long long token;
    long long deadline;
    size_t cap;
    char *scratch;

    (void)mod;
    if (parse_common(args, nargs, 5, "_sock_recv", &fd, &token, &flags, &deadline) < 0)
        return NULL;
    if (parse_int(args[2], "buffersize", INT_MIN, INT_MAX, &size) < 0)
        return NULL;
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "negative buffersize in recv");
        return NULL;
    }
    /* Small answers to big requests (recv(65536) of a 64 B message) are
     * read into the thread's scratch buffer and copied out: no 64 KiB
     * bytes object to allocate and shrink each time. */
    scratch = cb_embed_scratch(&cap);
    if (scratch && (size_t)size <= cap) {
        for (;;) {
            ssize_t n = recv(fd, scratch, (size_t)size, flags);
            if (n >= 0)
                return PyBytes_FromStringAndSize(scratch, n);
            if (retry(errno, fd, token, UV_READABLE, deadline) < 0)
                return NULL;
        }
    }
    for (;;) {
        PyObject *b = PyBytes_FromStringAndSize(NULL, size);
        ssize_t n;

        if (!b)
            return NULL;
        n = recv(fd, PyBytes_AS_STRING(b), (size_t)size, flags);
        if (n >= 0) {
            if (n != size && _PyBytes_Resize(&b, n) < 0)
                return NULL;
            return b;
        }
        Py_DECREF(b);
        if (retry(errno, fd, token, UV_READABLE, deadline) < 0)
            return NULL;
    }
}

/* _sock_recv_into(fd, token, buffer, nbytes, flags, timeout) -> int */
static PyObject *sock_recv_into(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    int fd, flags, nbytes;
    unsigned long long token;
    long long deadline;
    Py_buffer view;
    PyObject *res = NULL;

    (void)mod;
    if (parse_common(args, nargs, 6, "_sock_recv_into", &fd, &token, &flags, &deadline) < 0 ||
        parse_int(args[3], "nbytes", INT_MIN, INT_MAX, &nbytes) < 0)
        return NULL;
    if (nbytes < 0) {
        PyErr_SetString(PyExc_ValueError, "negative buffersize in recv_into");
        return NULL;
    }
    if (PyObject_GetBuffer(args[2], &view, PyBUF_WRITABLE) < 0)
        return NULL;
    if (nbytes == 0)
        nbytes = view.len > INT_MAX ? INT_MAX : (int)view.len;
    else if (view.len < nbytes) {
        PyErr_SetString(PyExc_ValueError, "buffer too small for requested bytes");
        goto out;
    }
    for (;;) {
        ssize_t n = recv(fd, view.buf, (size_t)nbytes, flags);
        if (n >= 0) {
            res = PyLong_FromSsize_t(n);
            break;
        }
        if (retry(errno, fd, token, UV_READABLE, deadline) < 0)
            break;
    }
out:
    PyBuffer_Release(&view);
    return res;
}

static PyObject *send_common(PyObject *const *args, Py_ssize_t nargs, int all)
{
    int fd, flags;
    unsigned long long token;
    long long deadline;
    Py_buffer view;
    Py_ssize_t sent = 0;
    PyObject *res = NULL;

    if (parse_common(args, nargs, 5, all ? "_sock_sendall" : "_sock_send", &fd, &token, &flags,
                     &deadline) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[2], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    for (;;) {
        ssize_t n = send(fd, (const char *)view.buf + sent, (size_t)(view.len - sent), flags);
        if (n >= 0) {
            sent += n;
            if (!all || sent >= view.len) {
                res = all ? Py_NewRef(Py_None) : PyLong_FromSsize_t(n);
                break;
            }
            /* A partial send: the socket module checks for signals here. */
            if (PyErr_CheckSignals() < 0)
                break;
            continue;
        }
        if (retry(errno, fd, token, UV_WRITABLE, deadline) < 0)
            break;
    }
    PyBuffer_Release(&view);
    return res;
}

/* _sock_send(fd, token, data, flags, timeout) -> int */
static PyObject *sock_send(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    return send_common(args, nargs, 0);
}

/* _sock_sendall(fd, token, data, flags, timeout) -> None */
static PyObject *sock_sendall(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    return send_common(args, nargs, 1);
}

static PyMethodDef sockio_methods[] = {
    {"_sock_recv", (PyCFunction)(void (*)(void))sock_recv, METH_FASTCALL,
     "_sock_recv(fd, token, bufsize, flags, timeout) -> bytes: recv(2) on a non-blocking "
     "descriptor; waits (only the calling tasklet) while it would block; timeout None or "
     "seconds; token: the socket's own number (its poll stays armed between waits)."},
    {"_sock_recv_into", (PyCFunction)(void (*)(void))sock_recv_into, METH_FASTCALL,
     "_sock_recv_into(fd, token, buffer, nbytes, flags, timeout) -> int: the same into a buffer."},
    {"_sock_send", (PyCFunction)(void (*)(void))sock_send, METH_FASTCALL,
     "_sock_send(fd, token, data, flags, timeout) -> int: send(2), waiting while it would block."},
    {"_sock_sendall", (PyCFunction)(void (*)(void))sock_sendall, METH_FASTCALL,
     "_sock_sendall(fd, token, data, flags, timeout): send everything; the timeout bounds the "
     "whole call."},
    {NULL, NULL, 0, NULL},
};

int cb_embed_sockio_add(PyObject *mod)
{
    return PyModule_AddFunctions(mod, sockio_methods);
}
