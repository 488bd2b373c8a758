/* carbon.net, common part: waiting for libuv, errors, addresses, name
 * resolution, the loop's list of open handles, and the `_carbon_net` module
 * (TCP in net_tcp.c, UDP in net_udp.c). See net.h and docs/net.md. */
#include "net.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* ---- waiting ------------------------------------------------------------------------------ */

int cb_net_block(cb_embed_loop *loop, cb_net_wait *w)
{
    cb_manager *m = loop->mgr;
    cb_tasklet *cur = m->current;
    int rc = 0;

    if (cur->block_trap) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot wait for the network: the current tasklet has block_trap set");
        return -1;
    }
    cb_offstack_check(w, "a network wait record");
    w->t = cur;
    Py_INCREF(cur); /* nothing else need keep a waiting tasklet alive */
    while (!w->flag) {
        if (cb_block_current(m, &w->flag) < 0) {
            rc = -1;
            break;
        }
    }
    /* Woken and killed at once: the kill wins, the caller cancels. */
    w->flag = 1;
    Py_DECREF(cur);
    return rc;
}

void cb_net_wake(cb_net_wait *w, int status)
{
    if (w->flag)
        return; /* already woken (a timeout and a completion in one turn) */
    w->status = status;
    cb_embed_wake(w->t, &w->flag); /* a main tasklet: its loop turn will not sleep */
}

/* ---- timeouts ------------------------------------------------------------------------------ */

static void on_timeout(uv_timer_t *t)
{
    cb_net_wake(t->data, UV_ETIMEDOUT);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

uv_timer_t *cb_net_timeout_start(cb_embed_loop *loop, long long ns, cb_net_wait *w)
{
    uv_timer_t *t = malloc(sizeof *t);
    uint64_t ms = ns <= 0 ? 0 : (uint64_t)((ns + 999999) / 1000000);

    if (!t) {
        PyErr_NoMemory();
        return NULL;
    }
    uv_timer_init(&loop->uv, t);
    cb_offstack_check(w, "a network wait record");
    t->data = w;
    uv_update_time(&loop->uv);
    uv_timer_start(t, on_timeout, ms, 0);
    return t;
}

void cb_net_timeout_stop(uv_timer_t *t)
{
    if (t) {
        uv_timer_stop(t);
        uv_close((uv_handle_t *)t, free_handle);
    }
}

/* ---- errors --------------------------------------------------------------------------------- */

static PyObject *gaierror; /* socket.gaierror, strong */

PyObject *cb_net_raise(int uverr, const char *what)
{
    PyObject *exc;

    if (uverr <= UV_EAI_ADDRFAMILY && uverr >= UV_EAI_SOCKTYPE - 10 && gaierror) {
        PyErr_Format(gaierror, "%s%s%s", what ? what : "", what ? ": " : "", uv_strerror(uverr));
        return NULL;
    }
    if (uverr == UV_EOF) {
        PyErr_Format(PyExc_EOFError, "%s: end of stream", what ? what : "read");
        return NULL;
    }
    /* On Unix libuv's codes are negated errno values; OSError() picks the
     * subclass (ConnectionResetError, TimeoutError, BrokenPipeError...). */
    if (what)
        exc = PyObject_CallFunction(PyExc_OSError, "iss", -uverr, strerror(-uverr), what);
    else
        exc = PyObject_CallFunction(PyExc_OSError, "is", -uverr, strerror(-uverr));
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

cb_embed_loop *cb_net_loop(void)
{
    return cb_embed_loop_get();
}

/* ---- open handles of a loop ------------------------------------------------------------------ */

void cb_net_handle_add(cb_embed_loop *loop, cb_net_handle *h)
{
    h->loop = loop;
    h->prev = NULL;
    h->next = loop->net_handles;
    if (h->next)
        h->next->prev = h;
    loop->net_handles = h;
}

void cb_net_handle_remove(cb_net_handle *h)
{
    if (!h->loop)
        return;
    if (h->prev)
        h->prev->next = h->next;
    else
        h->loop->net_handles = h->next;
    if (h->next)
        h->next->prev = h->prev;
    h->prev = h->next = NULL;
    h->loop = NULL;
}

int cb_net_handle_check(cb_net_handle *h, const char *what)
{
    if (h->loop != cb_embed_loop_peek()) {
        PyErr_Format(PyExc_RuntimeError, "%s: this socket belongs to another thread's loop", what);
        return -1;
    }
    return 0;
}

void cb_net_loop_closing(cb_embed_loop *loop)
{
    while (loop->net_handles) {
        cb_net_handle *h = loop->net_handles;
        cb_net_handle_remove(h);
        h->loop_closing(h);
    }
}

/* ---- buffers -------------------------------------------------------------------------------- */

/* libuv reads into this, and the read callback copies out at once: one
 * buffer per thread instead of one per connection. */
#define READ_BUF_SIZE 65536
static _Thread_local char *read_buf;

void cb_net_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    if (!read_buf)
        read_buf = malloc(READ_BUF_SIZE);
    *buf = uv_buf_init(read_buf, read_buf ? READ_BUF_SIZE : 0);
}

/* ---- addresses ------------------------------------------------------------------------------ */

PyObject *cb_net_addr_tuple(const struct sockaddr *sa)
{
    char ip[64];

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        uv_ip4_name(in, ip, sizeof ip);
        return Py_BuildValue("(si)", ip, ntohs(in->sin_port));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(in6, ip, sizeof ip);
        return Py_BuildValue("(siII)", ip, ntohs(in6->sin6_port), (unsigned)ntohl(in6->sin6_flowinfo),
                             (unsigned)in6->sin6_scope_id);
    }
    PyErr_Format(PyExc_OSError, "unsupported address family %d", sa->sa_family);
    return NULL;
}

int cb_net_parse_addr(PyObject *addr, const char **host, int *port)
{
    PyObject *h, *p;
    long v;

    if (!PyTuple_Check(addr) || PyTuple_GET_SIZE(addr) < 2) {
        PyErr_Format(PyExc_TypeError, "address must be a (host, port) tuple, not %.200s",
                     Py_TYPE(addr)->tp_name);
        return -1;
    }
    h = PyTuple_GET_ITEM(addr, 0);
    p = PyTuple_GET_ITEM(addr, 1);
    if (!PyUnicode_Check(h)) {
        PyErr_Format(PyExc_TypeError, "host must be a str, not %.200s", Py_TYPE(h)->tp_name);
        return -1;
    }
    *host = PyUnicode_AsUTF8(h);
    if (!*host)
        return -1;
    v = PyLong_AsLong(p);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0 || v > 65535) {
        PyErr_SetString(PyExc_OverflowError, "port must be 0-65535");
        return -1;
    }
    *port = (int)v;
    return 0;
}

/* ---- name resolution ------------------------------------------------------------------------ */

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

int cb_net_resolve(cb_embed_loop *loop, const char *host, int port, int socktype,
                   struct sockaddr_storage *out, struct addrinfo **all, long long deadline)
{
    struct addrinfo hints, *res = NULL;
    int status = 0;

    if (all)
        *all = NULL;
    memset(out, 0, sizeof *out);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0 ||
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0)
        return 0;
    memset(out, 0, sizeof *out);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = AI_ADDRCONFIG;
    /* The one uv_getaddrinfo helper (resolve.c), shared with carbon.patch(). */
    if (cb_embed_getaddrinfo(loop, host, NULL, &hints, &res, &status, deadline) < 0)
        return -1;
    if (status < 0 || !res) {
        if (res)
            uv_freeaddrinfo(res);
        cb_net_raise(status < 0 ? status : UV_EAI_NONAME, host);
        return -1;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    set_port(out, port);
    if (all) {
        for (struct addrinfo *a = res; a; a = a->ai_next)
            set_port((struct sockaddr_storage *)a->ai_addr, port);
        *all = res;
    } else {
        uv_freeaddrinfo(res);
    }
    return 0;
}

/* getaddrinfo(host, port=0, type=SOCK_STREAM) -> [(host, port), ...] */
static PyObject *net_getaddrinfo(PyObject *mod, PyObject *args)
{
    const char *host;
    int port = 0, type = SOCK_STREAM;
    struct sockaddr_storage ss;
    struct addrinfo *all = NULL;
    cb_embed_loop *loop;
    PyObject *list, *item;

    (void)mod;
    if (!PyArg_ParseTuple(args, "s|ii:getaddrinfo", &host, &port, &type))
        return NULL;
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_OverflowError, "port must be 0-65535");
        return NULL;
    }
    if (!(loop = cb_net_loop()) || cb_net_resolve(loop, host, port, type, &ss, &all, -1) < 0)
        return NULL;
    list = PyList_New(0);
    if (!all) {
        item = list ? cb_net_addr_tuple((struct sockaddr *)&ss) : NULL;
        if (!item || PyList_Append(list, item) < 0)
            Py_CLEAR(list);
        Py_XDECREF(item);
        return list;
    }
    for (struct addrinfo *a = all; a && list; a = a->ai_next) {
        item = cb_net_addr_tuple(a->ai_addr);
        if (!item || PyList_Append(list, item) < 0)
            Py_CLEAR(list);
        Py_XDECREF(item);
    }
    uv_freeaddrinfo(all);
    return list;
}

/* ---- the module ------------------------------------------------------------------------------ */

static PyMethodDef net_methods[] = {
    {"getaddrinfo", net_getaddrinfo, METH_VARARGS,
     "getaddrinfo(host, port=0, type=SOCK_STREAM) -> list of addresses, resolved by libuv "
     "(uv_getaddrinfo) while only the calling tasklet waits."},
    {NULL, NULL, 0, NULL},
};

static void net_free(void *mod)
{
    (void)mod;
    cb_net_tcp_free();
    cb_net_udp_free();
    Py_CLEAR(gaierror);
}

static struct PyModuleDef net_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_carbon_net",
    .m_doc = "Carbon runtime: TCP and UDP sockets for tasklets on the thread's libuv loop.",
    .m_size = -1,
    .m_methods = net_methods,
    .m_free = net_free,
};

PyMODINIT_FUNC PyInit__carbon_net(void)
{
    PyObject *mod, *sched, *sock;
    struct sigaction sa;

    sched = PyImport_ImportModule("_scheduler");
    if (!sched)
        return NULL;
    Py_DECREF(sched);
    sock = PyImport_ImportModule("socket");
    if (!sock)
        return NULL;
    Py_XSETREF(gaierror, PyObject_GetAttrString(sock, "gaierror"));
    Py_DECREF(sock);
    if (!gaierror)
        return NULL;
    /* A write to a connection the peer has reset must raise BrokenPipeError,
     * not kill the process: a host that left SIGPIPE at its default gets it
     * ignored (python3 and the carbon host already ignore it). */
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    mod = PyModule_Create(&net_module);
    if (!mod)
        return NULL;
    if (PyModule_AddIntConstant(mod, "SOCK_STREAM", SOCK_STREAM) < 0 ||
        PyModule_AddIntConstant(mod, "SOCK_DGRAM", SOCK_DGRAM) < 0 ||
        cb_net_tcp_init(mod) < 0 || cb_net_udp_init(mod) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
