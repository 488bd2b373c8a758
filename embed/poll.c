/* Tasklets waiting for file descriptors to become readable or writable
 * (_carbon.wait_fd / wait_fds: the readiness wait under carbon.patch()).
 *
 * One uv_poll_t per descriptor and thread (libuv allows no more), shared by
 * every tasklet of the thread waiting on that descriptor. A readiness event
 * wakes, per kind (readable, writable), exactly one waiter: the first in
 * arrival order that wants it. Others stay queued and the poll stays started
 * for them; epoll is level-triggered, so they are woken at a later turn if
 * the descriptor is still ready. A poll with no waiter left is stopped at
 * once (its descriptor leaves the epoll set), so a descriptor closed behind
 * our back between waits is never left registered; the stopped handle is
 * kept for the next wait on the same number (uv_poll_init costs three system
 * calls). cb_embed_forget_fd (socket close) wakes the waiters with EBADF and
 * stops the handle.
 *
 * Patched sockets keep theirs armed (cb_embed_wait_sock): a socket whose
 * close goes through cb_embed_forget_fd can stay in the epoll set between
 * waits, which saves the two epoll_ctl calls (remove, add back) of every
 * wait of a request/response connection. The handle is stopped lazily, at
 * the first readiness event that no waiter wants (at most one extra loop
 * wakeup), like libev does. A descriptor number whose socket was closed
 * behind our back, or on another thread (whose forget_fd reaches only its
 * own table), must not keep a stale registration that hides a new
 * descriptor with the same number: each patched socket has its own token,
 * a kept handle remembers whose it is, and a wait by another socket (or any
 * other wait: select(), wait_fd) on a kept handle registers the descriptor
 * afresh.
 *
 * The waiters of one call and the flag they share are one heap block that
 * the blocked call frees on its way out: never on the tasklet's C stack,
 * which may be copied away while it waits (docs/design.md, "Nothing points
 * into a suspended tasklet's C stack"). Handles are owned by the thread's
 * table and freed by their close callback; the table goes with the loop
 * (cb_embed_poll_close). */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>

typedef struct fd_watch fd_watch;

typedef struct poll_waiter {
    struct poll_waiter *prev, *next;
    fd_watch *watch;   /* NULL once woken or detached */
    int events;        /* UV_READABLE | UV_WRITABLE */
    int revents;       /* what woke it; < 0: a libuv error */
    cb_tasklet *t;     /* borrowed: the waiting call holds a reference */
    unsigned *flag;    /* shared by the waiters of one call */
} poll_waiter;

/* What one waiting call links into the watches (see the top). */
typedef struct poll_call {
    unsigned flag;
    poll_waiter ws[];
} poll_call;

struct fd_watch {
    uv_poll_t poll;    /* first: the handle's address is the watch's */
    int fd;
    int mask;          /* events the poll is started for; 0: stopped */
    int kept;          /* armed for a patched socket: not stopped when idle */
    unsigned long long token; /* ... that socket's (cb_embed_wait_sock) */
    unsigned long events; /* on_poll calls, for tests (_carbon._poll_state) */
    poll_waiter *head, *tail;
};

typedef struct poll_table {
    cb_embed_loop *loop;
    fd_watch **byfd;   /* indexed by descriptor */
    int cap;
    char *scratch;     /* cb_embed_scratch, SCRATCH_SIZE bytes once made */
} poll_table;

#define SCRATCH_SIZE 65536

static _Thread_local poll_table *tls_table;

/* ---- the table -------------------------------------------------------------------------- */

static poll_table *table_get(cb_embed_loop *loop)
{
    poll_table *tb = tls_table;

    if (tb && tb->loop == loop)
        return tb;
    tb = calloc(1, sizeof *tb);
    if (!tb) {
        PyErr_NoMemory();
        return NULL;
    }
    tb->loop = loop;
    tls_table = tb;
    return tb;
}

static void on_watch_closed(uv_handle_t *h)
{
    free(h); /* the watch: its handle is its first member */
}

static void watch_close(poll_table *tb, fd_watch *w)
{
    if (w->fd >= 0 && w->fd < tb->cap && tb->byfd[w->fd] == w)
        tb->byfd[w->fd] = NULL;
    uv_close((uv_handle_t *)&w->poll, on_watch_closed);
}

void cb_embed_poll_close(cb_embed_loop *loop)
{
    poll_table *tb = tls_table;

    if (!tb || tb->loop != loop)
        return;
    for (int fd = 0; fd < tb->cap; fd++) {
        fd_watch *w = tb->byfd[fd];
        if (!w)
            continue;
        /* Waiters left are on stacks of tasklets that could not be unwound. */
        for (poll_waiter *p = w->head; p; p = p->next)
            p->watch = NULL;
        watch_close(tb, w);
    }
    free(tb->byfd);
    free(tb->scratch);
    free(tb);
    tls_table = NULL;
}

static void on_poll(uv_poll_t *handle, int status, int events);

/* The watch of `fd`, created on first use. 1: found or made; 0: libuv cannot
 * poll this descriptor (a regular file: always ready, as poll(2) says); -1
 * with an exception. */
static int watch_get(poll_table *tb, int fd, fd_watch **out)
{
    fd_watch *w;
    int flags, err;

    if (fd < tb->cap && tb->byfd[fd]) {
        *out = tb->byfd[fd];
        return 1;
    }
    if (fd >= tb->cap) {
        int cap = tb->cap ? tb->cap : 64;
        fd_watch **v;

        while (cap <= fd)
            cap *= 2;
        v = realloc(tb->byfd, (size_t)cap * sizeof *v);
        if (!v) {
            PyErr_NoMemory();
            return -1;
        }
        for (int i = tb->cap; i < cap; i++)
            v[i] = NULL;
        tb->byfd = v;
        tb->cap = cap;
    }
    /* uv_poll_init makes the descriptor non-blocking: the caller's mode is
     * kept (select() on a blocking pipe must not change it). */
    flags = fcntl(fd, F_GETFL);
    if (flags < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    w = calloc(1, sizeof *w);
    if (!w) {
        PyErr_NoMemory();
        return -1;
    }
    err = uv_poll_init(&tb->loop->uv, &w->poll, fd);
    if (!(flags & O_NONBLOCK))
        (void)fcntl(fd, F_SETFL, flags);
    if (err == UV_EPERM) {
        free(w);
        return 0;
    }
    if (err < 0) {
        free(w);
        errno = -err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    w->fd = fd;
    w->poll.data = w;
    tb->byfd[fd] = w;
    *out = w;
    return 1;
}

/* Starts, changes or stops the poll for what its waiters want (a kept
 * handle with no waiter stays as it is). */
static int watch_update(fd_watch *w)
{
    int mask = 0, err = 0;

    for (poll_waiter *p = w->head; p; p = p->next)
        mask |= p->events;
    /* Only waiters keep the loop alive: a poll kept armed for a patched
     * socket nobody waits on must not (a worker thread would never end). */
    if (w->head)
        uv_ref((uv_handle_t *)&w->poll);
    else
        uv_unref((uv_handle_t *)&w->poll);
    if (mask == w->mask || (w->kept && !mask))
        return 0;
    if (w->kept)
        mask |= w->mask; /* armed for more: never less while kept */
    if (mask == w->mask)
        return 0;
    if (mask)
        err = uv_poll_start(&w->poll, mask, on_poll);
    else
        err = uv_poll_stop(&w->poll);
    w->mask = err < 0 ? 0 : mask;
    return err;
}

static void waiter_unlink(poll_waiter *p)
{
    fd_watch *w = p->watch;

    if (p->prev)
        p->prev->next = p->next;
    else
        w->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        w->tail = p->prev;
    p->prev = p->next = NULL;
    p->watch = NULL;
}

static void waiter_link(fd_watch *w, poll_waiter *p)
{
    cb_offstack_check(p, "a descriptor poll's waiter");
    cb_offstack_check(p->flag, "a descriptor poll's flag");
    p->watch = w;
    p->prev = w->tail;
    p->next = NULL;
    if (w->tail)
        w->tail->next = p;
    else
        w->head = p;
    w->tail = p;
}

/* Stops a handle: the descriptor leaves the epoll set. */
static void watch_stop(fd_watch *w)
{
    w->kept = 0;
    if (w->mask) {
        uv_poll_stop(&w->poll);
        w->mask = 0;
    }
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    fd_watch *w = handle->data;
    int avail = events & (UV_READABLE | UV_WRITABLE);
    int wanted = 0;
    poll_waiter *p, *next;

    w->events++;
    if (status < 0) {
        /* libuv reports POLLERR (a pending socket error: a refused
         * connect, a reset) as UV_EBADF and stops the handle. For the
         * waiters that is readiness, as poll(2) sees it: their next call
         * gets the error. */
        w->mask = 0;
        w->kept = 0;
        avail = UV_READABLE | UV_WRITABLE;
    }
    for (p = w->head; p; p = p->next)
        wanted |= p->events;
    if (w->kept && (avail & ~wanted)) {
        /* Ready for something nobody waits for: stop being armed for it
         * (level-triggered, it would wake every turn). */
        w->kept = 0;
    }
    for (p = w->head; p; p = next) {
        int got;

        next = p->next;
        if (!avail)
            break;
        if (*p->flag) /* its call was already woken by another descriptor */
            continue;
        got = p->events & avail;
        if (!got)
            continue;
        if (status >= 0)
            avail &= ~p->events; /* one waiter per kind of readiness */
        waiter_unlink(p);
        p->revents = got;
        cb_embed_wake(p->t, p->flag);
    }
    if (watch_update(w) < 0) {
        /* Cannot happen for a valid handle; keep no waiter hanging. */
        for (p = w->head; p; p = next) {
            next = p->next;
            waiter_unlink(p);
            p->revents = UV_EIO;
            cb_embed_wake(p->t, p->flag);
        }
    }
}

/* ---- waiting ------------------------------------------------------------------------------ */

/* The loop a blocking call of the calling context waits in: 1 (loop set) if
 * the call should block only the current tasklet, 0 if it should block the
 * thread (a thread's main tasklet with no loop and no other tasklet: a plain
 * thread), -1 with an exception. */
int cb_embed_cooperative(cb_embed_loop **out)
{
    cb_embed_loop *loop = cb_embed_loop_peek();
    cb_manager *m;

    if (!loop) {
        m = cb_manager_peek();
        if (!m || (m->current == m->main && !cb_embed_has_tasklets(m)))
            return 0;
        loop = cb_embed_loop_get();
        if (!loop)
            return -1;
    }
    *out = loop;
    return 1;
}

static int set_uv_error(int err)
{
    errno = -err;
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
}

/* The thread has no tasklets to run meanwhile: poll(2) with the GIL released. */
static int wait_thread(int n, const int *fds, const int *events, int *revents, long long deadline_ns)
{
    struct pollfd stack_pfd[8], *pfd = stack_pfd;
    int r = -1, err = 0;

    if (n > 8) {
        pfd = PyMem_Malloc((size_t)n * sizeof *pfd);
        if (!pfd) {
            PyErr_NoMemory();
            return -1;
        }
    }
    for (int i = 0; i < n; i++) {
        pfd[i].fd = fds[i];
        pfd[i].events = (short)(((events[i] & UV_READABLE) ? POLLIN : 0) |
                                ((events[i] & UV_WRITABLE) ? POLLOUT : 0));
        pfd[i].revents = 0;
    }
    for (;;) {
        int ms = -1;

        if (deadline_ns >= 0) {
            long long left = deadline_ns - cb_monotonic_ns();
            ms = left <= 0 ? 0 : (int)((left + 999999) / 1000000 > INT_MAX ? INT_MAX : (left + 999999) / 1000000);
        }
        Py_BEGIN_ALLOW_THREADS
        r = poll(pfd, (nfds_t)n, ms);
        err = errno;
        Py_END_ALLOW_THREADS
        if (r >= 0)
            break;
        if (err != EINTR) {
            errno = err;
            PyErr_SetFromErrno(PyExc_OSError);
            break;
        }
        if (PyErr_CheckSignals() < 0)
            break;
    }
    if (r > 0)
        for (int i = 0; i < n; i++) {
            short re = pfd[i].revents;
            int ev = 0;
            if (re & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
                ev |= events[i] & UV_READABLE;
            if (re & (POLLOUT | POLLHUP | POLLERR | POLLNVAL))
                ev |= events[i] & UV_WRITABLE;
            revents[i] = ev;
        }
    if (pfd != stack_pfd)
        PyMem_Free(pfd);
    return r < 0 ? -1 : r > 0;
}

/* Waits until one of the descriptors is ready for what is asked of it, or
 * the monotonic deadline passes (deadline_ns < 0: none). Fills revents (0 for
 * those not ready). Returns 1 ready, 0 deadline, -1 with an exception.
 * `keep`: the descriptors are patched sockets' (see the top). */
static int wait_fds(int n, const int *fds, const int *events, int *revents, long long deadline_ns,
                    int keep, unsigned long long token)
{
    poll_call *call;
    poll_waiter *ws;
    cb_embed_loop *loop = NULL;
    poll_table *tb;
    int rc = 0, linked = 0, ready = 0, c;

    for (int i = 0; i < n; i++)
        revents[i] = 0;
    c = cb_embed_cooperative(&loop);
    if (c <= 0)
        return c < 0 ? -1 : wait_thread(n, fds, events, revents, deadline_ns);
    tb = table_get(loop);
    if (!tb)
        return -1;
    call = PyMem_Calloc(1, sizeof *call + (size_t)n * sizeof *ws);
    if (!call) {
        PyErr_NoMemory();
        return -1;
    }
    ws = call->ws;
    for (int i = 0; i < n; i++) {
        fd_watch *w = NULL;
        int r = watch_get(tb, fds[i], &w);

        ws[i] = (poll_waiter){.events = events[i], .t = loop->mgr->current, .flag = &call->flag};
        if (r < 0) {
            rc = -1;
            goto done;
        }
        if (r == 0) { /* always ready */
            revents[i] = events[i];
            ready = 1;
            continue;
        }
        if (w->kept && (!keep || w->token != token) && !w->head)
            watch_stop(w); /* armed for another socket: registered afresh */
        if (keep) {
            w->kept = 1;
            w->token = token;
        }
        waiter_link(w, &ws[i]);
        linked = i + 1;
        if ((r = watch_update(w)) < 0) {
            set_uv_error(r);
            rc = -1;
            goto done;
        }
    }
    if (ready) {
        rc = 1;
        goto done;
    }
    rc = cb_embed_wait_flag(loop, &call->flag, deadline_ns, "wait for a file descriptor");
done:
    /* Leave the watches still holding us; report what woke us. */
    for (int i = 0; i < linked; i++) {
        poll_waiter *p = &ws[i];

        if (p->watch) {
            fd_watch *w = p->watch;
            waiter_unlink(p);
            (void)watch_update(w);
        } else if (p->revents < 0 && rc >= 0) {
            rc = -1;
            if (p->revents == UV_EBADF) {
                PyObject *e = PyObject_CallFunction(PyExc_OSError, "is", EBADF,
                                                    "File descriptor was closed while a tasklet waited on it");
                if (e) {
                    PyErr_SetObject((PyObject *)Py_TYPE(e), e);
                    Py_DECREF(e);
                }
            } else {
                set_uv_error(p->revents);
            }
        } else if (p->revents > 0) {
            revents[i] = p->revents;
            if (rc == 0)
                rc = 1;
        }
    }
    PyMem_Free(call);
    return rc;
}

int cb_embed_wait_fds(int n, const int *fds, const int *events, int *revents, long long deadline_ns)
{
    return wait_fds(n, fds, events, revents, deadline_ns, 0, 0);
}

int cb_embed_wait_sock(int fd, int events, long long deadline_ns, unsigned long long token)
{
    int revents = 0;

    return wait_fds(1, &fd, &events, &revents, deadline_ns, 1, token);
}

static fd_watch *watch_peek(int fd)
{
    cb_embed_loop *loop = cb_embed_loop_peek();
    poll_table *tb = tls_table;

    if (!loop || !tb || tb->loop != loop || fd < 0 || fd >= tb->cap)
        return NULL;
    return tb->byfd[fd];
}

char *cb_embed_scratch(size_t *cap)
{
    cb_embed_loop *loop = cb_embed_loop_peek();
    poll_table *tb;

    if (!loop || !(tb = table_get(loop))) {
        PyErr_Clear();
        return NULL;
    }
    if (!tb->scratch)
        tb->scratch = malloc(SCRATCH_SIZE);
    *cap = SCRATCH_SIZE;
    return tb->scratch;
}

void cb_embed_forget_fd(int fd)
{
    fd_watch *w = watch_peek(fd);
    poll_waiter *p, *next;

    if (!w)
        return;
    for (p = w->head; p; p = next) {
        next = p->next;
        waiter_unlink(p);
        p->revents = UV_EBADF;
        cb_embed_wake(p->t, p->flag);
    }
    /* Stopped, the descriptor leaves the epoll set now. The handle is kept
     * for the next descriptor with this number (closing it would leave a
     * closing handle that keeps the loop alive for a turn). */
    watch_stop(w);
}

/* ---- Python functions ------------------------------------------------------------------ */

/* None -> -1 (no deadline); seconds >= 0 -> a monotonic deadline. */
int cb_embed_parse_deadline(PyObject *timeout, long long *deadline_ns)
{
    double s;

    if (!timeout || timeout == Py_None) {
        *deadline_ns = -1;
        return 0;
    }
    s = PyFloat_AsDouble(timeout);
    if (s == -1.0 && PyErr_Occurred())
        return -1;
    if (isnan(s)) {
        PyErr_SetString(PyExc_ValueError, "timeout must not be NaN");
        return -1;
    }
    if (s < 0)
        s = 0;
    if (s > 1e9) {
        *deadline_ns = -1; /* as good as forever */
        return 0;
    }
    *deadline_ns = cb_monotonic_ns() + (long long)ceil(s * 1e9);
    return 0;
}

static int parse_fd(PyObject *o, int *fd)
{
    long v;

    if (!PyLong_Check(o)) {
        v = PyObject_AsFileDescriptor(o);
        if (v < 0)
            return -1;
    } else {
        v = PyLong_AsLong(o);
        if (v == -1 && PyErr_Occurred())
            return -1;
    }
    if (v < 0 || v > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "file descriptor cannot be a negative integer (%ld)", v);
        return -1;
    }
    *fd = (int)v;
    return 0;
}

static int parse_events(PyObject *o, int *events)
{
    long v = PyLong_AsLong(o);

    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 1 || v > (UV_READABLE | UV_WRITABLE)) {
        PyErr_SetString(PyExc_ValueError, "events must be READ (1), WRITE (2) or READ | WRITE (3)");
        return -1;
    }
    *events = (int)v;
    return 0;
}

PyObject *cb_embed_py_wait_fd(PyObject *mod, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", "events", "timeout", NULL};
    PyObject *fdo, *evo, *timeout = Py_None;
    int fd, events, revents = 0, r;
    long long deadline;

    (void)mod;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:wait_fd", kwlist, &fdo, &evo, &timeout))
        return NULL;
    if (parse_fd(fdo, &fd) < 0 || parse_events(evo, &events) < 0 ||
        cb_embed_parse_deadline(timeout, &deadline) < 0)
        return NULL;
    r = cb_embed_wait_fds(1, &fd, &events, &revents, deadline);
    if (r < 0)
        return NULL;
    return PyLong_FromLong(revents);
}

PyObject *cb_embed_py_wait_fds(PyObject *mod, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fds", "timeout", NULL};
    PyObject *seq, *fast, *timeout = Py_None, *res = NULL;
    Py_ssize_t n;
    int *buf = NULL, r;
    long long deadline;

    (void)mod;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:wait_fds", kwlist, &seq, &timeout))
        return NULL;
    if (cb_embed_parse_deadline(timeout, &deadline) < 0)
        return NULL;
    fast = PySequence_Fast(seq, "wait_fds() needs a sequence of (fd, events) pairs");
    if (!fast)
        return NULL;
    n = PySequence_Fast_GET_SIZE(fast);
    if (n > 65536) {
        PyErr_SetString(PyExc_ValueError, "too many file descriptors");
        goto out;
    }
    buf = PyMem_Malloc((size_t)(n ? n : 1) * 3 * sizeof *buf);
    if (!buf) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(fast, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "wait_fds() needs a sequence of (fd, events) pairs");
            goto out;
        }
        if (parse_fd(PyTuple_GET_ITEM(pair, 0), &buf[i]) < 0 ||
            parse_events(PyTuple_GET_ITEM(pair, 1), &buf[n + i]) < 0)
            goto out;
    }
    if (n == 0) {
        /* Nothing to wait for but the time. */
        if (deadline < 0) {
            PyErr_SetString(PyExc_ValueError, "wait_fds() with no descriptors needs a timeout");
            goto out;
        }
        cb_embed_loop *loop = NULL;
        int c = cb_embed_cooperative(&loop);
        if (c < 0)
            goto out;
        if (c == 0) {
            r = wait_thread(0, buf, buf + n, buf + 2 * n, deadline);
        } else {
            CB_OFFSTACK(unsigned, flag);
            r = flag ? cb_embed_wait_flag(loop, flag, deadline, "wait for a file descriptor")
                     : (PyErr_NoMemory(), -1);
        }
        if (r < 0)
            goto out;
        res = PyList_New(0);
        goto out;
    }
    r = cb_embed_wait_fds((int)n, buf, buf + n, buf + 2 * n, deadline);
    if (r < 0)
        goto out;
    res = PyList_New(0);
    for (Py_ssize_t i = 0; res && i < n; i++) {
        if (buf[2 * n + i]) {
            PyObject *t = Py_BuildValue("(ii)", buf[i], buf[2 * n + i]);
            if (!t || PyList_Append(res, t) < 0)
                Py_CLEAR(res);
            Py_XDECREF(t);
        }
    }
out:
    PyMem_Free(buf);
    Py_DECREF(fast);
    return res;
}

PyObject *cb_embed_py_forget_fd(PyObject *mod, PyObject *arg)
{
    int fd;

    (void)mod;
    if (parse_fd(arg, &fd) < 0)
        return NULL;
    cb_embed_forget_fd(fd);
    Py_RETURN_NONE;
}

PyObject *cb_embed_py_poll_state(PyObject *mod, PyObject *arg)
{
    int fd;
    fd_watch *w;

    (void)mod;
    if (parse_fd(arg, &fd) < 0)
        return NULL;
    if (!(w = watch_peek(fd)))
        Py_RETURN_NONE;
    return Py_BuildValue("(iik)", w->mask, w->kept, w->events);
}

PyObject *cb_embed_py_cooperative(PyObject *mod, PyObject *unused)
{
    cb_embed_loop *loop;
    int c;

    (void)mod;
    (void)unused;
    c = cb_embed_cooperative(&loop);
    if (c < 0)
        return NULL;
    return PyBool_FromLong(c);
}
