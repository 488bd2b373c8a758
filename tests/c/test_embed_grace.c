/* carbon_shutdown's grace period and retry rule (docs/embedding.md,
 * "carbon_shutdown"): finally blocks may sleep, wait frames and use channels
 * during shutdown_grace_ns, on the host thread and on a worker; a finally
 * still running when it is over is cut short; a tasklet that swallows
 * TaskletExit is hit exactly 1 + 2 times, then logged and abandoned. The
 * finally blocks write to a file, read after the interpreter is gone. */
#define _GNU_SOURCE
#include "test_embed_util.h"

#include <unistd.h>

static char note_path[] = "/tmp/carbon_test_grace_XXXXXX";

#define LOG_MAX 64
static struct {
    int n;
    char text[LOG_MAX][2048];
} g_log;

static void record_log(void *ud, int level, const char *msg)
{
    (void)ud;
    (void)level;
    if (g_log.n < LOG_MAX)
        snprintf(g_log.text[g_log.n++], sizeof g_log.text[0], "%s", msg);
}

static int log_count(const char *needle)
{
    int c = 0;

    for (int i = 0; i < g_log.n; i++)
        if (strstr(g_log.text[i], needle))
            c++;
    return c;
}

static const char SCRIPT[] =
    "import scheduler, carbon, threading, os\n"
    "NOTES = os.environ['CARBON_GRACE_NOTES']\n"
    "def note(tag):\n"
    "    with open(NOTES, 'a') as f: f.write(tag + '\\n')\n"
    "ch = scheduler.channel()\n"
    "def sleepy_finally(tag):\n"
    "    try: carbon.sleep(3600)\n"
    "    finally:\n"
    "        carbon.sleep(0.05); note(tag + ':slept')\n"
    "def frames_finally():\n"
    "    try: carbon.sleep(3600)\n"
    "    finally:\n"
    "        f0 = carbon.frame(); carbon.wait_frames(2); note('frames:%d' % (carbon.frame() - f0))\n"
    "def chan_sender():\n"
    "    try: carbon.sleep(3600)\n"
    "    finally: ch.send('bye'); note('sent')\n"
    "def chan_receiver():\n"
    "    try: carbon.sleep(3600)\n"
    "    finally: note('received:' + ch.receive())\n"
    "def long_finally():\n"
    "    try: carbon.sleep(3600)\n"
    "    finally:\n"
    "        note('long:start'); carbon.sleep(60); note('long:end')\n"
    "def swallower():\n"
    "    while True:\n"
    "        try: carbon.sleep(3600)\n"
    "        except scheduler.TaskletExit: note('swallowed')\n"
    "for f in (frames_finally, chan_sender, chan_receiver, long_finally, swallower):\n"
    "    scheduler.tasklet(f)()\n"
    "scheduler.tasklet(sleepy_finally)('host')\n"
    "never = scheduler.channel()\n"
    "def worker_main():\n"
    "    scheduler.tasklet(sleepy_finally)('worker')\n"
    "    never.receive()\n"
    "w = carbon.spawn_worker(worker_main)\n";

static void test_grace_then_retries(void **state)
{
    carbon_config cfg;
    char line[256];
    int slept_host = 0, slept_worker = 0, frames2 = 0, sent = 0, received = 0, long_start = 0, long_end = 0,
        swallowed = 0;
    long long t0, dt;
    FILE *f;
    int fd;

    (void)state;
    fd = mkstemp(note_path);
    assert_true(fd >= 0);
    close(fd);
    setenv("CARBON_GRACE_NOTES", note_path, 1);
    carbon_config_init(&cfg);
    cfg.log = record_log;
    cfg.shutdown_grace_ns = 400000000; /* 400 ms */
    assert_int_equal(carbon_init(&cfg), CARBON_OK);
    RUN(SCRIPT);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(carbon_tick(1000000, NULL), CARBON_OK);
        sleep_ns(2000000);
    }
    assert_true(TICK_UNTIL("never.balance == -1", 5000, 1000000) > 0); /* the worker is waiting */
    t0 = now_ns();
    assert_int_equal(carbon_shutdown(), CARBON_OK);
    dt = now_ns() - t0;
    print_message("    shutdown took %.0f ms (grace 400 ms)\n", dt / 1e6);
    /* The swallower and the long finally keep the host's grace running to its end. */
    assert_true(dt >= 400000000LL);
    assert_true(dt < 3000000000LL * time_scale());

    f = fopen(note_path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        slept_host += !strcmp(line, "host:slept\n");
        slept_worker += !strcmp(line, "worker:slept\n");
        frames2 += !strcmp(line, "frames:2\n");
        sent += !strcmp(line, "sent\n");
        received += !strcmp(line, "received:bye\n");
        long_start += !strcmp(line, "long:start\n");
        long_end += !strcmp(line, "long:end\n");
        swallowed += !strcmp(line, "swallowed\n");
    }
    fclose(f);
    unlink(note_path);
    assert_int_equal(slept_host, 1);
    assert_int_equal(slept_worker, 1);
    assert_int_equal(frames2, 1);
    assert_int_equal(sent, 1);
    assert_int_equal(received, 1);
    assert_int_equal(long_start, 1);
    assert_int_equal(long_end, 0); /* cut short after the grace period */
    /* The documented rule: TaskletExit once, then twice more. */
    assert_int_equal(swallowed, 3);
    assert_int_equal(log_count("TaskletExit again (1 of 2)"), 2); /* long_finally, swallower */
    assert_int_equal(log_count("tasklet __main__.long_finally still runs"), 1);
    assert_int_equal(log_count("TaskletExit again (2 of 2)"), 1);
    assert_int_equal(log_count("tasklet __main__.swallower left alive at shutdown: it survived TaskletExit 3 times"),
                     1);
    assert_int_equal(log_count("in swallower"), 1); /* its stack is in the report */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grace_then_retries),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
