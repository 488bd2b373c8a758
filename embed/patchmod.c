/* The _carbon functions behind carbon.patch(), carbon.timeout and the
 * synchronisation types: descriptor waits (poll.c), name resolution
 * (resolve.c), timeouts (timeout.c). Added to _carbon by its init. */
#include "internal.h"

static PyObject *ensure_loop(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    if (!cb_embed_loop_get())
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef patch_methods[] = {
    {"wait_fd", (PyCFunction)(void (*)(void))cb_embed_py_wait_fd, METH_VARARGS | METH_KEYWORDS,
     "wait_fd(fd, events, timeout=None) -> int: block the calling tasklet until fd is ready for "
     "events (READ, WRITE or both); returns the ready events, 0 if the timeout passed first. "
     "In a thread without tasklets it blocks the thread (poll(2))."},
    {"wait_fds", (PyCFunction)(void (*)(void))cb_embed_py_wait_fds, METH_VARARGS | METH_KEYWORDS,
     "wait_fds(pairs, timeout=None) -> [(fd, events)]: wait until one of the (fd, events) pairs "
     "is ready; returns the ready ones ([] if the timeout passed first)."},
    {"forget_fd", cb_embed_py_forget_fd, METH_O,
     "forget_fd(fd): the descriptor is about to be closed: tasklets of this thread waiting on it "
     "get OSError(EBADF), and its poll handle is closed."},
    {"getaddrinfo", (PyCFunction)(void (*)(void))cb_embed_py_getaddrinfo, METH_VARARGS | METH_KEYWORDS,
     "getaddrinfo(host, port, family=0, type=0, proto=0, flags=0): socket.getaddrinfo's raw "
     "result, resolved by libuv's thread pool while only the calling tasklet waits."},
    {"_cooperative", cb_embed_py_cooperative, METH_NOARGS,
     "_cooperative() -> bool: whether a blocking call here should block only the calling "
     "tasklet (True) or the whole thread (False: a thread with no tasklets and no loop)."},
    {"_poll_state", cb_embed_py_poll_state, METH_O,
     "_poll_state(fd) -> (events armed, kept, readiness callbacks so far) of this thread's poll "
     "handle for fd, or None (for tests)."},
    {"_ensure_loop", ensure_loop, METH_NOARGS,
     "_ensure_loop(): give the calling thread its loop (its main tasklet then waits cooperatively)."},
    {NULL, NULL, 0, NULL},
};

int cb_embed_patch_add(PyObject *mod)
{
    if (PyModule_AddFunctions(mod, patch_methods) < 0 ||
        PyModule_AddIntConstant(mod, "READ", UV_READABLE) < 0 ||
        PyModule_AddIntConstant(mod, "WRITE", UV_WRITABLE) < 0 || cb_embed_sockio_add(mod) < 0 ||
        cb_embed_offstack_add(mod) < 0)
        return -1;
    return cb_embed_timeout_add_type(mod);
}
