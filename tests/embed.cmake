# cmocka tests of the embedding API (embed/): one process each, since the
# interpreter can be started once per process. Add a test to the list.
set(CARBON_EMBED_TESTS test_embed_api test_embed_tick test_embed_worker test_embed_shutdown test_embed_package
    test_embed_net test_embed_host test_embed_grace test_embed_shutdown_timeout test_embed_preempt
    test_embed_shutdown_busy)
set(CARBON_EMBED_TEST_ENV "PYTHONDONTWRITEBYTECODE=1;PYTHONFAULTHANDLER=1")
if(CARBON_SANITIZE)
    # CPython is not instrumented and keeps some memory after finalization
    # (3.11 more than later versions); leaks are checked with valgrind instead
    # (docs/embedding.md).
    set(CARBON_EMBED_TEST_ENV
        "${CARBON_EMBED_TEST_ENV};ASAN_OPTIONS=detect_leaks=0:abort_on_error=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
endif()
foreach(name ${CARBON_EMBED_TESTS})
    carbon_c_test(${name} carbon_embed)
    set_tests_properties(c.${name} PROPERTIES TIMEOUT 300 ENVIRONMENT "${CARBON_EMBED_TEST_ENV}")
endforeach()

# samples/game_loop --runaway: an entity loops for ever from frame 30; the run
# completes, ticks stay within budget + slice + 1 ms (widened by the OS's
# scheduling delay measured in the same run; the sample checks it and exits 3
# otherwise) and the hitch report names the entity. Run alone: it measures time.
if(TARGET game_loop)
    add_test(NAME sample.game_loop_runaway
             COMMAND game_loop --frames 90 --entities 50 --budget-ms 2 --runaway)
    set_tests_properties(sample.game_loop_runaway PROPERTIES TIMEOUT 120 RUN_SERIAL TRUE
                         FAIL_REGULAR_EXPRESSION "game_loop --runaway: |carbon_shutdown: "
                         PASS_REGULAR_EXPRESSION "hitch: tasklet 'runaway entity' ran [0-9.]+ ms \\(1 in a row\\), preempted; stack:\n  File \"[^\"]*game.py\", line [0-9]+, in runaway_entity")
endif()
