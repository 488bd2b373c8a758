/* Worker threads with a ticking host: the C worker API, cross-thread
 * channels, idle workers sleeping in their loop, 100k messages. */
#define _GNU_SOURCE
#include "test_embed_util.h"

static int setup(void **state)
{
    carbon_config cfg;

    (void)state;
    carbon_config_init(&cfg);
    cfg.error = record_error;
    cfg.userdata = &g_reported;
    if (carbon_init(&cfg) != CARBON_OK) {
        fprintf(stderr, "carbon_init: %s\n", carbon_last_error());
        return -1;
    }
    /* Worker functions live in a module made here, so that a spec
     * "wmod:function" can name them. */
    return carbon_run_string("import types, sys, time, scheduler, carbon\n"
                             "wmod = types.ModuleType('wmod')\n"
                             "sys.modules['wmod'] = wmod\n"
                             "wmod.log = []\n") == CARBON_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return carbon_shutdown() == CARBON_OK ? 0 : -1;
}

/* A C-started worker serving requests from tasklets of the ticking host;
 * stopping it raises TaskletExit in its blocked main tasklet. */
static void test_c_worker_serves_host(void **state)
{
    carbon_worker *w = NULL;
    int ticks;

    (void)state;
    RUN("wmod.req = scheduler.channel(); wmod.rep = scheduler.channel()\n"
        "def serve():\n"
        "    try:\n"
        "        while True:\n"
        "            x = wmod.req.receive()\n"
        "            wmod.rep.send(x * 2)\n"
        "    finally:\n"
        "        wmod.log.append('serve finally')\n"
        "wmod.serve = serve\n"
        "answers = []\n"
        "def client(k):\n"
        "    for i in range(k, 2000, 20): wmod.req.send(i)\n"
        "def collector():\n"
        "    while len(answers) < 2000: answers.append(wmod.rep.receive())\n"
        "for k in range(20): scheduler.tasklet(client)(k); scheduler.tasklet(collector)()\n");
    assert_int_equal(carbon_worker_start("wmod:serve", &w), CARBON_OK);
    ticks = TICK_UNTIL("len(answers) == 2000", 20000, 100000);
    assert_true(ticks > 0);
    RUN("assert sorted(answers) == [2 * i for i in range(2000)]\n"
        "assert wmod.log == []\n");
    assert_int_equal(carbon_worker_stop(w), CARBON_OK);
    assert_int_equal(carbon_worker_stop(w), CARBON_OK); /* idempotent */
    assert_int_equal(carbon_worker_join(w), CARBON_OK);
    RUN("assert wmod.log == ['serve finally'], wmod.log\n"
        "wmod.log.clear()\n");
    /* The collectors that still wait on rep are the host's: kill them. */
    RUN("scheduler.unblock_all_channels()");
    assert_int_equal(carbon_tick(1000000, NULL), CARBON_OK);
}

/* An idle worker sleeps in its loop: over 1 s of host frames it uses
 * (almost) no CPU, measured by its own thread CPU clock. */
static void test_idle_worker_cpu(void **state)
{
    carbon_worker *w = NULL;
    long long end;

    (void)state;
    RUN("wmod.wake = scheduler.channel(); wmod.cpu = None\n"
        "def idle_probe():\n"
        "    t0 = time.thread_time()\n"
        "    wmod.wake.receive()\n"
        "    wmod.cpu = time.thread_time() - t0\n"
        "wmod.idle_probe = idle_probe\n");
    assert_int_equal(carbon_worker_start("wmod:idle_probe", &w), CARBON_OK);
    end = now_ns() + 1000000000LL;
    while (now_ns() < end) { /* 1 s of 60 Hz frames */
        assert_int_equal(carbon_tick(1000000, NULL), CARBON_OK);
        sleep_ns(16666666);
    }
    RUN("def poke(): wmod.wake.send(1)\n"
        "scheduler.tasklet(poke)()\n");
    assert_true(TICK_UNTIL("wmod.cpu is not None", 1000, 1000000) > 0);
    RUN("assert wmod.cpu < 0.02, 'idle worker used %.3f s of CPU in 1 s' % wmod.cpu");
    assert_int_equal(carbon_worker_join(w), CARBON_OK); /* ended by itself */
}

/* 100k messages between tasklets of the ticking host thread and 3 workers
 * (spawned from Python): none lost, none duplicated. */
static void test_100k_messages_3_workers(void **state)
{
    long long t0 = now_ns();
    int ticks;

    (void)state;
    RUN("N = 100_000; C = 300\n"
        "req = scheduler.channel(); rep = scheduler.channel()\n"
        "def server():\n"
        "    n = 0\n"
        "    while True:\n"
        "        x = req.receive()\n"
        "        if x is None: return n\n"
        "        rep.send(x); n += 1\n"
        "workers = [carbon.spawn_worker(server) for _ in range(3)]\n"
        "seen = bytearray(N); got = 0\n"
        "def client(k):\n"
        "    for i in range(k, N, C): req.send(i)\n"
        "def collector():\n"
        "    global got\n"
        "    while True:\n"
        "        seen[rep.receive()] += 1; got += 1\n"
        "for k in range(C): scheduler.tasklet(client)(k); scheduler.tasklet(collector)()\n");
    ticks = TICK_UNTIL("got == N", 200000, 50000);
    assert_true(ticks > 0);
    RUN("assert seen == bytearray([1]) * N, 'lost or duplicated'\n"
        "def stopper():\n"
        "    for w in workers: req.send(None)\n"
        "    wmod.served = [w.join() for w in workers]\n"
        "scheduler.tasklet(stopper)()\n");
    assert_true(TICK_UNTIL("hasattr(wmod, 'served')", 10000, 100000) > 0);
    RUN("assert sum(wmod.served) == N and all(wmod.served), wmod.served");
    print_message("    100k messages: %d ticks, %.2f s\n", ticks, (double)(now_ns() - t0) / 1e9);
    RUN("scheduler.unblock_all_channels()");
    assert_int_equal(carbon_tick(10000000, NULL), CARBON_OK);
}

/* A tasklet of the host blocks on a worker (join, channel) while the host
 * ticks. */
static void test_host_tasklet_waits_for_worker(void **state)
{
    (void)state;
    RUN_IN_TASKLET("def slow_double(x):\n"
        "    carbon.sleep(0.05)\n"
        "    return 2 * x\n"
        "w = carbon.spawn_worker(slow_double, 21)\n"
        "assert w.alive\n"
        "assert w.join() == 42 and not w.alive\n"
        "assert w.join() == 42\n"
        "ch = scheduler.channel()\n"
        "def pinger(n):\n"
        "    for i in range(n): ch.send(i)\n"
        "w = carbon.spawn_worker(pinger, 50)\n"
        "assert [ch.receive() for _ in range(50)] == list(range(50))\n"
        "w.join()\n", 5000);
}

/* stop() on a Python worker whose main tasklet and other tasklets are
 * blocked: all get TaskletExit, on the worker's thread. */
static void test_stop_python_worker(void **state)
{
    (void)state;
    RUN_IN_TASKLET("import threading\n"
        "events = []\n"
        "never = scheduler.channel()\n"
        "def blocked(tag):\n"
        "    try: never.receive()\n"
        "    finally: events.append((tag, threading.get_ident()))\n"
        "def sleeper():\n"
        "    try: carbon.sleep(1000)\n"
        "    finally: events.append(('sleeper', threading.get_ident()))\n"
        "def body():\n"
        "    scheduler.tasklet(blocked)('child'); scheduler.tasklet(sleeper)()\n"
        "    blocked('main')\n"
        "w = carbon.spawn_worker(body)\n"
        "while never.balance != -2: carbon.sleep(0.001)\n"
        "carbon.sleep(0.01)\n"
        "w.stop()\n"
        "assert w.join() is None\n"
        "tags = sorted(t for t, _ in events)\n"
        "assert tags == ['child', 'main', 'sleeper'], events\n"
        "assert len({tid for _, tid in events}) == 1 and events[0][1] != threading.get_ident()\n"
        "assert never.balance == 0\n", 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_c_worker_serves_host, cleanup_host),
        cmocka_unit_test_teardown(test_idle_worker_cpu, cleanup_host),
        cmocka_unit_test_teardown(test_100k_messages_3_workers, cleanup_host),
        cmocka_unit_test_teardown(test_host_tasklet_waits_for_worker, cleanup_host),
        cmocka_unit_test_teardown(test_stop_python_worker, cleanup_host),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
