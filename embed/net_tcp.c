/* carbon.net TCP: streams (connect / accepted connections) and servers
 * (listen / accept) for tasklets. See net.h for how waits work and
 * docs/net.md for the API.
 *
 * Reading. Each stream reads with uv_read_start into the thread's shared
 * buffer and appends what arrives to its own buffer, from which read(),
 * readexactly() and readline() take without a system call. It stops reading
 * while READ_LIMIT bytes wait unread (more if a reader needs more), so a
 * peer cannot make us buffer without bound; the kernel's buffers and TCP
 * flow control do the rest.
 *
 * Writing. write() first tries the socket directly (uv_try_write); what
 * does not fit is copied into a write request. A write() that finds more
 * than WRITE_HIGH bytes queued first waits (only its tasklet) until the
 * queue is down to WRITE_LOW: a killed writer has then queued nothing.
 * close() lets queued data go out before the socket is closed. */
#include "net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define READ_LIMIT (256 * 1024)
#define WRITE_HIGH (256 * 1024)
#define WRITE_LOW (64 * 1024)
#define ACCEPT_QUEUE 64
#define BUF_KEEP (64 * 1024) /* an emptied read buffer larger than this is freed */

typedef struct tcp_h {
    uv_tcp_t tcp;           /* first: the handle's address is the record's */
    cb_net_handle link;     /* on the loop's list until uv_close() */
    PyObject *obj;          /* borrowed Stream or Server; NULL once closed */
    int is_server;
    unsigned writes;        /* write requests in flight */
    int close_when_flushed; /* closed by Python with writes in flight */
} tcp_h;

typedef struct {
    PyObject_HEAD
    tcp_h *h;               /* NULL once closed */
    char *buf;              /* unread bytes are buf[start:end] */
    size_t start, end, cap;
    int eof, rerr, werr, reading;
    cb_net_wait *reader, *writer, *drainer;
    size_t need;            /* bytes the reader waits for */
    int want_line;          /* ... or a newline */
    Py_ssize_t want_any;    /* a read(n) waits: n (else 0) */
    PyObject *handoff;      /* bytes made for that reader straight from libuv's buffer */
} StreamObject;

typedef struct accept_wait {
    cb_net_wait w;
    struct accept_wait *prev, *next;
} accept_wait;

typedef struct {
    PyObject_HEAD
    tcp_h *h;
    tcp_h *queue[ACCEPT_QUEUE]; /* accepted, not yet taken by accept() */
    unsigned qhead, qlen;
    int held;               /* libuv holds one more connection for us */
    int aerr;               /* accept error for the next accept() */
    unsigned long long accept_errors;
    accept_wait *first, *last;
} ServerObject;

static PyTypeObject *stream_type, *server_type;
static PyObject *incomplete_read_error;

/* ---- handles ----------------------------------------------------------------------------- */

static void free_tcp(uv_handle_t *h)
{
    free(h);
}

static void tcp_close_now(tcp_h *h)
{
    cb_net_handle_remove(&h->link);
    if (!uv_is_closing((uv_handle_t *)&h->tcp))
        uv_close((uv_handle_t *)&h->tcp, free_tcp);
}

static void stream_forget(StreamObject *s, int wake);
static void server_forget(ServerObject *sv, int wake);

static void tcp_loop_closing(cb_net_handle *link)
{
    tcp_h *h = (tcp_h *)((char *)link - offsetof(tcp_h, link));

    if (h->obj) {
        if (h->is_server)
            server_forget((ServerObject *)h->obj, 0);
        else
            stream_forget((StreamObject *)h->obj, 0);
    }
    h->obj = NULL;
    h->close_when_flushed = 0;
    tcp_close_now(h);
}

static tcp_h *tcp_new(cb_embed_loop *loop, int *err)
{
    tcp_h *h = calloc(1, sizeof *h);

    if (!h) {
        *err = UV_ENOMEM;
        return NULL;
    }
    if ((*err = uv_tcp_init(&loop->uv, &h->tcp)) < 0) {
        free(h);
        return NULL;
    }
    h->link.loop_closing = tcp_loop_closing;
    cb_net_handle_add(loop, &h->link);
    return h;
}

static PyObject *closed_error(const char *what)
{
    (void)what;
    PyObject *exc = PyObject_CallFunction(PyExc_OSError, "is", EBADF, "the socket is closed");
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* ---- streams: buffer ------------------------------------------------------------------------ */

static size_t buffered(StreamObject *s)
{
    return s->end - s->start;
}

static int buf_append(StreamObject *s, const char *p, size_t n)
{
    if (s->end + n > s->cap) {
        if (s->start) {
            memmove(s->buf, s->buf + s->start, s->end - s->start);
            s->end -= s->start;
            s->start = 0;
        }
        if (s->end + n > s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 4096;
            char *b;
            while (cap < s->end + n)
                cap *= 2;
            b = realloc(s->buf, cap);
            if (!b)
                return -1;
            s->buf = b;
            s->cap = cap;
        }
    }
    memcpy(s->buf + s->end, p, n);
    s->end += n;
    return 0;
}

/* Puts bytes back in front (a hand-off its reader did not take). */
static int buf_prepend(StreamObject *s, const char *p, size_t n)
{
    size_t have = buffered(s);

    if (s->start >= n) {
        s->start -= n;
        memcpy(s->buf + s->start, p, n);
        return 0;
    }
    if (buf_append(s, p, n) < 0) /* makes room for n more */
        return -1;
    memmove(s->buf + s->start + n, s->buf + s->start, have);
    memcpy(s->buf + s->start, p, n);
    return 0;
}

/* A killed or thrown-at reader leaves what was handed to it. */
static void handoff_return(StreamObject *s)
{
    PyObject *b = s->handoff;

    if (!b)
        return;
    s->handoff = NULL;
    if (buf_prepend(s, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b)) < 0)
        s->rerr = UV_ENOBUFS;
    Py_DECREF(b);
}

static void stop_reading(StreamObject *s)
{
    if (s->reading) {
        uv_read_stop((uv_stream_t *)&s->h->tcp);
        s->reading = 0;
    }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void ensure_reading(StreamObject *s)
{
    int r;

    if (s->reading || s->eof || s->rerr || !s->h)
        return;
    r = uv_read_start((uv_stream_t *)&s->h->tcp, cb_net_alloc, on_read);
    if (r < 0)
        s->rerr = r;
    else
        s->reading = 1;
}

static void wake_slot(cb_net_wait **slot, int status)
{
    cb_net_wait *w = *slot;

    if (w) {
        *slot = NULL;
        cb_net_wake(w, status);
    }
}

/* libuv reports a hang-up right after a short read as EOF even when it
 * was a reset (its POLLHUP shortcut): the socket still holds the error. */
static int pending_error(uv_stream_t *st)
{
    uv_os_fd_t fd;
    int err = 0;
    socklen_t len = sizeof err;

    if (uv_fileno((uv_handle_t *)st, &fd) < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return 0;
    return err == ECONNRESET ? UV_ECONNRESET : 0;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    StreamObject *s = (StreamObject *)((tcp_h *)st)->obj;
    int line = 0;

    if (!s) {
        uv_read_stop(st);
        return;
    }
    if (nread > 0 && s->reader && s->want_any && !s->handoff && !buffered(s)) {
        /* The common request/response case: one copy, and no stream buffer
         * at all (an idle connection then owns none). */
        size_t n = (size_t)nread < (size_t)s->want_any ? (size_t)nread : (size_t)s->want_any;
        s->handoff = PyBytes_FromStringAndSize(buf->base, (Py_ssize_t)n);
        if (s->handoff) {
            if (n < (size_t)nread && buf_append(s, buf->base + n, (size_t)nread - n) < 0) {
                s->rerr = UV_ENOBUFS;
                stop_reading(s);
            }
            wake_slot(&s->reader, 0);
            return;
        }
        PyErr_Clear(); /* out of memory: the general path below */
    }
    if (nread > 0) {
        if (buf_append(s, buf->base, (size_t)nread) < 0) {
            s->rerr = UV_ENOBUFS;
            stop_reading(s);
        } else {
            size_t limit = s->reader && s->need > READ_LIMIT ? s->need : READ_LIMIT;
            line = s->want_line && memchr(buf->base, '\n', (size_t)nread) != NULL;
            if (buffered(s) >= limit)
                stop_reading(s);
        }
    } else if (nread == 0) {
        return; /* EAGAIN */
    } else {
        if (nread == UV_EOF)
            s->rerr = pending_error(st);
        else
            s->rerr = (int)nread;
        s->eof = s->rerr == 0;
        stop_reading(s);
    }
    if (s->reader && (s->eof || s->rerr || line || buffered(s) >= s->need))
        wake_slot(&s->reader, 0);
}

/* Takes n buffered bytes as a bytes object. */
static PyObject *take(StreamObject *s, size_t n)
{
    PyObject *b = PyBytes_FromStringAndSize(s->buf + s->start, (Py_ssize_t)n);

    if (!b)
        return NULL;
    s->start += n;
    if (s->start == s->end) {
        s->start = s->end = 0;
        if (s->cap > BUF_KEEP) {
            free(s->buf);
            s->buf = NULL;
            s->cap = 0;
        }
    }
    if (!s->reading && buffered(s) < READ_LIMIT)
        ensure_reading(s);
    return b;
}

/* ---- streams: waiting ------------------------------------------------------------------------ */

/* Checks that the stream is open and ours; its loop. */
static cb_embed_loop *stream_check(StreamObject *s, const char *what)
{
    if (!s->h) {
        closed_error(what);
        return NULL;
    }
    if (cb_net_handle_check(&s->h->link, what) < 0)
        return NULL;
    return s->h->link.loop;
}

static PyObject *busy_reader(const char *what)
{
    PyErr_Format(PyExc_RuntimeError, "%s: another tasklet is already reading this stream", what);
    return NULL;
}

/* The one wait of every stream call (read, readexactly, readline, write,
 * drain): blocks the calling tasklet in `slot` (s->reader, writer or
 * drainer) until libuv wakes it; a reader first says what it waits for
 * (`need` bytes, or a newline if `line`) and starts reading. The stream
 * must have passed stream_check. 0: look again; -1 with an exception
 * (another tasklet waits there, killed, thrown at). */
static int stream_wait(StreamObject *s, cb_net_wait **slot, size_t need, int line, const char *what)
{
    cb_embed_loop *loop = s->h->link.loop;
    CB_OFFSTACK(cb_net_wait, w);
    int rc;

    if (!w) {
        PyErr_NoMemory();
        return -1;
    }
    if (*slot) {
        if (slot == &s->reader)
            busy_reader(what);
        else
            PyErr_Format(PyExc_RuntimeError,
                         "%s: another tasklet is already waiting to %s this stream", what, what);
        return -1;
    }
    if (slot == &s->reader) {
        s->need = need;
        s->want_line = line;
        ensure_reading(s);
        if (s->rerr && !s->reading)
            return 0; /* could not start: the caller sees the error */
    }
    w->t = loop->mgr->current;
    cb_offstack_check(w, slot == &s->reader   ? "a stream's reader"
                         : slot == &s->writer ? "a stream's writer"
                                              : "a stream's drainer");
    *slot = w;
    rc = cb_net_block(loop, w);
    if (*slot == w)
        *slot = NULL;
    return rc;
}

/* At EOF or after a read error: what is left, then the error, then b"". */
static PyObject *read_rest(StreamObject *s)
{
    if (buffered(s))
        return take(s, buffered(s));
    if (s->rerr)
        return cb_net_raise(s->rerr, NULL);
    return PyBytes_FromStringAndSize(NULL, 0);
}

/* ---- streams: methods ------------------------------------------------------------------------ */

static int parse_size(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, const char *fn,
                      const char *kw, Py_ssize_t dflt, int required, Py_ssize_t *out)
{
    PyObject *arg = NULL;

    if (nargs == 1 && !kwnames && PyLong_CheckExact(args[0])) { /* read(65536) */
        *out = PyLong_AsSsize_t(args[0]);
        if (*out != -1 || !PyErr_Occurred())
            return 0;
        PyErr_Clear(); /* too big: the general path says so */
    }
    if (nargs > 1 || (kwnames && PyTuple_GET_SIZE(kwnames) + nargs > 1)) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 1 argument", fn);
        return -1;
    }
    if (nargs == 1)
        arg = args[0];
    else if (kwnames && PyTuple_GET_SIZE(kwnames) == 1) {
        if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), kw) != 0) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", fn,
                         PyTuple_GET_ITEM(kwnames, 0));
            return -1;
        }
        arg = args[0];
    }
    if (!arg) {
        if (required) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fn, kw);
            return -1;
        }
        *out = dflt;
        return 0;
    }
    if (!PyIndex_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "%s() argument must be an int, not %.200s", fn,
                     Py_TYPE(arg)->tp_name);
        return -1;
    }
    *out = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static PyObject *stream_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    StreamObject *s = (StreamObject *)self;
    Py_ssize_t n;
    int rc;

    if (parse_size(args, nargs, kwnames, "read", "n", -1, 0, &n) < 0)
        return NULL;
    if (s->handoff) /* bytes handed to a reader that has not resumed yet */
        return busy_reader("read");
    for (;;) {
        size_t avail;
        if (!stream_check(s, "read"))
            return NULL;
        avail = buffered(s);
        if (n == 0)
            return PyBytes_FromStringAndSize(NULL, 0);
        if (n > 0 && avail)
            return take(s, avail < (size_t)n ? avail : (size_t)n);
        if (s->eof || s->rerr)
            return read_rest(s);
        if (s->reader) /* before want_any, which is that reader's */
            return busy_reader("read");
        s->want_any = n > 0 ? n : 0;
        rc = stream_wait(s, &s->reader, n > 0 ? 1 : SIZE_MAX, 0, "read");
        s->want_any = 0;
        if (rc < 0) {
            handoff_return(s);
            return NULL;
        }
        if (s->handoff) {
            PyObject *b = s->handoff;
            s->handoff = NULL;
            return b;
        }
    }
}

static PyObject *incomplete(StreamObject *s, Py_ssize_t expected)
{
    PyObject *partial = take(s, buffered(s)), *exc = NULL;

    if (partial)
        exc = PyObject_CallFunction(incomplete_read_error, "s", "the stream ended before the bytes expected");
    if (exc && PyObject_SetAttrString(exc, "partial", partial) == 0) {
        PyObject *e = PyLong_FromSsize_t(expected);
        if (e && PyObject_SetAttrString(exc, "expected", e) == 0)
            PyErr_SetObject(incomplete_read_error, exc);
        Py_XDECREF(e);
    }
    Py_XDECREF(exc);
    Py_XDECREF(partial);
    return NULL;
}

static PyObject *stream_readexactly(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames)
{
    StreamObject *s = (StreamObject *)self;
    Py_ssize_t n;

    if (parse_size(args, nargs, kwnames, "readexactly", "n", 0, 1, &n) < 0)
        return NULL;
    if (s->handoff) /* bytes handed to a reader that has not resumed yet */
        return busy_reader("readexactly");
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "readexactly() size must not be negative");
        return NULL;
    }
    for (;;) {
        if (!stream_check(s, "readexactly"))
            return NULL;
        if (buffered(s) >= (size_t)n)
            return take(s, (size_t)n);
        if (s->eof || s->rerr) {
            if (!buffered(s) && s->rerr)
                return cb_net_raise(s->rerr, NULL);
            return incomplete(s, n);
        }
        if (stream_wait(s, &s->reader, (size_t)n, 0, "readexactly") < 0)
            return NULL;
    }
}

static PyObject *stream_readline(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames)
{
    StreamObject *s = (StreamObject *)self;
    Py_ssize_t limit;

    if (parse_size(args, nargs, kwnames, "readline", "limit", 65536, 0, &limit) < 0)
        return NULL;
    if (s->handoff) /* bytes handed to a reader that has not resumed yet */
        return busy_reader("readline");
    if (limit <= 0) {
        PyErr_SetString(PyExc_ValueError, "readline() limit must be positive");
        return NULL;
    }
    for (;;) {
        size_t avail, scan;
        const char *nl;
        if (!stream_check(s, "readline"))
            return NULL;
        avail = buffered(s);
        scan = avail < (size_t)limit ? avail : (size_t)limit;
        nl = scan ? memchr(s->buf + s->start, '\n', scan) : NULL;
        if (nl)
            return take(s, (size_t)(nl - (s->buf + s->start)) + 1);
        if (avail >= (size_t)limit)
            return take(s, (size_t)limit);
        if (s->eof || s->rerr)
            return read_rest(s);
        if (stream_wait(s, &s->reader, (size_t)limit, 1, "readline") < 0)
            return NULL;
    }
}

typedef struct {
    uv_write_t req;
    char data[];
} write_req;

static void on_write(uv_write_t *req, int status)
{
    tcp_h *h = (tcp_h *)req->handle;
    StreamObject *s = (StreamObject *)h->obj;

    free(req);
    h->writes--;
    if (!s) {
        if (h->close_when_flushed && (h->writes == 0 || status < 0)) {
            h->close_when_flushed = 0;
            tcp_close_now(h);
        }
        return;
    }
    if (status < 0 && status != UV_ECANCELED && !s->werr)
        s->werr = status;
    if (h->tcp.write_queue_size <= WRITE_LOW || s->werr)
        wake_slot(&s->writer, 0);
    if (h->writes == 0 || s->werr)
        wake_slot(&s->drainer, 0);
}

static int queue_write(StreamObject *s, const char *p, size_t len)
{
    uv_stream_t *st = (uv_stream_t *)&s->h->tcp;
    uv_buf_t b;
    write_req *req;
    int r;

    if (len == 0)
        return 0;
    if (st->write_queue_size == 0 && len <= INT32_MAX) {
        b = uv_buf_init((char *)p, (unsigned)len);
        r = uv_try_write(st, &b, 1);
        if (r >= 0 && (size_t)r == len)
            return 0;
        if (r > 0) {
            p += r;
            len -= (size_t)r;
        } else if (r != UV_EAGAIN && r != UV_ENOSYS) {
            s->werr = r;
            cb_net_raise(r, NULL);
            return -1;
        }
    }
    req = malloc(sizeof *req + len);
    if (!req) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(req->data, p, len);
    b = uv_buf_init(req->data, (unsigned)len);
    r = uv_write(&req->req, st, &b, 1, on_write);
    if (r < 0) {
        free(req);
        s->werr = r;
        cb_net_raise(r, NULL);
        return -1;
    }
    s->h->writes++;
    return 0;
}

static PyObject *stream_write(PyObject *self, PyObject *data)
{
    StreamObject *s = (StreamObject *)self;
    Py_buffer view;
    int bytes = PyBytes_CheckExact(data), ok = 0;
    const char *p;
    size_t len;

    /* bytes (the usual case: what read() returned) without the buffer
     * protocol; the caller's reference keeps it alive while we wait. */
    if (bytes) {
        p = PyBytes_AS_STRING(data);
        len = (size_t)PyBytes_GET_SIZE(data);
    } else {
        if (PyUnicode_Check(data)) {
            PyErr_SetString(PyExc_TypeError, "write() argument must be bytes-like, not str");
            return NULL;
        }
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
            return NULL;
        p = view.buf;
        len = (size_t)view.len;
    }
    if (len > UINT32_MAX / 2) {
        PyErr_SetString(PyExc_OverflowError, "write() of more than 2 GiB at once");
        goto out;
    }
    for (;;) {
        if (!stream_check(s, "write"))
            goto out;
        if (s->werr) {
            cb_net_raise(s->werr, NULL);
            goto out;
        }
        if (s->h->tcp.write_queue_size <= WRITE_HIGH)
            break;
        if (stream_wait(s, &s->writer, 0, 0, "write") < 0)
            goto out;
    }
    ok = queue_write(s, p, len) == 0;
out:
    if (!bytes)
        PyBuffer_Release(&view);
    if (!ok)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *stream_drain(PyObject *self, PyObject *unused)
{
    StreamObject *s = (StreamObject *)self;

    (void)unused;
    for (;;) {
        if (!stream_check(s, "drain"))
            return NULL;
        if (s->werr)
            return cb_net_raise(s->werr, NULL);
        if (s->h->writes == 0)
            Py_RETURN_NONE;
        if (stream_wait(s, &s->drainer, 0, 0, "drain") < 0)
            return NULL;
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    free(req);
}

static PyObject *stream_write_eof(PyObject *self, PyObject *unused)
{
    StreamObject *s = (StreamObject *)self;
    uv_shutdown_t *req;
    int r;

    (void)unused;
    if (!stream_check(s, "write_eof"))
        return NULL;
    req = malloc(sizeof *req);
    if (!req)
        return PyErr_NoMemory();
    r = uv_shutdown(req, (uv_stream_t *)&s->h->tcp, on_shutdown);
    if (r < 0) {
        free(req);
        if (r == UV_ENOTCONN)
            Py_RETURN_NONE; /* already shut down */
        return cb_net_raise(r, NULL);
    }
    Py_RETURN_NONE;
}

/* The object lets go of its handle: waiters are woken (they see the stream
 * closed), or only forgotten when the loop itself is closing (its tasklets
 * have been killed; like the timer heaps, nothing is woken then). */
static void stream_forget(StreamObject *s, int wake)
{
    tcp_h *h = s->h;

    if (!h)
        return;
    stop_reading(s);
    s->h = NULL;
    h->obj = NULL;
    if (wake) {
        wake_slot(&s->reader, UV_EBADF);
        wake_slot(&s->writer, UV_EBADF);
        wake_slot(&s->drainer, UV_EBADF);
    } else {
        s->reader = s->writer = s->drainer = NULL;
    }
    Py_CLEAR(s->handoff);
    free(s->buf);
    s->buf = NULL;
    s->start = s->end = s->cap = 0;
}

static void stream_release(StreamObject *s)
{
    tcp_h *h = s->h;

    if (!h)
        return;
    stream_forget(s, 1);
    if (h->writes && h->link.loop && !s->werr)
        h->close_when_flushed = 1;
    else
        tcp_close_now(h);
}

static PyObject *stream_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    stream_release((StreamObject *)self);
    Py_RETURN_NONE;
}

static PyObject *stream_set_nodelay(PyObject *self, PyObject *args)
{
    StreamObject *s = (StreamObject *)self;
    int on = 1, r;

    if (!PyArg_ParseTuple(args, "|p:set_nodelay", &on) || !stream_check(s, "set_nodelay"))
        return NULL;
    if ((r = uv_tcp_nodelay(&s->h->tcp, on)) < 0)
        return cb_net_raise(r, NULL);
    Py_RETURN_NONE;
}

static PyObject *tcp_name(tcp_h *h, int peer, const char *what)
{
    struct sockaddr_storage ss;
    int len = sizeof ss, r;

    if (!h)
        return closed_error(what);
    if (cb_net_handle_check(&h->link, what) < 0)
        return NULL;
    r = peer ? uv_tcp_getpeername(&h->tcp, (struct sockaddr *)&ss, &len)
             : uv_tcp_getsockname(&h->tcp, (struct sockaddr *)&ss, &len);
    if (r < 0)
        return cb_net_raise(r, NULL);
    return cb_net_addr_tuple((struct sockaddr *)&ss);
}

static PyObject *stream_get_peername(PyObject *self, void *c)
{
    (void)c;
    return tcp_name(((StreamObject *)self)->h, 1, "peername");
}

static PyObject *stream_get_sockname(PyObject *self, void *c)
{
    (void)c;
    return tcp_name(((StreamObject *)self)->h, 0, "sockname");
}

static PyObject *stream_get_closed(PyObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(((StreamObject *)self)->h == NULL);
}

static PyObject *stream_get_buffered(PyObject *self, void *c)
{
    (void)c;
    return PyLong_FromSize_t(buffered((StreamObject *)self));
}

static PyObject *stream_get_write_buffered(PyObject *self, void *c)
{
    StreamObject *s = (StreamObject *)self;

    (void)c;
    return PyLong_FromSize_t(s->h ? s->h->tcp.write_queue_size : 0);
}

static PyObject *return_self(PyObject *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(self);
}

static PyObject *stream_exit(PyObject *self, PyObject *args)
{
    (void)args;
    stream_release((StreamObject *)self);
    Py_RETURN_FALSE;
}

static PyObject *stream_repr(PyObject *self)
{
    StreamObject *s = (StreamObject *)self;

    if (!s->h)
        return PyUnicode_FromString("<carbon.net.Stream closed>");
    return PyUnicode_FromFormat("<carbon.net.Stream fd=%d>", (int)s->h->tcp.io_watcher.fd);
}

static void stream_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    stream_release((StreamObject *)self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef stream_methods[] = {
    {"read", (PyCFunction)(void (*)(void))stream_read, METH_FASTCALL | METH_KEYWORDS,
     "read(n=-1) -> bytes: up to n bytes as soon as any are there (n < 0: everything up to "
     "EOF); b'' at EOF."},
    {"readexactly", (PyCFunction)(void (*)(void))stream_readexactly, METH_FASTCALL | METH_KEYWORDS,
     "readexactly(n) -> bytes: exactly n bytes; IncompleteReadError (.partial) if EOF comes first."},
    {"readline", (PyCFunction)(void (*)(void))stream_readline, METH_FASTCALL | METH_KEYWORDS,
     "readline(limit=65536) -> bytes: up to and including b'\\n', at most limit bytes; what is "
     "left at EOF; b'' at EOF."},
    {"write", stream_write, METH_O,
     "write(data): queue bytes for sending; blocks the tasklet first while more than the "
     "high-water mark is queued."},
    {"drain", stream_drain, METH_NOARGS, "drain(): block until everything written is handed to the kernel."},
    {"write_eof", stream_write_eof, METH_NOARGS, "write_eof(): half-close (shutdown of the sending side)."},
    {"close", stream_close, METH_NOARGS, "close(): close the stream (queued data is still sent)."},
    {"set_nodelay", stream_set_nodelay, METH_VARARGS, "set_nodelay(on=True): TCP_NODELAY (on by default)."},
    {"__enter__", return_self, METH_NOARGS, NULL},
    {"__exit__", stream_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef stream_getset[] = {
    {"peername", stream_get_peername, NULL, "The peer's address.", NULL},
    {"sockname", stream_get_sockname, NULL, "The local address.", NULL},
    {"closed", stream_get_closed, NULL, "True after close().", NULL},
    {"buffered", stream_get_buffered, NULL, "Bytes received and not yet read.", NULL},
    {"write_buffered", stream_get_write_buffered, NULL, "Bytes queued and not yet sent.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot stream_slots[] = {
    {Py_tp_dealloc, stream_dealloc},
    {Py_tp_repr, stream_repr},
    {Py_tp_methods, stream_methods},
    {Py_tp_getset, stream_getset},
    {Py_tp_doc, "A TCP connection for tasklets (carbon.net.connect() or a server's handler)."},
    {0, NULL},
};

static PyType_Spec stream_spec = {
    .name = "carbon.net.Stream",
    .basicsize = sizeof(StreamObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = stream_slots,
};

static PyObject *stream_new(tcp_h *h)
{
    StreamObject *s = PyObject_New(StreamObject, stream_type);

    if (!s) {
        tcp_close_now(h);
        return NULL;
    }
    memset((char *)s + sizeof(PyObject), 0, sizeof *s - sizeof(PyObject));
    s->h = h;
    h->obj = (PyObject *)s;
    h->is_server = 0;
    uv_tcp_nodelay(&h->tcp, 1); /* like asyncio: request/response traffic */
    ensure_reading(s);
    return (PyObject *)s;
}

/* ---- connect ---------------------------------------------------------------------------------- */

typedef struct {
    uv_connect_t req;
    cb_net_wait *w; /* NULL once the caller gave up */
    int done, status;
} connect_req;

static void on_connect(uv_connect_t *req, int status)
{
    connect_req *c = (connect_req *)req;

    if (!c->w) {
        free(c);
        return;
    }
    c->done = 1;
    c->status = status;
    cb_net_wake(c->w, status);
}

/* One attempt: 0 connected, 1 failed with *err, -1 exception (killed). */
static int connect_one(cb_embed_loop *loop, tcp_h *h, const struct sockaddr *sa, long long deadline,
                       int *err)
{
    CB_OFFSTACK(cb_net_wait, w);
    connect_req *c = calloc(1, sizeof *c);
    uv_timer_t *timer = NULL;
    int r, rc;

    if (!c || !w) {
        free(c);
        PyErr_NoMemory();
        return -1;
    }
    w->t = loop->mgr->current;
    cb_offstack_check(w, "a connect request's waiter");
    c->w = w;
    if ((r = uv_tcp_connect(&c->req, &h->tcp, sa, on_connect)) < 0) {
        free(c);
        *err = r;
        return 1;
    }
    if (deadline >= 0 && !(timer = cb_net_timeout_start(loop, deadline - cb_monotonic_ns(), w))) {
        c->w = NULL; /* freed by on_connect when the handle closes */
        return -1;
    }
    rc = cb_net_block(loop, w);
    cb_net_timeout_stop(timer);
    if (c->done) {
        r = c->status;
        free(c);
    } else {
        c->w = NULL;
        r = UV_ETIMEDOUT;
    }
    if (rc < 0)
        return -1;
    *err = r;
    return r == 0 ? 0 : 1;
}

static long long deadline_of(PyObject *timeout)
{
    double t;

    if (timeout == Py_None)
        return -1;
    t = PyFloat_AsDouble(timeout);
    if (t == -1.0 && PyErr_Occurred())
        return -2;
    if (!(t >= 0) || t > 1e9) {
        PyErr_SetString(PyExc_ValueError, "timeout must be None or a number of seconds >= 0");
        return -2;
    }
    return cb_monotonic_ns() + (long long)(t * 1e9);
}

static PyObject *net_tcp_connect(PyObject *mod, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"host", "port", "timeout", NULL};
    const char *host;
    int port, err = UV_ECONNREFUSED, rc;
    PyObject *timeout = Py_None;
    long long deadline;
    struct sockaddr_storage ss;
    struct addrinfo *all = NULL, *a;
    cb_embed_loop *loop;

    (void)mod;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "si|O:connect", kwlist, &host, &port, &timeout))
        return NULL;
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_OverflowError, "connect(): port must be 0-65535");
        return NULL;
    }
    if ((deadline = deadline_of(timeout)) == -2 || !(loop = cb_net_loop()))
        return NULL;
    if (cb_net_resolve(loop, host, port, SOCK_STREAM, &ss, &all, deadline) < 0)
        return NULL;
    a = all;
    for (;;) {
        const struct sockaddr *sa = a ? a->ai_addr : (struct sockaddr *)&ss;
        tcp_h *h = tcp_new(loop, &err);
        if (!h)
            break;
        rc = connect_one(loop, h, sa, deadline, &err);
        if (rc == 0) {
            if (all)
                uv_freeaddrinfo(all);
            return stream_new(h);
        }
        tcp_close_now(h);
        if (rc < 0) {
            if (all)
                uv_freeaddrinfo(all);
            return NULL;
        }
        if (err == UV_ETIMEDOUT || !a || !(a = a->ai_next))
            break;
    }
    if (all)
        uv_freeaddrinfo(all);
    return cb_net_raise(err, NULL);
}

/* ---- servers ------------------------------------------------------------------------------------ */

static void accept_unlink(ServerObject *sv, accept_wait *a)
{
    if (a->prev)
        a->prev->next = a->next;
    else if (sv->first == a)
        sv->first = a->next;
    else
        return; /* not on the list */
    if (a->next)
        a->next->prev = a->prev;
    else
        sv->last = a->prev;
    a->prev = a->next = NULL;
}

static void wake_acceptor(ServerObject *sv, int status)
{
    accept_wait *a = sv->first;

    if (a) {
        accept_unlink(sv, a);
        cb_net_wake(&a->w, status);
    }
}

/* Takes the connection libuv holds into the queue. */
static void take_one(ServerObject *sv)
{
    int err;
    tcp_h *c = tcp_new(sv->h->link.loop, &err);

    if (c && (err = uv_accept((uv_stream_t *)&sv->h->tcp, (uv_stream_t *)&c->tcp)) < 0) {
        tcp_close_now(c);
        c = NULL;
    }
    if (!c) {
        sv->aerr = err;
        sv->accept_errors++;
        return;
    }
    sv->queue[(sv->qhead + sv->qlen++) % ACCEPT_QUEUE] = c;
}

static void on_connection(uv_stream_t *st, int status)
{
    ServerObject *sv = (ServerObject *)((tcp_h *)st)->obj;

    if (!sv)
        return;
    if (status < 0) {
        /* EMFILE and friends: libuv has already dropped the connection
         * that could not be accepted (its reserve-descriptor trick). */
        sv->aerr = status;
        sv->accept_errors++;
    } else if (sv->qlen < ACCEPT_QUEUE) {
        take_one(sv);
    } else {
        sv->held = 1; /* libuv stops watching until we take it */
    }
    wake_acceptor(sv, 0);
}

static void server_forget(ServerObject *sv, int wake)
{
    tcp_h *h = sv->h;

    if (!h)
        return;
    sv->h = NULL;
    h->obj = NULL;
    while (sv->qlen) {
        tcp_close_now(sv->queue[sv->qhead]);
        sv->qhead = (sv->qhead + 1) % ACCEPT_QUEUE;
        sv->qlen--;
    }
    while (wake && sv->first)
        wake_acceptor(sv, UV_EBADF);
    sv->first = sv->last = NULL;
}

static void server_release(ServerObject *sv)
{
    tcp_h *h = sv->h;

    if (!h)
        return;
    server_forget(sv, 1);
    tcp_close_now(h);
}

static PyObject *server_accept(PyObject *self, PyObject *unused)
{
    ServerObject *sv = (ServerObject *)self;
    cb_embed_loop *loop;

    (void)unused;
    for (;;) {
        CB_OFFSTACK(accept_wait, a);
        int rc;
        if (!a)
            return PyErr_NoMemory();
        if (!sv->h)
            return closed_error("accept");
        if (cb_net_handle_check(&sv->h->link, "accept") < 0)
            return NULL;
        loop = sv->h->link.loop;
        if (sv->qlen) {
            tcp_h *c = sv->queue[sv->qhead];
            sv->qhead = (sv->qhead + 1) % ACCEPT_QUEUE;
            sv->qlen--;
            if (sv->held) {
                sv->held = 0;
                take_one(sv);
            }
            if (sv->qlen || sv->aerr)
                wake_acceptor(sv, 0);
            return stream_new(c);
        }
        if (sv->aerr) {
            int e = sv->aerr;
            sv->aerr = 0;
            return cb_net_raise(e, "accept");
        }
        a->w.t = loop->mgr->current;
        cb_offstack_check(a, "a server's accept waiter");
        a->prev = sv->last;
        if (sv->last)
            sv->last->next = a;
        else
            sv->first = a;
        sv->last = a;
        rc = cb_net_block(loop, &a->w);
        accept_unlink(sv, a);
        if (rc < 0) {
            /* Pass on a wakeup we may have taken. */
            if (sv->qlen || sv->aerr)
                wake_acceptor(sv, 0);
            return NULL;
        }
    }
}

static PyObject *server_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    server_release((ServerObject *)self);
    Py_RETURN_NONE;
}

static PyObject *server_get_sockname(PyObject *self, void *c)
{
    (void)c;
    return tcp_name(((ServerObject *)self)->h, 0, "sockname");
}

static PyObject *server_get_closed(PyObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(((ServerObject *)self)->h == NULL);
}

static PyObject *server_get_accept_errors(PyObject *self, void *c)
{
    (void)c;
    return PyLong_FromUnsignedLongLong(((ServerObject *)self)->accept_errors);
}

static void server_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    server_release((ServerObject *)self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef server_methods[] = {
    {"accept", server_accept, METH_NOARGS,
     "accept() -> Stream: the next connection; blocks the calling tasklet."},
    {"close", server_close, METH_NOARGS,
     "close(): stop listening; tasklets blocked in accept() get OSError(EBADF)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef server_getset[] = {
    {"sockname", server_get_sockname, NULL, "The bound address.", NULL},
    {"closed", server_get_closed, NULL, "True after close().", NULL},
    {"accept_errors", server_get_accept_errors, NULL, "Failed accepts so far (EMFILE...).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot server_slots[] = {
    {Py_tp_dealloc, server_dealloc},
    {Py_tp_methods, server_methods},
    {Py_tp_getset, server_getset},
    {Py_tp_doc, "A listening TCP socket (the C half of carbon.net.listen())."},
    {0, NULL},
};

static PyType_Spec server_spec = {
    .name = "carbon.net.TCPListener",
    .basicsize = sizeof(ServerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = server_slots,
};

static PyObject *net_tcp_listen(PyObject *mod, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"host", "port", "backlog", NULL};
    const char *host;
    int port, backlog = 128, err;
    struct sockaddr_storage ss;
    cb_embed_loop *loop;
    ServerObject *sv;
    tcp_h *h;

    (void)mod;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "si|i:listen", kwlist, &host, &port, &backlog))
        return NULL;
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_OverflowError, "listen(): port must be 0-65535");
        return NULL;
    }
    if (backlog < 1) {
        PyErr_SetString(PyExc_ValueError, "listen(): backlog must be positive");
        return NULL;
    }
    if (!(loop = cb_net_loop()) || cb_net_resolve(loop, host, port, SOCK_STREAM, &ss, NULL, -1) < 0)
        return NULL;
    if (!(h = tcp_new(loop, &err)))
        return cb_net_raise(err, "listen");
    sv = PyObject_New(ServerObject, server_type);
    if (!sv) {
        tcp_close_now(h);
        return NULL;
    }
    memset((char *)sv + sizeof(PyObject), 0, sizeof *sv - sizeof(PyObject));
    sv->h = h;
    h->obj = (PyObject *)sv;
    h->is_server = 1;
    if ((err = uv_tcp_bind(&h->tcp, (struct sockaddr *)&ss, 0)) < 0 ||
        (err = uv_listen((uv_stream_t *)&h->tcp, backlog, on_connection)) < 0) {
        Py_DECREF(sv);
        return cb_net_raise(err, NULL);
    }
    return (PyObject *)sv;
}

/* ---- module part ---------------------------------------------------------------------------------- */

static PyMethodDef tcp_functions[] = {
    {"tcp_connect", (PyCFunction)(void (*)(void))net_tcp_connect, METH_VARARGS | METH_KEYWORDS,
     "tcp_connect(host, port, timeout=None) -> Stream"},
    {"tcp_listen", (PyCFunction)(void (*)(void))net_tcp_listen, METH_VARARGS | METH_KEYWORDS,
     "tcp_listen(host, port, backlog=128) -> TCPListener"},
    {NULL, NULL, 0, NULL},
};

int cb_net_tcp_init(PyObject *mod)
{
    if (!stream_type && !(stream_type = (PyTypeObject *)PyType_FromSpec(&stream_spec)))
        return -1;
    if (!server_type && !(server_type = (PyTypeObject *)PyType_FromSpec(&server_spec)))
        return -1;
    if (!incomplete_read_error &&
        !(incomplete_read_error = PyErr_NewExceptionWithDoc(
              "carbon.net.IncompleteReadError",
              "readexactly() met EOF first; .partial holds the bytes read, .expected the size asked.",
              PyExc_EOFError, NULL)))
        return -1;
    if (PyModule_AddObjectRef(mod, "Stream", (PyObject *)stream_type) < 0 ||
        PyModule_AddObjectRef(mod, "TCPListener", (PyObject *)server_type) < 0 ||
        PyModule_AddObjectRef(mod, "IncompleteReadError", incomplete_read_error) < 0 ||
        PyModule_AddIntConstant(mod, "WRITE_HIGH_WATER", WRITE_HIGH) < 0 ||
        PyModule_AddIntConstant(mod, "WRITE_LOW_WATER", WRITE_LOW) < 0 ||
        PyModule_AddIntConstant(mod, "READ_LIMIT", READ_LIMIT) < 0)
        return -1;
    return PyModule_AddFunctions(mod, tcp_functions);
}

void cb_net_tcp_free(void)
{
    Py_CLEAR(stream_type);
    Py_CLEAR(server_type);
    Py_CLEAR(incomplete_read_error);
}
