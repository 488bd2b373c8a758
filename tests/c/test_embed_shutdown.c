/* carbon_shutdown with tasklets blocked, sleeping and waiting for frames on
 * the host thread and on three workers (whose main tasklets are blocked
 * too): every one gets TaskletExit and runs its finally block on its own
 * thread, the workers are joined, the interpreter is finalized. The finally
 * blocks write to a file, read after the interpreter is gone.
 * Run it under valgrind (docs/embedding.md) for leaks. */
#define _GNU_SOURCE
#include "test_embed_util.h"

#include <stdlib.h>
#include <unistd.h>

static char log_path[] = "/tmp/carbon_test_shutdown_XXXXXX";

static const char SCRIPT[] =
    "import scheduler, carbon, threading, os\n"
    "LOG = os.environ['CARBON_SHUTDOWN_LOG']\n"
    "def note(tag):\n"
    "    with open(LOG, 'a') as f: f.write('%s %d\\n' % (tag, threading.get_ident()))\n"
    "never = scheduler.channel()\n"
    "begun = []\n"
    "def blocked(tag):\n"
    "    begun.append(tag)\n"
    "    try: never.receive()\n"
    "    finally: note(tag + ':blocked')\n"
    "def sleeper(tag):\n"
    "    begun.append(tag)\n"
    "    try: carbon.sleep(3600)\n"
    "    finally: note(tag + ':sleeper')\n"
    "def framer(tag):\n"
    "    begun.append(tag)\n"
    "    try: carbon.wait_frames(10**9)\n"
    "    finally: note(tag + ':framer')\n"
    "def spawn_all(tag):\n"
    "    for f in (blocked, sleeper, framer): scheduler.tasklet(f)(tag)\n"
    "def worker_main(tag):\n"
    "    spawn_all(tag)\n"
    "    try: never.receive()\n"
    "    finally: note(tag + ':main')\n"
    "spawn_all('host')\n"
    "workers = [carbon.spawn_worker(worker_main, 'w%d' % i) for i in range(3)]\n";

static void test_shutdown_kills_everything(void **state)
{
    carbon_config cfg;
    carbon_worker *cw = NULL;
    carbon_stats st;
    char line[256], tag[64], prefixes[8][64];
    unsigned long tids[8];
    int count = 0, host = 0, worker_lines = 0, nprefix = 0;
    unsigned long tid;
    FILE *f;
    int fd;

    (void)state;
    fd = mkstemp(log_path);
    assert_true(fd >= 0);
    close(fd);
    setenv("CARBON_SHUTDOWN_LOG", log_path, 1);

    carbon_config_init(&cfg);
    assert_int_equal(carbon_init(&cfg), CARBON_OK);
    RUN(SCRIPT);
    RUN("wmod = type(sys := __import__('sys'))('wmod'); sys.modules['wmod'] = wmod\n"
        "wmod.worker_main = lambda: worker_main('c0')\n");
    assert_int_equal(carbon_worker_start("wmod:worker_main", &cw), CARBON_OK);
    /* Until everybody waits: 1 host tasklet + 4 workers x (child + main) on
     * the channel, and every tasklet has started (never-started ones would
     * die without running their finally). */
    assert_true(TICK_UNTIL("never.balance == -(1 + 4 * 2) and len(begun) == 3 + 4 * 3", 2000, 5000000) > 0);
    assert_int_equal(carbon_tick(1000000, &st), CARBON_OK);
    assert_int_equal(st.blocked, 1);
    assert_int_equal(st.sleeping, 1);
    assert_int_equal(st.waiting_frames, 1);
    /* The C handle is left to carbon_shutdown too. */
    assert_int_equal(carbon_shutdown(), CARBON_OK);

    f = fopen(log_path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        assert_int_equal(sscanf(line, "%63s %lu", tag, &tid), 2);
        count++;
        /* Each thread's tasklets died on that thread: one thread per prefix. */
        *strchr(tag, ':') = '\0';
        int k;
        for (k = 0; k < nprefix && strcmp(prefixes[k], tag); k++)
            ;
        if (k == nprefix) {
            assert_true(nprefix < 8);
            snprintf(prefixes[nprefix], sizeof prefixes[0], "%s", tag);
            tids[nprefix++] = tid;
        }
        assert_int_equal(tids[k], tid);
        if (!strcmp(tag, "host"))
            host++;
        else
            worker_lines++;
    }
    fclose(f);
    unlink(log_path);
    assert_int_equal(host, 3);
    assert_int_equal(worker_lines, 4 * 4); /* 3 Python workers + 1 C worker, 4 tasklets each */
    assert_int_equal(count, 19);
    assert_int_equal(nprefix, 5);
    for (int i = 0; i < nprefix; i++)
        for (int j = i + 1; j < nprefix; j++)
            assert_true(tids[i] != tids[j]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shutdown_kills_everything),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
