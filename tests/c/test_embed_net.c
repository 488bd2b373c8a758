/* carbon.net driven by carbon_tick(): sockets are polled by ticks (the
 * tick's "nothing to poll" shortcut must not skip them), and sockets still
 * open at carbon_shutdown() are closed with their loop. */
#define _GNU_SOURCE
#include "test_embed_util.h"

static int setup(void **state)
{
    carbon_config cfg;

    (void)state;
    carbon_config_init(&cfg);
    if (carbon_init(&cfg) != CARBON_OK) {
        fprintf(stderr, "carbon_init: %s\n", carbon_last_error());
        return -1;
    }
    return carbon_run_string("import scheduler, carbon, carbon.net") == CARBON_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return carbon_shutdown() == CARBON_OK ? 0 : -1;
}

/* An echo server and 20 clients on the main thread, only ticked: every
 * client gets its answer within a bounded number of ticks. */
static void test_echo_by_ticks(void **state)
{
    int ticks;

    (void)state;
    RUN("def handler(s):\n"
        "    while True:\n"
        "        d = s.read(100)\n"
        "        if not d: return\n"
        "        s.write(d)\n"
        "server = carbon.net.listen('127.0.0.1', 0, handler)\n"
        "answers = []\n"
        "def client(i):\n"
        "    with carbon.net.connect('127.0.0.1', server.sockname[1]) as c:\n"
        "        c.write(b'%d' % i)\n"
        "        answers.append(c.read(100))\n"
        "for i in range(20): scheduler.tasklet(client)(i)\n");
    for (ticks = 0; ticks < 5000; ticks++) {
        assert_int_equal(carbon_tick(1000000, NULL), CARBON_OK);
        if (carbon_run_string("assert len(answers) == 20") == CARBON_OK)
            break;
        sleep_ns(200000); /* a frame's worth of other work */
    }
    assert_true(ticks < 5000);
    RUN("assert sorted(answers) == sorted(b'%d' % i for i in range(20)), answers\n");
}

/* A server, a connection blocked in read and a UDP endpoint left open: the
 * shutdown kills the tasklets and closes the sockets without a crash. */
static void test_open_sockets_at_shutdown(void **state)
{
    (void)state;
    RUN("srv2 = carbon.net.listen('127.0.0.1', 0)\n"
        "keep = []\n"
        "def reader():\n"
        "    s = carbon.net.connect('127.0.0.1', srv2.sockname[1])\n"
        "    keep.append(s)\n"
        "    s.read()\n"
        "scheduler.tasklet(reader)()\n"
        "ep = carbon.net.udp(('127.0.0.1', 0))\n");
    for (int i = 0; i < 50; i++) {
        assert_int_equal(carbon_tick(1000000, NULL), CARBON_OK);
        sleep_ns(1000000);
    }
    RUN("assert len(keep) == 1\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_by_ticks),
        cmocka_unit_test(test_open_sockets_at_shutdown),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
