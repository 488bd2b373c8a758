/* carbon.net UDP endpoints: sendto() and recvfrom() for tasklets.
 *
 * Receiving runs while fewer than RECV_QUEUE datagrams wait unread; then it
 * stops and the kernel's socket buffer holds (or drops) what follows, as
 * UDP does anyway. Sending tries the socket at once (uv_udp_try_send) and
 * queues a copy only when the kernel buffer is full; sendto() never blocks
 * the tasklet, except to resolve a host name. */
#include "net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define RECV_QUEUE 1024

typedef struct udp_h {
    uv_udp_t udp;
    cb_net_handle link;
    PyObject *obj; /* borrowed Endpoint; NULL once closed */
} udp_h;

typedef struct {
    PyObject_HEAD
    udp_h *h;
    PyObject *queue[RECV_QUEUE]; /* (data, addr) tuples, owned */
    unsigned qhead, qlen;
    int rerr, receiving;
    cb_net_wait *reader;
} EndpointObject;

static PyTypeObject *endpoint_type;

static void free_udp(uv_handle_t *h)
{
    free(h);
}

static void udp_close_now(udp_h *h)
{
    cb_net_handle_remove(&h->link);
    if (!uv_is_closing((uv_handle_t *)&h->udp))
        uv_close((uv_handle_t *)&h->udp, free_udp);
}

static void endpoint_forget(EndpointObject *e, int wake)
{
    udp_h *h = e->h;
    cb_net_wait *w = e->reader;

    if (!h)
        return;
    e->h = NULL;
    h->obj = NULL;
    e->reader = NULL;
    if (w && wake) /* not when the loop closes: see stream_forget() */
        cb_net_wake(w, UV_EBADF);
    while (e->qlen) {
        Py_CLEAR(e->queue[e->qhead]);
        e->qhead = (e->qhead + 1) % RECV_QUEUE;
        e->qlen--;
    }
}

static void udp_loop_closing(cb_net_handle *link)
{
    udp_h *h = (udp_h *)((char *)link - offsetof(udp_h, link));

    if (h->obj)
        endpoint_forget((EndpointObject *)h->obj, 0);
    udp_close_now(h);
}

static PyObject *closed_error(void)
{
    PyObject *exc = PyObject_CallFunction(PyExc_OSError, "is", EBADF, "the socket is closed");

    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static void on_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    EndpointObject *e = (EndpointObject *)((udp_h *)u)->obj;
    PyObject *item = NULL, *data, *a;

    (void)flags;
    if (!e)
        return;
    if (nread == 0 && !addr)
        return; /* nothing more to read */
    if (nread < 0) {
        e->rerr = (int)nread;
    } else {
        data = PyBytes_FromStringAndSize(buf->base, nread);
        a = data ? cb_net_addr_tuple(addr) : NULL;
        item = a ? PyTuple_Pack(2, data, a) : NULL;
        Py_XDECREF(data);
        Py_XDECREF(a);
        if (!item) {
            PyErr_Clear(); /* out of memory: the datagram is dropped, as UDP may */
            return;
        }
        e->queue[(e->qhead + e->qlen++) % RECV_QUEUE] = item;
        if (e->qlen == RECV_QUEUE) {
            uv_udp_recv_stop(u);
            e->receiving = 0;
        }
    }
    if (e->reader) {
        cb_net_wait *w = e->reader;
        e->reader = NULL;
        cb_net_wake(w, 0);
    }
}

static void ensure_receiving(EndpointObject *e)
{
    int r;

    if (e->receiving || !e->h || e->qlen == RECV_QUEUE)
        return;
    r = uv_udp_recv_start(&e->h->udp, cb_net_alloc, on_recv);
    if (r < 0)
        e->rerr = r;
    else
        e->receiving = 1;
}

static cb_embed_loop *endpoint_check(EndpointObject *e, const char *what)
{
    if (!e->h) {
        closed_error();
        return NULL;
    }
    if (cb_net_handle_check(&e->h->link, what) < 0)
        return NULL;
    return e->h->link.loop;
}

static PyObject *endpoint_recvfrom(PyObject *self, PyObject *unused)
{
    EndpointObject *e = (EndpointObject *)self;
    cb_embed_loop *loop;

    (void)unused;
    for (;;) {
        CB_OFFSTACK(cb_net_wait, w);
        int rc;
        if (!w)
            return PyErr_NoMemory();
        if (!(loop = endpoint_check(e, "recvfrom")))
            return NULL;
        if (e->qlen) {
            PyObject *item = e->queue[e->qhead];
            e->queue[e->qhead] = NULL;
            e->qhead = (e->qhead + 1) % RECV_QUEUE;
            e->qlen--;
            ensure_receiving(e);
            return item;
        }
        if (e->rerr) {
            int err = e->rerr;
            e->rerr = 0; /* e.g. ECONNREFUSED from an ICMP error: reported once */
            return cb_net_raise(err, NULL);
        }
        if (e->reader) {
            PyErr_SetString(PyExc_RuntimeError,
                            "recvfrom: another tasklet is already receiving on this endpoint");
            return NULL;
        }
        ensure_receiving(e);
        w->t = loop->mgr->current;
        cb_offstack_check(w, "a datagram endpoint's reader");
        e->reader = w;
        rc = cb_net_block(loop, w);
        if (e->reader == w)
            e->reader = NULL;
        if (rc < 0)
            return NULL;
    }
}

typedef struct {
    uv_udp_send_t req;
    char data[];
} send_req;

static void on_send(uv_udp_send_t *req, int status)
{
    (void)status; /* a datagram that could not go is lost, as UDP allows */
    free(req);
}

static PyObject *endpoint_sendto(PyObject *self, PyObject *args)
{
    EndpointObject *e = (EndpointObject *)self;
    Py_buffer view;
    PyObject *addr;
    const char *host;
    int port, r;
    struct sockaddr_storage ss;
    cb_embed_loop *loop;
    uv_buf_t b;
    send_req *req;

    if (!PyArg_ParseTuple(args, "y*O:sendto", &view, &addr))
        return NULL;
    if (!(loop = endpoint_check(e, "sendto")) || cb_net_parse_addr(addr, &host, &port) < 0 ||
        cb_net_resolve(loop, host, port, SOCK_DGRAM, &ss, NULL, -1) < 0)
        goto fail;
    if (!e->h) { /* closed while resolving */
        closed_error();
        goto fail;
    }
    if (view.len > 65507) {
        PyErr_SetObject(PyExc_OSError, Py_BuildValue("(is)", EMSGSIZE, strerror(EMSGSIZE)));
        goto fail;
    }
    b = uv_buf_init(view.buf, (unsigned)view.len);
    r = uv_udp_try_send(&e->h->udp, &b, 1, (struct sockaddr *)&ss);
    if (r == UV_EAGAIN || r == UV_ENOSYS) {
        req = malloc(sizeof *req + (size_t)view.len);
        if (!req) {
            PyErr_NoMemory();
            goto fail;
        }
        memcpy(req->data, view.buf, (size_t)view.len);
        b = uv_buf_init(req->data, (unsigned)view.len);
        r = uv_udp_send(&req->req, &e->h->udp, &b, 1, (struct sockaddr *)&ss, on_send);
        if (r < 0)
            free(req);
        else
            r = (int)view.len;
    }
    if (r < 0) {
        cb_net_raise(r, NULL);
        goto fail;
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(view.len);
fail:
    PyBuffer_Release(&view);
    return NULL;
}

static PyObject *endpoint_close(PyObject *self, PyObject *unused)
{
    EndpointObject *e = (EndpointObject *)self;
    udp_h *h = e->h;

    (void)unused;
    if (h) {
        endpoint_forget(e, 1);
        udp_close_now(h);
    }
    Py_RETURN_NONE;
}

static PyObject *endpoint_get_sockname(PyObject *self, void *c)
{
    EndpointObject *e = (EndpointObject *)self;
    struct sockaddr_storage ss;
    int len = sizeof ss, r;

    (void)c;
    if (!endpoint_check(e, "sockname"))
        return NULL;
    if ((r = uv_udp_getsockname(&e->h->udp, (struct sockaddr *)&ss, &len)) < 0)
        return cb_net_raise(r, NULL);
    return cb_net_addr_tuple((struct sockaddr *)&ss);
}

static PyObject *endpoint_get_closed(PyObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(((EndpointObject *)self)->h == NULL);
}

static PyObject *return_self(PyObject *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(self);
}

static PyObject *endpoint_exit(PyObject *self, PyObject *args)
{
    (void)args;
    Py_XDECREF(endpoint_close(self, NULL));
    Py_RETURN_FALSE;
}

static void endpoint_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    Py_XDECREF(endpoint_close(self, NULL));
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef endpoint_methods[] = {
    {"recvfrom", endpoint_recvfrom, METH_NOARGS,
     "recvfrom() -> (data, (host, port)): the next datagram; blocks the calling tasklet."},
    {"sendto", endpoint_sendto, METH_VARARGS,
     "sendto(data, (host, port)) -> int: send one datagram; never blocks on a full buffer."},
    {"close", endpoint_close, METH_NOARGS, "close(): close the endpoint."},
    {"__enter__", return_self, METH_NOARGS, NULL},
    {"__exit__", endpoint_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef endpoint_getset[] = {
    {"sockname", endpoint_get_sockname, NULL, "The bound address.", NULL},
    {"closed", endpoint_get_closed, NULL, "True after close().", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot endpoint_slots[] = {
    {Py_tp_dealloc, endpoint_dealloc},
    {Py_tp_methods, endpoint_methods},
    {Py_tp_getset, endpoint_getset},
    {Py_tp_doc, "A UDP socket for tasklets (carbon.net.udp())."},
    {0, NULL},
};

static PyType_Spec endpoint_spec = {
    .name = "carbon.net.UDPEndpoint",
    .basicsize = sizeof(EndpointObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = endpoint_slots,
};

static PyObject *net_udp(PyObject *mod, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"host", "port", NULL};
    const char *host;
    int port, err;
    struct sockaddr_storage ss;
    cb_embed_loop *loop;
    EndpointObject *e;
    udp_h *h;

    (void)mod;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "si:udp", kwlist, &host, &port))
        return NULL;
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_OverflowError, "udp(): port must be 0-65535");
        return NULL;
    }
    if (!(loop = cb_net_loop()) || cb_net_resolve(loop, host, port, SOCK_DGRAM, &ss, NULL, -1) < 0)
        return NULL;
    h = calloc(1, sizeof *h);
    if (!h)
        return PyErr_NoMemory();
    if ((err = uv_udp_init(&loop->uv, &h->udp)) < 0) {
        free(h);
        return cb_net_raise(err, NULL);
    }
    h->link.loop_closing = udp_loop_closing;
    cb_net_handle_add(loop, &h->link);
    e = PyObject_New(EndpointObject, endpoint_type);
    if (!e) {
        udp_close_now(h);
        return NULL;
    }
    memset((char *)e + sizeof(PyObject), 0, sizeof *e - sizeof(PyObject));
    e->h = h;
    h->obj = (PyObject *)e;
    if ((err = uv_udp_bind(&h->udp, (struct sockaddr *)&ss, 0)) < 0) {
        Py_DECREF(e);
        return cb_net_raise(err, NULL);
    }
    ensure_receiving(e);
    return (PyObject *)e;
}

static PyMethodDef udp_functions[] = {
    {"udp", (PyCFunction)(void (*)(void))net_udp, METH_VARARGS | METH_KEYWORDS,
     "udp(host, port) -> UDPEndpoint bound to that address."},
    {NULL, NULL, 0, NULL},
};

int cb_net_udp_init(PyObject *mod)
{
    if (!endpoint_type && !(endpoint_type = (PyTypeObject *)PyType_FromSpec(&endpoint_spec)))
        return -1;
    if (PyModule_AddObjectRef(mod, "UDPEndpoint", (PyObject *)endpoint_type) < 0)
        return -1;
    return PyModule_AddFunctions(mod, udp_functions);
}

void cb_net_udp_free(void)
{
    Py_CLEAR(endpoint_type);
}
