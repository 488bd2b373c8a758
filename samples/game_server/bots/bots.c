/* game_bots: load generator and checker for the sample game server.
 *
 *   game_bots --port P [--host 127.0.0.1] [--bots N] [--seconds T] [--prefix NAME]
 *             [--move-ms MS] [--chat-s S] [--global-per-s G] [--connects-per-s C]
 *
 * A separate process on libuv alone (it does not use the runtime). N bots
 * connect and log in as NAME<i>; once all are in, for T seconds each moves one
 * step every MS ms (one move in flight at a time), says a local chat line
 * every S s, and the bots together say G global lines per second. Then they
 * stop, wait for every outstanding answer, quit and count:
 *
 *   lost        sequence gaps, moves never acknowledged, chat lines never
 *               acknowledged, and deliveries missing: the server answers
 *               each chat line with the number of players it went to ("to"),
 *               and the bots count who actually received it;
 *   duplicated  a sequence number again, a chat line twice at one receiver,
 *               more deliveries than the server announced;
 *   unexpected  errors other than "wall", a snapshot whose position is not
 *               the bot's own last move applied, unknown message types.
 *
 * Round-trip times: a move until the snapshot that acknowledges it (includes
 * waiting for the world tick), a chat line until its acknowledgement.
 * The last line is machine-readable: "bots: result key=value ...".
 * Exit status 0 when every bot connected and nothing was lost, duplicated or
 * unexpected. Relies on the server's compact JSON (no spaces, quotes escaped). */
#define _POSIX_C_SOURCE 200809L
#include <uv.h>

#include "../series.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define MAX_LINE 65536

typedef struct chat_rec {
    int to;        /* deliveries the server announced; -1 until acknowledged */
    int delivered; /* deliveries the bots counted */
    double sent_ms;
} chat_rec;

typedef struct bot {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    int index;
    int state; /* 0 idle, 1 connecting, 2 logging in, 3 in game, 4 quitting, 5 closed */
    char *line;
    size_t line_len;
    long long seq;
    int x, y;
    int move_id, move_pending, move_dx, move_dy, move_wall;
    double move_sent_ms, next_move_ms, next_chat_ms;
    chat_rec *chats;
    int nchats, chat_cap, chats_unacked;
    int *last_cid; /* per sender: last chat id received from it */
} bot;

static uv_loop_t *loop;
static bot *bots;
static int nbots = 200, move_ms = 200, connects_per_s = 2000;
static double seconds = 5, chat_s = 3, global_per_s = 2;
static const char *host = "127.0.0.1", *prefix = "bot";
static int port = -1;
static struct sockaddr_in addr;
static uv_timer_t timer;
static int phase; /* 0 connecting, 1 running, 2 draining, 3 quitting, 4 done */
static double t0, phase_t;
static int next_connect, connected, logged_in, closed_n, connect_failed;
static unsigned long long msgs_in, msgs_out, lost, dup, unexpected, errors_wall, snaps, chat_lines;
static unsigned long long foreign_chat;
static series rtt_move, rtt_chat; /* ms */
static double run_t0, run_t1;
static unsigned rng_state = 12345;
static char first_unexpected[256];

static double now_ms(void)
{
    return (double)uv_hrtime() / 1e6;
}

static unsigned rnd(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 8) & 0xffffff;
}

static void note_unexpected(bot *b, const char *fmt, ...)
{
    va_list ap;

    unexpected++;
    if (first_unexpected[0])
        return;
    va_start(ap, fmt);
    int n = snprintf(first_unexpected, sizeof first_unexpected, "bot %d: ", b->index);
    vsnprintf(first_unexpected + n, sizeof first_unexpected - (size_t)n, fmt, ap);
    va_end(ap);
}

static void push(series *s, double x)
{
    if (series_push(s, x) < 0) {
        fprintf(stderr, "bots: out of memory\n");
        exit(3);
    }
}

/* ---- writing ------------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void send_line(bot *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;
    uv_write_t *req;
    uv_buf_t buf;

    if (b->state < 1 || b->state >= 5)
        return;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp - 1, fmt, ap);
    va_end(ap);
    tmp[n++] = '\n';
    req = malloc(sizeof *req + (size_t)n);
    memcpy((char *)(req + 1), tmp, (size_t)n);
    buf = uv_buf_init((char *)(req + 1), (unsigned)n);
    if (uv_write(req, (uv_stream_t *)&b->tcp, &buf, 1, on_write) != 0)
        free(req);
    else
        msgs_out++;
}

/* ---- reading ------------------------------------------------------------------- */

static int find_ll(const char *s, const char *key, long long *out)
{
    const char *p = strstr(s, key);

    if (!p)
        return 0;
    *out = strtoll(p + strlen(key), NULL, 10);
    return 1;
}

static int find_str(const char *s, const char *key, char *out, size_t cap)
{
    const char *p = strstr(s, key), *e;

    if (!p)
        return 0;
    p += strlen(key);
    e = strchr(p, '"');
    if (!e || (size_t)(e - p) >= cap)
        return 0;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = 0;
    return 1;
}

static void on_close(uv_handle_t *h)
{
    (void)h;
    closed_n++;
}

static void bot_close(bot *b)
{
    if (b->state == 5)
        return;
    b->state = 5;
    uv_close((uv_handle_t *)&b->tcp, on_close);
}

static int sender_index(const char *name)
{
    size_t pl = strlen(prefix);
    char *end;
    long i;

    if (strncmp(name, prefix, pl) != 0)
        return -1;
    i = strtol(name + pl, &end, 10);
    if (*end || end == name + pl || i < 0 || i >= nbots)
        return -1;
    return (int)i;
}

static void handle_line(bot *b, char *line)
{
    char type[32], code[64], from[64];
    long long seq, v;

    msgs_in++;
    if (!find_str(line, "\"t\":\"", type, sizeof type)) {
        note_unexpected(b, "no type: %.80s", line);
        return;
    }
    if (!find_ll(line, "\"seq\":", &seq)) {
        note_unexpected(b, "no seq: %.80s", line);
    } else if (seq != b->seq + 1) {
        if (seq <= b->seq)
            dup++;
        else
            lost += (unsigned long long)(seq - b->seq - 1);
        b->seq = seq > b->seq ? seq : b->seq;
    } else {
        b->seq = seq;
    }
    if (!strcmp(type, "welcome")) {
        const char *p = strstr(line, "\"pos\":[");
        if (b->state != 2 || !p) {
            note_unexpected(b, "welcome: %.80s", line);
            return;
        }
        b->x = atoi(p + 7);
        b->y = atoi(strchr(p + 7, ',') + 1);
        b->state = 3;
        logged_in++;
    } else if (!strcmp(type, "snap")) {
        const char *p = strstr(line, "\"you\":[");
        long long ack = 0;
        int x, y;

        snaps++;
        if (!p || !find_ll(line, "\"ack\":", &ack)) {
            note_unexpected(b, "snap: %.80s", line);
            return;
        }
        x = atoi(p + 7);
        y = atoi(strchr(p + 7, ',') + 1);
        if (b->move_pending && ack == b->move_id) {
            int ex = b->move_wall ? b->x : b->x + b->move_dx;
            int ey = b->move_wall ? b->y : b->y + b->move_dy;
            if (x != ex || y != ey)
                note_unexpected(b, "move %d: at (%d,%d), expected (%d,%d)", b->move_id, x, y, ex, ey);
            push(&rtt_move, now_ms() - b->move_sent_ms);
            b->move_pending = 0;
        } else if (ack > b->move_id) {
            note_unexpected(b, "ack %lld for move %d", ack, b->move_id);
        } else if (!b->move_pending && (x != b->x || y != b->y)) {
            note_unexpected(b, "moved without a move to (%d,%d) from (%d,%d)", x, y, b->x, b->y);
        }
        b->x = x;
        b->y = y;
    } else if (!strcmp(type, "chat")) {
        long long cid = -1;
        int s;

        chat_lines++;
        find_ll(line, "\"cid\":", &cid);
        if (!find_str(line, "\"from\":\"", from, sizeof from) || (s = sender_index(from)) < 0) {
            foreign_chat++;
            return;
        }
        if (cid <= b->last_cid[s]) {
            dup++;
            return;
        }
        b->last_cid[s] = (int)cid;
        if (cid >= 0 && cid < bots[s].nchats)
            bots[s].chats[cid].delivered++;
        else
            note_unexpected(b, "chat %lld from %s never sent", cid, from);
    } else if (!strcmp(type, "sent")) {
        long long to = 0;

        if (!find_ll(line, "\"id\":", &v) || !find_ll(line, "\"to\":", &to) || v < 0 || v >= b->nchats ||
            b->chats[v].to >= 0) {
            note_unexpected(b, "sent: %.80s", line);
            return;
        }
        b->chats[v].to = (int)to;
        b->chats_unacked--;
        push(&rtt_chat, now_ms() - b->chats[v].sent_ms);
    } else if (!strcmp(type, "error")) {
        find_str(line, "\"code\":\"", code, sizeof code);
        if (!strcmp(code, "wall") && find_ll(line, "\"id\":", &v) && b->move_pending && v == b->move_id) {
            b->move_wall = 1;
            errors_wall++;
        } else {
            note_unexpected(b, "error: %.120s", line);
        }
    } else if (!strcmp(type, "bye")) {
        bot_close(b);
    } else {
        note_unexpected(b, "type %s", type);
    }
}

static char readbuf[65536];

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    (void)size;
    *buf = uv_buf_init(readbuf, sizeof readbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    bot *b = s->data;

    if (n < 0) {
        if (b->state != 4)
            note_unexpected(b, "connection ended in state %d: %s", b->state, uv_strerror((int)n));
        bot_close(b);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        char c = buf->base[i];

        if (c == '\n') {
            b->line[b->line_len] = 0;
            handle_line(b, b->line);
            b->line_len = 0;
            if (b->state == 5)
                return;
        } else if (b->line_len < MAX_LINE - 1) {
            b->line[b->line_len++] = c;
        } else {
            note_unexpected(b, "line longer than %d", MAX_LINE);
            b->line_len = 0;
        }
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    bot *b = req->data;

    if (status < 0) {
        connect_failed++;
        fprintf(stderr, "bots: bot %d: connect: %s\n", b->index, uv_strerror(status));
        bot_close(b);
        return;
    }
    connected++;
    uv_tcp_nodelay(&b->tcp, 1);
    uv_read_start((uv_stream_t *)&b->tcp, on_alloc, on_read);
    b->state = 2;
    send_line(b, "{\"t\":\"login\",\"name\":\"%s%d\"}", prefix, b->index);
}

static void bot_connect(bot *b)
{
    uv_tcp_init(loop, &b->tcp);
    b->tcp.data = b;
    b->connect_req.data = b;
    b->state = 1;
    if (uv_tcp_connect(&b->connect_req, &b->tcp, (const struct sockaddr *)&addr, on_connect) != 0) {
        connect_failed++;
        bot_close(b);
    }
}

/* ---- actions ------------------------------------------------------------------- */

static void bot_act(bot *b, double t)
{
    static const int dirs[8][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}, {1, 1}, {-1, -1}, {1, -1}, {-1, 1}};

    if (b->state != 3)
        return;
    if (!b->move_pending && t >= b->next_move_ms) {
        const int *d = dirs[rnd() % 8];

        b->move_id++;
        b->move_pending = 1;
        b->move_wall = 0;
        b->move_dx = d[0];
        b->move_dy = d[1];
        b->move_sent_ms = t;
        b->next_move_ms = t + move_ms * (0.75 + (rnd() % 500) / 1000.0);
        send_line(b, "{\"t\":\"move\",\"dx\":%d,\"dy\":%d,\"id\":%d}", d[0], d[1], b->move_id);
    }
    if (t >= b->next_chat_ms) {
        /* Global lines at global_per_s over all bots; the rest local. */
        int global = (rnd() % 1000000) < (unsigned)(global_per_s * chat_s / nbots * 1e6);

        if (b->nchats == b->chat_cap) {
            b->chat_cap = b->chat_cap ? b->chat_cap * 2 : 16;
            b->chats = realloc(b->chats, (size_t)b->chat_cap * sizeof *b->chats);
        }
        b->chats[b->nchats] = (chat_rec){-1, 0, t};
        b->chats_unacked++;
        send_line(b, "{\"t\":\"chat\",\"scope\":\"%s\",\"text\":\"hello from %s%d line %d\",\"id\":%d}",
                  global ? "global" : "local", prefix, b->index, b->nchats, b->nchats);
        b->nchats++;
        b->next_chat_ms = t + chat_s * 1000 * (0.75 + (rnd() % 500) / 1000.0);
    }
}

static int all_settled(void)
{
    for (int i = 0; i < nbots; i++) {
        bot *b = &bots[i];
        if (b->state == 3 && (b->move_pending || b->chats_unacked))
            return 0;
    }
    return 1;
}

static void on_timer(uv_timer_t *h)
{
    double t = now_ms();

    (void)h;
    if (phase == 0) {
        int budget = connects_per_s / 100 + 1;

        while (budget-- > 0 && next_connect < nbots)
            bot_connect(&bots[next_connect++]);
        if (logged_in + connect_failed >= nbots || t - t0 > 30000) {
            phase = 1;
            phase_t = run_t0 = t;
            for (int i = 0; i < nbots; i++) {
                bots[i].next_move_ms = t + (rnd() % (unsigned)move_ms);
                bots[i].next_chat_ms = t + (rnd() % (unsigned)(chat_s * 1000));
            }
            printf("bots: %d connected, %d logged in (%d failed) in %.0f ms\n", connected, logged_in,
                   connect_failed, t - t0);
            fflush(stdout);
        }
    } else if (phase == 1) {
        for (int i = 0; i < nbots; i++)
            bot_act(&bots[i], t);
        if (t - phase_t >= seconds * 1000) {
            phase = 2;
            phase_t = run_t1 = t;
        }
    } else if (phase == 2) {
        /* Everything answered, then half a second for the last deliveries. */
        if ((all_settled() && t - phase_t >= 500) || t - phase_t >= 10000) {
            phase = 3;
            phase_t = t;
            for (int i = 0; i < nbots; i++) {
                if (bots[i].state == 3) {
                    send_line(&bots[i], "{\"t\":\"quit\"}");
                    bots[i].state = 4;
                }
            }
        }
    } else if (phase == 3) {
        if (closed_n >= nbots || t - phase_t >= 5000) {
            for (int i = 0; i < nbots; i++) {
                if (bots[i].state != 5 && bots[i].state != 0) {
                    note_unexpected(&bots[i], "no bye after quit");
                    bot_close(&bots[i]);
                }
            }
            phase = 4;
            uv_timer_stop(&timer);
            uv_close((uv_handle_t *)&timer, NULL);
        }
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: game_bots --port P [--host H] [--bots N] [--seconds T] [--prefix NAME]\n"
                    "                 [--move-ms MS] [--chat-s S] [--global-per-s G] [--connects-per-s C]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct rlimit rl;
    unsigned long long moves_unacked = 0, chats_unacked = 0, deliveries_missing = 0, over = 0, chats = 0;
    double run_s;

    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--host"))
            host = argv[++i];
        else if (!strcmp(argv[i], "--bots"))
            nbots = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--prefix"))
            prefix = argv[++i];
        else if (!strcmp(argv[i], "--move-ms"))
            move_ms = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--chat-s"))
            chat_s = atof(argv[++i]);
        else if (!strcmp(argv[i], "--global-per-s"))
            global_per_s = atof(argv[++i]);
        else if (!strcmp(argv[i], "--connects-per-s"))
            connects_per_s = atoi(argv[++i]);
        else
            usage();
    }
    if (port <= 0 || port > 65535 || nbots <= 0 || seconds <= 0 || move_ms <= 0 || chat_s <= 0 ||
        global_per_s < 0 || connects_per_s <= 0 || strlen(prefix) > 16)
        usage();
    if (uv_ip4_addr(host, port, &addr) != 0) {
        fprintf(stderr, "bots: bad address %s\n", host);
        return 2;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    loop = uv_default_loop();
    bots = calloc((size_t)nbots, sizeof *bots);
    for (int i = 0; i < nbots; i++) {
        bots[i].index = i;
        bots[i].line = malloc(MAX_LINE);
        bots[i].last_cid = malloc((size_t)nbots * sizeof(int));
        for (int j = 0; j < nbots; j++)
            bots[i].last_cid[j] = -1;
    }
    t0 = now_ms();
    uv_timer_init(loop, &timer);
    uv_timer_start(&timer, on_timer, 0, 10);
    uv_run(loop, UV_RUN_DEFAULT);

    for (int i = 0; i < nbots; i++) {
        bot *b = &bots[i];

        moves_unacked += (unsigned long long)b->move_pending;
        for (int k = 0; k < b->nchats; k++) {
            chat_rec *c = &b->chats[k];

            chats++;
            if (c->to < 0)
                chats_unacked++;
            else if (c->delivered < c->to)
                deliveries_missing += (unsigned long long)(c->to - c->delivered);
            else if (c->delivered > c->to)
                over += (unsigned long long)(c->delivered - c->to);
        }
    }
    lost += moves_unacked + chats_unacked + deliveries_missing;
    dup += over;
    run_s = (run_t1 - run_t0) / 1000.0;
    series_sort(&rtt_move);
    series_sort(&rtt_chat);
    printf("bots: %d bots, %d connected, %d logged in, %.1f s run\n", nbots, connected, logged_in, run_s);
    printf("bots: messages in %llu (%.0f/s), out %llu (%.0f/s); %llu snapshots, %llu chat lines "
           "delivered for %llu sent, %llu moves into walls\n",
           msgs_in, msgs_in / (run_s > 0 ? run_s : 1), msgs_out, msgs_out / (run_s > 0 ? run_s : 1), snaps,
           chat_lines, chats, errors_wall);
    printf("bots: lost %llu (moves unanswered %llu, chat unanswered %llu, deliveries missing %llu), "
           "duplicated %llu, unexpected %llu\n",
           lost, moves_unacked, chats_unacked, deliveries_missing, dup, unexpected);
    if (first_unexpected[0])
        printf("bots: first unexpected: %s\n", first_unexpected);
    printf("bots: round trip move p50 %.1f ms p99 %.1f ms (includes the world tick), chat p50 %.1f ms p99 %.1f ms\n",
           series_pct(&rtt_move, 50), series_pct(&rtt_move, 99), series_pct(&rtt_chat, 50),
           series_pct(&rtt_chat, 99));
    printf("bots: result bots=%d connected=%d logged_in=%d seconds=%.2f msgs_in=%llu msgs_out=%llu "
           "in_per_s=%.0f out_per_s=%.0f lost=%llu duplicated=%llu unexpected=%llu "
           "rtt_move_p50_ms=%.2f rtt_move_p99_ms=%.2f rtt_chat_p50_ms=%.2f rtt_chat_p99_ms=%.2f\n",
           nbots, connected, logged_in, run_s, msgs_in, msgs_out, msgs_in / (run_s > 0 ? run_s : 1),
           msgs_out / (run_s > 0 ? run_s : 1), lost, dup, unexpected, series_pct(&rtt_move, 50),
           series_pct(&rtt_move, 99), series_pct(&rtt_chat, 50), series_pct(&rtt_chat, 99));
    fflush(stdout);
    uv_loop_close(loop);
    for (int i = 0; i < nbots; i++) {
        free(bots[i].line);
        free(bots[i].last_cid);
        free(bots[i].chats);
    }
    free(bots);
    series_free(&rtt_move);
    series_free(&rtt_chat);
    return (connected == nbots && logged_in == nbots && lost == 0 && dup == 0 && unexpected == 0) ? 0 : 1;
}
