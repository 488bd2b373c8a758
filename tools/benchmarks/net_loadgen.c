/* Load generator of `tools/bench --only net` (docs/performance.md): N TCP
 * connections on one libuv loop, each sending a message of S bytes and
 * waiting for all S bytes to come back before sending the next (request /
 * response echo), for T seconds after a warm-up. Prints one JSON line:
 * messages/s and round-trip percentiles.
 *
 *   net_loadgen echo HOST PORT N SIZE SECONDS [WARMUP]
 *   net_loadgen idle HOST PORT N   (connect N, one 64 B echo each, print
 *                                   "ready", hold until stdin closes)
 *
 * Round trips go into a histogram of 1 us buckets up to 1 s. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#define HIST_MAX 1000000 /* us */

typedef struct conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    size_t got;
    uint64_t sent_at;
    int connected;
} conn;

static uv_loop_t *loop;
static conn *conns;
static int n_conns, n_connected, n_ready;
static size_t msg_size;
static char *msg;
static char rbuf[1 << 16];
static uint32_t *hist;
static uint64_t counted, all_msgs, t_start, t_end, warm_end;
static int idle_mode, stopping;
static uv_timer_t stop_timer;
static uv_pipe_t stdin_pipe;

static void die(const char *what, int err)
{
    fprintf(stderr, "net_loadgen: %s: %s\n", what, uv_strerror(err));
    exit(1);
}

static void send_msg(conn *c);

static void on_written(uv_write_t *req, int status)
{
    (void)req;
    if (status < 0 && !stopping)
        die("write", status);
}

static void send_msg(conn *c)
{
    uv_buf_t b = uv_buf_init(msg, (unsigned)msg_size);
    int r;

    c->got = 0;
    c->sent_at = uv_hrtime();
    r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (r == (int)msg_size)
        return;
    if (r > 0)
        b = uv_buf_init(msg + r, (unsigned)(msg_size - (size_t)r));
    else if (r != UV_EAGAIN)
        die("try_write", r);
    if ((r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written)) < 0)
        die("write", r);
}

static void alloc_cb(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    (void)h;
    (void)s;
    *b = uv_buf_init(rbuf, sizeof rbuf);
}

static void start_all(void);

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    conn *c = (conn *)st;
    uint64_t now;

    (void)b;
    if (n == 0)
        return;
    if (n < 0) {
        if (stopping)
            return;
        die("read", (int)n);
    }
    c->got += (size_t)n;
    if (c->got < msg_size)
        return;
    if (c->got > msg_size) {
        fprintf(stderr, "net_loadgen: got %zu bytes for a %zu byte message\n", c->got, msg_size);
        exit(1);
    }
    now = uv_hrtime();
    if (idle_mode) {
        if (++n_ready == n_conns) {
            printf("ready\n");
            fflush(stdout);
        }
        return;
    }
    if (stopping)
        return;
    all_msgs++;
    if (now >= warm_end) {
        uint64_t us = (now - c->sent_at) / 1000;
        hist[us < HIST_MAX ? us : HIST_MAX]++;
        counted++;
    }
    send_msg(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    conn *c = req->data;

    if (status < 0)
        die("connect", status);
    c->connected = 1;
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
    if (++n_connected == n_conns)
        start_all();
}

static double pct(double p)
{
    uint64_t want = (uint64_t)(p * (double)counted), seen = 0;

    for (int i = 0; i <= HIST_MAX; i++) {
        seen += hist[i];
        if (seen > want)
            return (double)i + 0.5;
    }
    return HIST_MAX;
}

static void on_stop(uv_timer_t *t)
{
    double secs;

    (void)t;
    stopping = 1;
    t_end = uv_hrtime();
    secs = (double)(t_end - warm_end) / 1e9;
    printf("{\"connections\": %d, \"size\": %zu, \"seconds\": %.3f, \"messages\": %llu, "
           "\"msgs_per_s\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, "
           "\"all_messages\": %llu}\n",
           n_conns, msg_size, secs, (unsigned long long)counted, (double)counted / secs, pct(0.5),
           pct(0.99), pct(0.999), (unsigned long long)all_msgs);
    fflush(stdout);
    exit(0);
}

static double seconds, warmup;

static void start_all(void)
{
    t_start = uv_hrtime();
    warm_end = t_start + (uint64_t)(warmup * 1e9);
    if (!idle_mode) {
        uv_timer_init(loop, &stop_timer);
        uv_timer_start(&stop_timer, on_stop, (uint64_t)((warmup + seconds) * 1000), 0);
    }
    for (int i = 0; i < n_conns; i++)
        send_msg(&conns[i]);
}

static void on_stdin(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    (void)st;
    (void)b;
    if (n < 0)
        exit(0);
}

int main(int argc, char **argv)
{
    struct sockaddr_in addr;
    struct rlimit rl;
    int r;

    if (argc < 5 || (strcmp(argv[1], "echo") && strcmp(argv[1], "idle")) ||
        (!strcmp(argv[1], "echo") && argc < 7)) {
        fprintf(stderr, "usage: net_loadgen echo HOST PORT N SIZE SECONDS [WARMUP]\n"
                        "       net_loadgen idle HOST PORT N\n");
        return 2;
    }
    idle_mode = !strcmp(argv[1], "idle");
    n_conns = atoi(argv[4]);
    msg_size = idle_mode ? 64 : (size_t)atol(argv[5]);
    seconds = idle_mode ? 0 : atof(argv[6]);
    warmup = argc > 7 ? atof(argv[7]) : 1.0;
    if (n_conns < 1 || msg_size < 1 || msg_size > sizeof rbuf) {
        fprintf(stderr, "net_loadgen: bad N or SIZE\n");
        return 2;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n_conns + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)n_conns + 64 ? rl.rlim_max : (rlim_t)n_conns + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if ((r = uv_ip4_addr(argv[2], atoi(argv[3]), &addr)) < 0)
        die("address", r);
    loop = uv_default_loop();
    conns = calloc((size_t)n_conns, sizeof *conns);
    hist = calloc(HIST_MAX + 1, sizeof *hist);
    msg = malloc(msg_size);
    for (size_t i = 0; i < msg_size; i++)
        msg[i] = (char)('a' + i % 26);
    for (int i = 0; i < n_conns; i++) {
        conn *c = &conns[i];
        uv_tcp_init(loop, &c->tcp);
        uv_tcp_nodelay(&c->tcp, 1);
        c->creq.data = c;
        if ((r = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&addr, on_connect)) < 0)
            die("connect", r);
    }
    if (idle_mode) {
        uv_pipe_init(loop, &stdin_pipe, 0);
        uv_pipe_open(&stdin_pipe, 0);
        uv_read_start((uv_stream_t *)&stdin_pipe, alloc_cb, on_stdin);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
