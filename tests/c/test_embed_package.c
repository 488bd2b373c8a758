/* Where the runtime finds its Python packages, and its version (issue 14).
 * Each case that starts the interpreter runs in its own process: a failed
 * carbon_init cannot be retried in the same process. */
#define _GNU_SOURCE
#include "test_embed_util.h"

#include <sys/wait.h>
#include <unistd.h>

/* Runs fn in a child process; returns its exit status (0: passed). */
static int in_child(void (*fn)(void))
{
    int status;
    pid_t pid = fork();

    if (pid == 0) {
        fn();
        _exit(0);
    }
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_version(void **state)
{
    int number = -1;
    const char *v = carbon_version(&number);

    (void)state;
    assert_int_equal(number, CARBON_VERSION_NUMBER);
    assert_int_equal(CARBON_VERSION_NUMBER,
                     CARBON_VERSION_MAJOR * 10000 + CARBON_VERSION_MINOR * 100 + CARBON_VERSION_PATCH);
    /* "0.2.0 (Python 3.11)": the library's version, then the Python it embeds. */
    assert_int_equal(strncmp(v, CARBON_VERSION_STRING " (Python 3.", strlen(CARBON_VERSION_STRING) + 11), 0);
    assert_non_null(carbon_version(NULL));
}

static void bad_dir_child(void)
{
    carbon_config cfg;
    int rc;

    carbon_config_init(&cfg);
    cfg.package_dir = "/nonexistent/carbon-python";
    rc = carbon_init(&cfg);
    if (rc == CARBON_OK) {
        fprintf(stderr, "carbon_init accepted a package_dir without the packages\n");
        _exit(1);
    }
    /* The message names the directory and the packages, and says what to set. */
    if (!strstr(carbon_last_error(), "/nonexistent/carbon-python") ||
        !strstr(carbon_last_error(), "scheduler") || !strstr(carbon_last_error(), "package_dir")) {
        fprintf(stderr, "unclear message: %s\n", carbon_last_error());
        _exit(2);
    }
    _exit(0);
}

static void test_bad_package_dir_fails_at_init(void **state)
{
    (void)state;
    assert_int_equal(in_child(bad_dir_child), 0);
}

static void default_dir_child(void)
{
    carbon_config cfg;

    carbon_config_init(&cfg);
    /* The default is no path at all: found from where the code is. */
    if (cfg.package_dir != NULL)
        _exit(3);
    if (carbon_init(&cfg) != CARBON_OK) {
        fprintf(stderr, "carbon_init: %s\n", carbon_last_error());
        _exit(1);
    }
    if (carbon_run_string("import scheduler, carbon, os\n"
                          "assert os.path.basename(os.path.dirname(os.path.dirname(scheduler.__file__)))"
                          " == 'python', scheduler.__file__\n") != CARBON_OK) {
        fprintf(stderr, "%s\n", carbon_last_error());
        _exit(2);
    }
    carbon_shutdown();
    _exit(0);
}

static void test_default_dir_found_relative_to_binary(void **state)
{
    (void)state;
    assert_int_equal(in_child(default_dir_child), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_bad_package_dir_fails_at_init),
        cmocka_unit_test(test_default_dir_found_relative_to_binary),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
