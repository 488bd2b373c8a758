/* carbon.net internals: sockets for tasklets on the thread's libuv loop
 * (embed/net.c, net_tcp.c, net_udp.c). See docs/net.md.
 *
 * How a tasklet waits for libuv. The blocking call makes a cb_net_wait (a
 * heap block scoped like a local, CB_OFFSTACK: never on the tasklet's C
 * stack, which may be copied away while it waits) and points the operation
 * at it (a stream's reader or writer slot, or a request record's `w`). The libuv callback that completes
 * the operation takes the pointer out of its slot first and then wakes the
 * tasklet (cb_net_wake), so a waiter is woken at most once. If the tasklet
 * is killed or thrown at instead, cb_net_block() returns -1 and the call
 * takes its waiter out of the slot itself and cancels what it had started;
 * a request still in libuv's hands finds `w == NULL` in its callback and
 * only frees itself.
 *
 * Handles. Each stream, server and UDP endpoint owns a malloc'd libuv
 * handle whose `data` points at the Python object while it lives; close()
 * or the object's deallocation calls uv_close() and the close callback frees
 * the memory. Every open handle is also on its loop's list, so that a loop
 * closing at its thread's end closes them first and marks the objects
 * closed (their later use raises, their deallocation does nothing more).
 * Everything runs with the GIL held, like the rest of embed/. */
#ifndef CB_EMBED_NET_H
#define CB_EMBED_NET_H

#include "internal.h"

#include <sys/socket.h>

typedef struct cb_net_wait {
    cb_tasklet *t;  /* borrowed: the waiting call holds a reference */
    unsigned flag;  /* set when woken */
    int status;     /* libuv status handed over by the waker */
} cb_net_wait;

/* Block the current tasklet until cb_net_wake(w). -1 + exception if it was
 * killed or thrown at (the caller must then detach `w` from its slot). */
int cb_net_block(cb_embed_loop *loop, cb_net_wait *w);
void cb_net_wake(cb_net_wait *w, int status);

/* A one-shot timer that wakes `w` with UV_ETIMEDOUT after `ns`; stop it
 * (stops and frees) before `w` goes out of scope. NULL + exception. */
uv_timer_t *cb_net_timeout_start(cb_embed_loop *loop, long long ns, cb_net_wait *w);
void cb_net_timeout_stop(uv_timer_t *t);

/* A libuv error as the matching OSError subclass (ConnectionResetError...);
 * always returns NULL. `what` may be NULL. */
PyObject *cb_net_raise(int uverr, const char *what);
/* The calling thread's loop (NULL + exception). */
cb_embed_loop *cb_net_loop(void);

/* Open handles of a loop (closed with it). */
typedef struct cb_net_handle {
    struct cb_net_handle *prev, *next;
    cb_embed_loop *loop;
    void (*loop_closing)(struct cb_net_handle *h); /* uv_close + mark the object closed */
} cb_net_handle;

void cb_net_handle_add(cb_embed_loop *loop, cb_net_handle *h);
void cb_net_handle_remove(cb_net_handle *h);
/* The handle's owner check: 0 on its own thread, else -1 + exception. */
int cb_net_handle_check(cb_net_handle *h, const char *what);

/* Resolves host:port (numeric addresses without a lookup) into `out`; all
 * results in `*all` (uv_freeaddrinfo; NULL for a numeric host) when `all`
 * is not NULL. `deadline` (monotonic ns, -1 none) raises TimeoutError. -1 +
 * exception. */
int cb_net_resolve(cb_embed_loop *loop, const char *host, int port, int socktype,
                   struct sockaddr_storage *out, struct addrinfo **all, long long deadline);
/* (host, port) of a socket address; NULL + exception. */
PyObject *cb_net_addr_tuple(const struct sockaddr *sa);
/* Parses a (host, port) argument. */
int cb_net_parse_addr(PyObject *addr, const char **host, int *port);

/* Loop-wide read buffer handed to libuv's alloc callbacks. */
void cb_net_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* Module parts. */
int cb_net_tcp_init(PyObject *mod);
int cb_net_udp_init(PyObject *mod);
void cb_net_tcp_free(void);
void cb_net_udp_free(void);

/* Called by loop_destroy before it closes the loop's handles. */
void cb_net_loop_closing(cb_embed_loop *loop);

PyMODINIT_FUNC PyInit__carbon_net(void);

#endif
