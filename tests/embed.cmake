# cmocka tests of the embedding API (embed/): one process each, since the
# interpreter can be started once per process.
foreach(name test_embed_api test_embed_tick test_embed_worker test_embed_shutdown test_embed_package test_embed_net)
    carbon_c_test(${name} carbon_embed)
    set_tests_properties(c.${name} PROPERTIES TIMEOUT 300)
endforeach()
set_tests_properties(c.test_embed_api c.test_embed_tick c.test_embed_worker c.test_embed_shutdown c.test_embed_package c.test_embed_net
                     PROPERTIES ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;PYTHONFAULTHANDLER=1")
if(CARBON_SANITIZE)
    # CPython is not instrumented and keeps some memory after finalization
    # (3.11 more than later versions); leaks are checked with valgrind instead
    # (docs/embedding.md).
    set_tests_properties(c.test_embed_api c.test_embed_tick c.test_embed_worker c.test_embed_shutdown c.test_embed_package c.test_embed_net
                         PROPERTIES ENVIRONMENT
                         "PYTHONDONTWRITEBYTECODE=1;PYTHONFAULTHANDLER=1;ASAN_OPTIONS=detect_leaks=0:abort_on_error=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
endif()
