/* The embedding API's contract: status codes for every misuse (NULL, wrong
 * state, wrong thread, re-entry), errors as text, once-per-process init. */
#define _GNU_SOURCE
#include "test_embed_util.h"

#include <pthread.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <unistd.h>

static void test_before_init(void **state)
{
    carbon_worker *w = (carbon_worker *)&w;
    carbon_stats st;

    (void)state;
    assert_int_equal(carbon_config_init(NULL), CARBON_EINVAL);
    assert_true(strlen(carbon_last_error()) > 0);
    assert_int_equal(carbon_tick(1000, &st), CARBON_ESTATE);
    assert_non_null(strstr(carbon_last_error(), "not initialised"));
    assert_int_equal(carbon_run_string("pass"), CARBON_ESTATE);
    assert_int_equal(carbon_run_file("/nonexistent.py"), CARBON_ESTATE);
    assert_int_equal(carbon_call("os", "getpid"), CARBON_ESTATE);
    assert_int_equal(carbon_worker_start("os:getpid", &w), CARBON_ESTATE);
    assert_null(w);
    assert_int_equal(carbon_worker_stop((carbon_worker *)&st), CARBON_ESTATE);
    assert_int_equal(carbon_worker_join((carbon_worker *)&st), CARBON_ESTATE);
    assert_int_equal(carbon_shutdown(), CARBON_ESTATE);
    assert_int_equal(carbon_init(NULL), CARBON_EINVAL);
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(carbon_strerror(CARBON_OK), "success");
    for (int c = CARBON_EREINIT; c < 0; c++)
        assert_string_not_equal(carbon_strerror(c), "unknown error");
    assert_string_equal(carbon_strerror(12345), "unknown error");
}

static void test_bad_config(void **state)
{
    carbon_config cfg;
    struct rlimit rl;

    (void)state;
    assert_int_equal(carbon_config_init(&cfg), CARBON_OK);
    assert_int_equal(cfg.nested, 1);
    assert_true(cfg.worker_budget_ns > 0);
    cfg.stack_size = 100; /* below the minimum */
    assert_int_equal(carbon_init(&cfg), CARBON_EINVAL);
    assert_non_null(strstr(carbon_last_error(), "stack_size"));
    /* a tasklet's stack is never smaller than a thread's (the soft
     * RLIMIT_STACK; 8 MiB usually) */
    if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur > 256 * 1024) {
        cfg.stack_size = 256 * 1024;
        assert_int_equal(carbon_init(&cfg), CARBON_EINVAL);
        assert_non_null(strstr(carbon_last_error(), "a thread's stack"));
    }
}

static void test_init(void **state)
{
    carbon_config cfg;
    const char *paths[] = {"/nonexistent-carbon-test-dir", NULL};

    (void)state;
    carbon_config_init(&cfg);
    cfg.module_paths = paths;
    cfg.error = record_error;
    cfg.userdata = &g_reported;
    assert_int_equal(carbon_init(&cfg), CARBON_OK);
    assert_string_equal(carbon_last_error(), "");
    assert_int_equal(carbon_init(&cfg), CARBON_ESTATE);
    assert_non_null(strstr(carbon_last_error(), "already"));
    /* The configuration reached Python; the modules are there. */
    RUN("import sys, scheduler, carbon\n"
        "assert sys.path[0] == '/nonexistent-carbon-test-dir', sys.path\n"
        "assert scheduler.get_use_nested_tasklets()\n"
        "assert carbon.frame() == 0\n");
}

static void test_run_string(void **state)
{
    (void)state;
    RUN("x = 41");
    RUN("assert x + 1 == 42");
    assert_int_equal(carbon_run_string("1/0"), CARBON_EPYTHON);
    assert_non_null(strstr(carbon_last_error(), "ZeroDivisionError"));
    assert_non_null(strstr(carbon_last_error(), "Traceback"));
    assert_int_equal(carbon_run_string("def f(:"), CARBON_EPYTHON);
    assert_non_null(strstr(carbon_last_error(), "SyntaxError"));
    assert_int_equal(carbon_run_string(NULL), CARBON_EINVAL);
    /* A failure does not leave anything behind for the next call. */
    RUN("pass");
    assert_string_equal(carbon_last_error(), "");
    /* SystemExit is an exception like any other: the host does not exit. */
    assert_int_equal(carbon_run_string("raise SystemExit(3)"), CARBON_EPYTHON);
    assert_non_null(strstr(carbon_last_error(), "SystemExit"));
}

static void test_run_file(void **state)
{
    char path[] = "/tmp/carbon_test_run_XXXXXX";
    int fd = mkstemp(path);
    const char src[] = "import carbon\nran_file = __file__\n";

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, src, sizeof src - 1), (ssize_t)(sizeof src - 1));
    close(fd);
    assert_int_equal(carbon_run_file(path), CARBON_OK);
    unlink(path);
    RUN("assert ran_file.startswith('/tmp/carbon_test_run_')");
    assert_int_equal(carbon_run_file(path), CARBON_EINVAL);
    assert_non_null(strstr(carbon_last_error(), "cannot read"));
    assert_int_equal(carbon_run_file(NULL), CARBON_EINVAL);
}

static void test_call(void **state)
{
    (void)state;
    RUN("import types, sys\n"
        "m = types.ModuleType('callme')\n"
        "m.calls = 0\n"
        "def hit(): m.calls += 1\n"
        "m.hit = hit\n"
        "sys.modules['callme'] = m\n");
    assert_int_equal(carbon_call("callme", "hit"), CARBON_OK);
    RUN("assert sys.modules['callme'].calls == 1");
    assert_int_equal(carbon_call("callme", "nothing"), CARBON_EPYTHON);
    assert_non_null(strstr(carbon_last_error(), "AttributeError"));
    assert_int_equal(carbon_call("no_such_module_xyz", "f"), CARBON_EPYTHON);
    assert_non_null(strstr(carbon_last_error(), "ModuleNotFoundError"));
    assert_int_equal(carbon_call("json", "dumps"), CARBON_EPYTHON); /* missing argument */
    assert_non_null(strstr(carbon_last_error(), "TypeError"));
    assert_int_equal(carbon_call(NULL, "f"), CARBON_EINVAL);
    assert_int_equal(carbon_call("json", NULL), CARBON_EINVAL);
    assert_int_equal(carbon_call("", "f"), CARBON_EINVAL);
}

static void test_tick_args(void **state)
{
    carbon_stats st;

    (void)state;
    assert_int_equal(carbon_tick(-1, &st), CARBON_EINVAL);
    assert_int_equal(carbon_tick(0, NULL), CARBON_OK);
    assert_int_equal(carbon_tick(0, &st), CARBON_OK);
    assert_true(st.frame >= 2);
    assert_int_equal(st.tasklets_run, 0);
    assert_int_equal(st.runnable, 0);
}

static void *other_thread(void *arg)
{
    int *rc = arg;
    carbon_worker *w;

    rc[0] = carbon_tick(1000, NULL);
    rc[1] = carbon_run_string("pass");
    rc[2] = carbon_worker_start("os:getpid", &w);
    rc[3] = carbon_shutdown();
    rc[4] = strstr(carbon_last_error(), "thread") != NULL;
    return NULL;
}

static void test_wrong_thread(void **state)
{
    pthread_t th;
    int rc[5] = {0};

    (void)state;
    assert_int_equal(pthread_create(&th, NULL, other_thread, rc), 0);
    pthread_join(th, NULL);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rc[i], CARBON_ETHREAD);
    assert_true(rc[4]);
    /* The host thread's error text is its own. */
    assert_int_equal(carbon_tick(0, NULL), CARBON_OK);
    assert_string_equal(carbon_last_error(), "");
}

static void test_reentry_from_error_callback(void **state)
{
    carbon_stats st;

    (void)state;
    memset(&g_reported, 0, sizeof g_reported);
    RUN("import scheduler\n"
        "def broken_entity(): raise KeyError('gone')\n"
        "scheduler.tasklet(broken_entity)()\n");
    assert_int_equal(carbon_tick(1000000, &st), CARBON_OK);
    assert_int_equal(g_reported.count, 1);
    assert_int_equal(st.errors, 1);
    assert_int_equal(g_reported.reentry_rc, CARBON_EBUSY);
    assert_non_null(strstr(g_reported.tasklet, "broken_entity"));
    assert_non_null(strstr(g_reported.traceback, "KeyError: 'gone'"));
}

static void test_worker_specs(void **state)
{
    carbon_worker *w = (carbon_worker *)&w;
    const char *bad[] = {"nocolon", ":f", "m:", "m:f:g", "m:.f", "m:f.", "m:f..g"};

    (void)state;
    assert_int_equal(carbon_worker_start(NULL, &w), CARBON_EINVAL);
    assert_null(w);
    assert_int_equal(carbon_worker_start("os:getpid", NULL), CARBON_EINVAL);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(carbon_worker_start(bad[i], &w), CARBON_EINVAL);
        assert_null(w);
    }
    assert_int_equal(carbon_worker_start("no_such_module_xyz:f", &w), CARBON_EPYTHON);
    assert_non_null(strstr(carbon_last_error(), "ModuleNotFoundError"));
    assert_int_equal(carbon_worker_start("json:no_such_function", &w), CARBON_EPYTHON);
    assert_int_equal(carbon_worker_start("json:__doc__", &w), CARBON_EPYTHON);
    assert_non_null(strstr(carbon_last_error(), "callable"));
    assert_int_equal(carbon_worker_stop(NULL), CARBON_EINVAL);
    assert_int_equal(carbon_worker_join(NULL), CARBON_EINVAL);
    /* Not a handle of ours: refused without being touched. */
    assert_int_equal(carbon_worker_stop((carbon_worker *)&w), CARBON_EINVAL);
    assert_int_equal(carbon_worker_join((carbon_worker *)&w), CARBON_EINVAL);

    /* A dotted attribute path, a function that returns at once: the worker
     * ends by itself and joins; its handle is then gone. */
    assert_int_equal(carbon_worker_start("gc:collect", &w), CARBON_OK);
    assert_non_null(w);
    assert_int_equal(carbon_worker_join(w), CARBON_OK);
    assert_int_equal(carbon_worker_join(w), CARBON_EINVAL);
    assert_int_equal(carbon_worker_stop(w), CARBON_EINVAL);

    /* The worker's function raises: reported from the worker thread, named
     * by its spec; a carbon call from there is refused. */
    memset(&g_reported, 0, sizeof g_reported);
    assert_int_equal(carbon_worker_start("os.path:join.__call__", &w), CARBON_OK); /* needs args */
    assert_int_equal(carbon_worker_join(w), CARBON_OK);
    assert_int_equal(g_reported.count, 1);
    assert_string_equal(g_reported.tasklet, "os.path:join.__call__");
    assert_non_null(strstr(g_reported.traceback, "TypeError"));
    assert_int_equal(g_reported.reentry_rc, CARBON_ETHREAD);
}

static void test_shutdown_then_reinit(void **state)
{
    carbon_config cfg;

    (void)state;
    assert_int_equal(carbon_shutdown(), CARBON_OK);
    assert_int_equal(carbon_shutdown(), CARBON_ESTATE);
    assert_int_equal(carbon_tick(0, NULL), CARBON_ESTATE);
    assert_int_equal(carbon_run_string("pass"), CARBON_ESTATE);
    carbon_config_init(&cfg);
    assert_int_equal(carbon_init(&cfg), CARBON_EREINIT);
    assert_non_null(strstr(carbon_last_error(), "shut down"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_before_init),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_run_string),
        cmocka_unit_test(test_run_file),
        cmocka_unit_test(test_call),
        cmocka_unit_test(test_tick_args),
        cmocka_unit_test(test_wrong_thread),
        cmocka_unit_test(test_reentry_from_error_callback),
        cmocka_unit_test(test_worker_specs),
        cmocka_unit_test(test_shutdown_then_reinit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
