/* carbon_post: values from C (any thread) into named queues that scripts
 * read with carbon.queue(name).
 *
 * A post never takes the GIL and never waits for a tasklet: it copies its
 * arguments into a C record and appends it to one process-wide FIFO under a
 * mutex held for a few pointer writes. carbon_tick (host thread, GIL held,
 * main tasklet) takes the whole FIFO at once and delivers each value, in
 * posting order, before any tasklet of the tick runs: to a receiver waiting
 * on the queue's channel (which becomes runnable: the host goes on, it
 * never blocks), else into the queue's buffer. The two halves of a queue (the
 * buffer and the channel of waiting receivers) are only touched by the C
 * functions below, each atomic under the GIL, so a receiver on a worker
 * thread cannot miss a value put in the buffer meanwhile. */
#include "internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Values waiting for the next tick, at most (CARBON_EFULL beyond). */
#define POST_MAX_PENDING 65536
#define POST_MAX_NAME 255
#define POST_MAX_CODES 16

typedef struct post_val {
    char code; /* 'i' signed, 'u' unsigned, 'd' double, 'p' bool, 's' str, 'y' bytes, 'N' None, 'O' object */
    union {
        long long i;
        unsigned long long u;
        double d;
        struct {
            char *p;
            size_t n;
        } s;
        PyObject *o;
    } v;
} post_val;

typedef struct post_item {
    struct post_item *next;
    char *name;
    int nvals;
    int tuple; /* "(...)": a tuple even with one value */
    post_val vals[POST_MAX_CODES];
} post_item;

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t mu;
static post_item *head, *tail; /* under mu */
static size_t pending;         /* under mu */
static int open_for_posts;     /* under mu */
static atomic_int have_posts;  /* a hint read without the lock by the tick */

static void init_once(void)
{
    if (uv_mutex_init(&mu) != 0)
        abort(); /* cannot happen on Linux: pthread_mutex_init has no failure mode here */
}

void cb_embed_post_open(int open)
{
    uv_once(&once, init_once);
    uv_mutex_lock(&mu);
    open_for_posts = open;
    uv_mutex_unlock(&mu);
}

/* Frees a record; `python`: the GIL is held (objects are released). */
static void free_item(post_item *it, int python)
{
    for (int i = 0; i < it->nvals; i++) {
        if (it->vals[i].code == 's' || it->vals[i].code == 'y')
            free(it->vals[i].v.s.p);
        else if (it->vals[i].code == 'O' && python)
            Py_DECREF(it->vals[i].v.o);
    }
    free(it->name);
    free(it);
}

static int check_name(const char *name, const char *fn)
{
    size_t n;

    if (!name || !(n = strlen(name)) || n > POST_MAX_NAME)
        return cb_embed_fail(CARBON_EINVAL, "%s: name must be a non-empty string of at most %d bytes", fn,
                             POST_MAX_NAME);
    return CARBON_OK;
}

static char *copy_bytes(const char *p, size_t n)
{
    char *d = malloc(n + 1);

    if (d) {
        if (n)
            memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

static int enqueue(post_item *it, const char *fn)
{
    uv_once(&once, init_once);
    uv_mutex_lock(&mu);
    if (!open_for_posts) {
        uv_mutex_unlock(&mu);
        free_item(it, 0);
        return cb_embed_fail(CARBON_ESTATE, "%s: the runtime is not running", fn);
    }
    if (pending >= POST_MAX_PENDING) {
        uv_mutex_unlock(&mu);
        free_item(it, 0);
        return cb_embed_fail(CARBON_EFULL, "%s: %d values already wait for the next tick", fn,
                             POST_MAX_PENDING);
    }
    if (tail)
        tail->next = it;
    else
        head = it;
    tail = it;
    pending++;
    atomic_store(&have_posts, 1);
    uv_mutex_unlock(&mu);
    return CARBON_OK;
}

int carbon_post(const char *name, const char *format, ...)
{
    post_item *it;
    va_list ap;
    int rc;

    if ((rc = check_name(name, "carbon_post")) != CARBON_OK)
        return rc;
    if (!format)
        format = "";
    it = calloc(1, sizeof *it);
    if (!it || !(it->name = strdup(name))) {
        free(it);
        return cb_embed_fail(CARBON_ENOMEM, "carbon_post: out of memory");
    }
    /* "(...)" around the whole format: a tuple even with one value. */
    size_t flen = strlen(format);
    const char *end = format + flen;
    if (flen >= 2 && format[0] == '(' && format[flen - 1] == ')') {
        it->tuple = 1;
        format++;
        end--;
    }
    va_start(ap, format);
    for (const char *f = format; f < end; f++) {
        post_val *pv;
        if (*f == ' ')
            continue;
        if (it->nvals == POST_MAX_CODES) {
            va_end(ap);
            free_item(it, 0);
            return cb_embed_fail(CARBON_EINVAL, "carbon_post: more than %d values in format \"%s\"",
                                 POST_MAX_CODES, format);
        }
        pv = &it->vals[it->nvals];
        switch (*f) {
        case 'i': pv->code = 'i'; pv->v.i = va_arg(ap, int); break;
        case 'l': pv->code = 'i'; pv->v.i = va_arg(ap, long); break;
        case 'L': pv->code = 'i'; pv->v.i = va_arg(ap, long long); break;
        case 'n': pv->code = 'i'; pv->v.i = va_arg(ap, ptrdiff_t); break;
        case 'I': pv->code = 'u'; pv->v.u = va_arg(ap, unsigned int); break;
        case 'k': pv->code = 'u'; pv->v.u = va_arg(ap, unsigned long); break;
        case 'K': pv->code = 'u'; pv->v.u = va_arg(ap, unsigned long long); break;
        case 'd':
        case 'f': pv->code = 'd'; pv->v.d = va_arg(ap, double); break;
        case 'p': pv->code = 'p'; pv->v.i = va_arg(ap, int) != 0; break;
        case 's':
        case 'z': {
            const char *s = va_arg(ap, const char *);
            if (!s && *f == 's') {
                va_end(ap);
                free_item(it, 0);
                return cb_embed_fail(CARBON_EINVAL, "carbon_post: NULL string for 's' (use 'z' for None)");
            }
            if (!s) {
                pv->code = 'N';
                break;
            }
            pv->v.s.n = strlen(s);
            if (!(pv->v.s.p = copy_bytes(s, pv->v.s.n)))
                goto nomem;
            pv->code = 's';
            break;
        }
        case 'y': {
            const char *p = va_arg(ap, const char *);
            ptrdiff_t n;
            if (f[1] != '#') {
                va_end(ap);
                free_item(it, 0);
                return cb_embed_fail(CARBON_EINVAL, "carbon_post: 'y' needs a length: \"y#\"");
            }
            f++;
            n = va_arg(ap, ptrdiff_t);
            if (n < 0 || (!p && n)) {
                va_end(ap);
                free_item(it, 0);
                return cb_embed_fail(CARBON_EINVAL, "carbon_post: bad bytes (NULL or negative length)");
            }
            pv->v.s.n = (size_t)n;
            if (!(pv->v.s.p = copy_bytes(p ? p : "", (size_t)n)))
                goto nomem;
            pv->code = 'y';
            break;
        }
        default:
            va_end(ap);
            free_item(it, 0);
            return cb_embed_fail(CARBON_EINVAL, "carbon_post: unsupported format code '%c' in \"%s\"", *f, format);
        }
        it->nvals++;
    }
    va_end(ap);
    return enqueue(it, "carbon_post");
nomem:
    va_end(ap);
    free_item(it, 0);
    return cb_embed_fail(CARBON_ENOMEM, "carbon_post: out of memory");
}

int carbon_post_object(const char *name, PyObject *value)
{
    post_item *it;
    int rc;

    if ((rc = check_name(name, "carbon_post_object")) != CARBON_OK)
        return rc;
    if (!value)
        return cb_embed_fail(CARBON_EINVAL, "carbon_post_object: value is NULL");
    if (!PyGILState_Check())
        return cb_embed_fail(CARBON_ETHREAD, "carbon_post_object: the caller must hold the GIL");
    it = calloc(1, sizeof *it);
    if (!it || !(it->name = strdup(name))) {
        free(it);
        return cb_embed_fail(CARBON_ENOMEM, "carbon_post_object: out of memory");
    }
    it->vals[0].code = 'O';
    it->vals[0].v.o = Py_NewRef(value);
    it->nvals = 1;
    rc = enqueue(it, "carbon_post_object");
    return rc;
}

/* ---- delivery (host thread, GIL held) --------------------------------------------------- */

static PyObject *build_val(const post_val *pv)
{
    switch (pv->code) {
    case 'i': return PyLong_FromLongLong(pv->v.i);
    case 'u': return PyLong_FromUnsignedLongLong(pv->v.u);
    case 'd': return PyFloat_FromDouble(pv->v.d);
    case 'p': return PyBool_FromLong((long)pv->v.i);
    /* Invalid UTF-8 is kept as lone surrogates: no byte is lost. */
    case 's': return PyUnicode_DecodeUTF8(pv->v.s.p, (Py_ssize_t)pv->v.s.n, "surrogateescape");
    case 'y': return PyBytes_FromStringAndSize(pv->v.s.p, (Py_ssize_t)pv->v.s.n);
    case 'O': return Py_NewRef(pv->v.o);
    default: Py_RETURN_NONE;
    }
}

static PyObject *build_item(const post_item *it)
{
    PyObject *tuple;

    if (it->nvals == 0 && !it->tuple)
        Py_RETURN_NONE;
    if (it->nvals == 1 && !it->tuple)
        return build_val(&it->vals[0]);
    tuple = PyTuple_New(it->nvals);
    if (!tuple)
        return NULL;
    for (int i = 0; i < it->nvals; i++) {
        PyObject *v = build_val(&it->vals[i]);
        if (!v) {
            Py_DECREF(tuple);
            return NULL;
        }
        PyTuple_SET_ITEM(tuple, i, v);
    }
    return tuple;
}

void cb_embed_post_deliver(void)
{
    post_item *list;
    PyObject *mod, *deliver;

    if (!atomic_load(&have_posts))
        return;
    uv_mutex_lock(&mu);
    list = head;
    head = tail = NULL;
    pending = 0;
    atomic_store(&have_posts, 0);
    uv_mutex_unlock(&mu);
    mod = PyImport_ImportModule("carbon");
    deliver = mod ? PyObject_GetAttrString(mod, "_deliver_post") : NULL;
    Py_XDECREF(mod);
    if (!deliver)
        cb_embed_report(NULL, "carbon_post delivery");
    while (list) {
        post_item *it = list;
        PyObject *value, *r = NULL;

        list = it->next;
        if (deliver) {
            value = build_item(it);
            if (value)
                r = PyObject_CallFunction(deliver, "sO", it->name, value);
            Py_XDECREF(value);
            if (!r) {
                cb_embed_log(CARBON_LOG_ERROR, "a value posted to queue %s could not be delivered; it is lost",
                             it->name);
                cb_embed_report(NULL, "carbon_post delivery");
            }
            Py_XDECREF(r);
        }
        free_item(it, 1);
    }
    Py_XDECREF(deliver);
}

void cb_embed_post_clear(void)
{
    post_item *list;
    size_t n = 0;

    uv_once(&once, init_once);
    uv_mutex_lock(&mu);
    list = head;
    head = tail = NULL;
    pending = 0;
    open_for_posts = 0;
    atomic_store(&have_posts, 0);
    uv_mutex_unlock(&mu);
    while (list) {
        post_item *it = list;
        list = it->next;
        free_item(it, 1);
        n++;
    }
    if (n)
        cb_embed_log(CARBON_LOG_WARNING, "carbon_shutdown: %zu posted values were never delivered (no tick "
                                         "after they were posted)", n);
}

/* ---- the two halves of a queue (called by carbon.HostQueue) ------------------------------------ */

/* _carbon._queue_put(buffer, channel, value): to a waiting receiver, else
 * into the buffer. Never blocks (the channel prefers its sender). */
PyObject *cb_embed_queue_put(PyObject *mod, PyObject *args)
{
    PyObject *buffer, *value;
    cb_channel *ch;

    (void)mod;
    if (!PyArg_ParseTuple(args, "OO!O:_queue_put", &buffer, &cb_ChannelType, &ch, &value))
        return NULL;
    if (ch->balance < 0) {
        int pref = ch->preference;
        ch->preference = 1; /* the sender goes on: the receiver just becomes runnable */
        int r = cb_channel_send(ch, value, 0);
        ch->preference = pref;
        if (r < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *name = PyUnicode_FromString("append"), *r;

    if (!name)
        return NULL;
    r = PyObject_CallMethodOneArg(buffer, name, value); /* a tuple is one value */
    Py_DECREF(name);
    return r;
}

/* _carbon._queue_receive(buffer, channel): the oldest buffered value, else
 * blocks the calling tasklet on the channel until one is put. */
PyObject *cb_embed_queue_receive(PyObject *mod, PyObject *args)
{
    PyObject *buffer;
    cb_channel *ch;
    Py_ssize_t n;

    (void)mod;
    if (!PyArg_ParseTuple(args, "OO!:_queue_receive", &buffer, &cb_ChannelType, &ch))
        return NULL;
    n = PyObject_Length(buffer);
    if (n < 0)
        return NULL;
    if (n > 0)
        return PyObject_CallMethod(buffer, "popleft", NULL);
    return cb_channel_receive(ch);
}
