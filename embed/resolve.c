/* Name resolution for tasklets: uv_getaddrinfo on the thread's loop (libuv's
 * thread pool does the blocking getaddrinfo(3)), blocking only the calling
 * tasklet. The one helper (cb_embed_getaddrinfo) behind carbon.patch()'s
 * socket.getaddrinfo and carbon.net's names (cb_net_resolve in net.c).
 *
 * The request is heap-allocated: a tasklet killed (or timed out) while its
 * request is in flight leaves, and the request frees itself (and its result)
 * when libuv calls back. */
#include "internal.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct resolve_req {
    uv_getaddrinfo_t req;
    int status;
    struct addrinfo *res;
    cb_tasklet *t;  /* borrowed while its call waits; NULL once it left */
    unsigned flag;
} resolve_req;

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    resolve_req *r = req->data;

    if (!r->t) { /* its tasklet left: nobody wants the answer */
        if (res)
            uv_freeaddrinfo(res);
        free(r);
        return;
    }
    r->status = status;
    r->res = res;
    cb_embed_wake(r->t, &r->flag);
}

int cb_embed_getaddrinfo(cb_embed_loop *loop, const char *node, const char *service,
                         const struct addrinfo *hints, struct addrinfo **res, int *status,
                         long long deadline_ns)
{
    resolve_req *r = calloc(1, sizeof *r);
    int err, w;

    *res = NULL;
    if (!r) {
        PyErr_NoMemory();
        return -1;
    }
    r->req.data = r;
    r->t = loop->mgr->current;
    cb_offstack_check(r, "a name resolution request");
    err = uv_getaddrinfo(&loop->uv, &r->req, on_resolved, node, service, hints);
    if (err < 0) {
        free(r);
        *status = err;
        return 0;
    }
    w = cb_embed_wait_flag(loop, &r->flag, deadline_ns, "resolve a name");
    if (w <= 0) {
        if (r->flag) { /* answered in the same turn as the kill */
            if (r->res)
                uv_freeaddrinfo(r->res);
            free(r);
        } else {
            r->t = NULL; /* on_resolved frees it */
            (void)uv_cancel((uv_req_t *)&r->req);
        }
        if (w < 0)
            return -1;
        *status = UV_ETIMEDOUT; /* the deadline passed first */
        return 0;
    }
    *status = r->status;
    *res = r->res;
    free(r);
    return 0;
}

/* ---- Python: _carbon.getaddrinfo ------------------------------------------------------ */

static int eai_of(int uverr)
{
    switch (uverr) {
#ifdef EAI_ADDRFAMILY
    case UV_EAI_ADDRFAMILY: return EAI_ADDRFAMILY;
#endif
    case UV_EAI_AGAIN: return EAI_AGAIN;
    case UV_EAI_BADFLAGS: return EAI_BADFLAGS;
    case UV_EAI_FAIL: return EAI_FAIL;
    case UV_EAI_FAMILY: return EAI_FAMILY;
    case UV_EAI_MEMORY: return EAI_MEMORY;
#ifdef EAI_NODATA
    case UV_EAI_NODATA: return EAI_NODATA;
#endif
    case UV_EAI_NONAME: return EAI_NONAME;
    case UV_EAI_SERVICE: return EAI_SERVICE;
    case UV_EAI_SOCKTYPE: return EAI_SOCKTYPE;
    case UV_EAI_OVERFLOW: return EAI_OVERFLOW;
    case UV_EINVAL: return EAI_NONAME; /* neither host nor port */
    default: return 0;
    }
}

static PyObject *gaierror(void)
{
    static PyObject *cls; /* socket.gaierror, kept for the process */
    PyObject *sock;

    if (!cls) {
        sock = PyImport_ImportModule("_socket");
        if (!sock)
            return NULL;
        cls = PyObject_GetAttrString(sock, "gaierror");
        Py_DECREF(sock);
    }
    return cls;
}

static void raise_status(int status)
{
    int eai = eai_of(status);
    PyObject *cls;

    if (!eai) {
        errno = -status;
        PyErr_SetFromErrno(PyExc_OSError);
        return;
    }
    cls = gaierror();
    if (cls)
        PyErr_SetObject(cls, Py_BuildValue("(is)", eai, gai_strerror(eai)));
}

static PyObject *sockaddr_obj(const struct sockaddr *sa, socklen_t len)
{
    char host[NI_MAXHOST];

    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
        return Py_BuildValue("(iy#)", sa->sa_family, (const char *)sa, (Py_ssize_t)len);
    /* Numeric: no lookup; gives "fe80::1%eth0" for scoped addresses, as the
     * socket module does. */
    if (getnameinfo(sa, len, host, sizeof host, NULL, 0, NI_NUMERICHOST) != 0) {
        PyErr_SetString(PyExc_OSError, "cannot format a resolved address");
        return NULL;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return Py_BuildValue("(si)", host, ntohs(in->sin_port));
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return Py_BuildValue("(siII)", host, ntohs(in6->sin6_port), ntohl(in6->sin6_flowinfo),
                             in6->sin6_scope_id);
    }
}

static PyObject *host_bytes(PyObject *host)
{
    if (host == Py_None)
        return Py_NewRef(Py_None);
    if (PyUnicode_Check(host))
        return PyUnicode_AsEncodedString(host, "idna", NULL);
    if (PyBytes_Check(host))
        return Py_NewRef(host);
    PyErr_SetString(PyExc_TypeError, "getaddrinfo() argument 1 must be string or None");
    return NULL;
}

static PyObject *port_bytes(PyObject *port)
{
    if (port == Py_None)
        return Py_NewRef(Py_None);
    if (PyLong_CheckExact(port) || PyLong_Check(port)) {
        long v = PyLong_AsLong(port);
        if (v == -1 && PyErr_Occurred())
            return NULL;
        return PyBytes_FromFormat("%ld", v);
    }
    if (PyUnicode_Check(port))
        return PyUnicode_AsUTF8String(port);
    if (PyBytes_Check(port))
        return Py_NewRef(port);
    PyErr_SetString(PyExc_OSError, "Int or String expected");
    return NULL;
}

PyObject *cb_embed_py_getaddrinfo(PyObject *mod, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"host", "port", "family", "type", "proto", "flags", NULL};
    PyObject *host, *port, *hb = NULL, *pb = NULL, *list = NULL;
    int family = 0, socktype = 0, proto = 0, flags = 0, status = 0;
    struct addrinfo hints, *res = NULL;
    cb_embed_loop *loop;

    (void)mod;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|iiii:getaddrinfo", kwlist, &host, &port,
                                     &family, &socktype, &proto, &flags))
        return NULL;
    if (!(hb = host_bytes(host)) || !(pb = port_bytes(port)))
        goto out;
    if (!(loop = cb_embed_loop_get()))
        goto out;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = socktype;
    hints.ai_protocol = proto;
    hints.ai_flags = flags;
    if (cb_embed_getaddrinfo(loop, hb == Py_None ? NULL : PyBytes_AS_STRING(hb),
                             pb == Py_None ? NULL : PyBytes_AS_STRING(pb), &hints, &res, &status,
                             -1) < 0)
        goto out;
    if (status < 0) {
        raise_status(status);
        goto out;
    }
    list = PyList_New(0);
    for (struct addrinfo *ai = res; list && ai; ai = ai->ai_next) {
        PyObject *sa = sockaddr_obj(ai->ai_addr, ai->ai_addrlen);
        PyObject *item = sa ? Py_BuildValue("(iiisO)", ai->ai_family, ai->ai_socktype, ai->ai_protocol,
                                            ai->ai_canonname ? ai->ai_canonname : "", sa)
                            : NULL;
        if (!item || PyList_Append(list, item) < 0)
            Py_CLEAR(list);
        Py_XDECREF(item);
        Py_XDECREF(sa);
    }
out:
    if (res)
        uv_freeaddrinfo(res);
    Py_XDECREF(hb);
    Py_XDECREF(pb);
    return list;
}
