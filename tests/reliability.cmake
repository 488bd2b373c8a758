# Issue 13 machinery, short forms (docs/reliability.md); long forms are
# `tools/dev fuzz|refleak|stress`.
set(_rel_env "PYTHONPATH=${CARBON_PYTHON_DIR}:${CARBON_TEST_PYTHON_DIR}" "PYTHONDONTWRITEBYTECODE=1"
             "PYTHONFAULTHANDLER=1")
if(CARBON_SANITIZE)
    list(APPEND _rel_env "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1"
                         "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1" "LD_PRELOAD=${LIBASAN}:${LIBUBSAN}")
endif()

# Model-based differential test: 2,000 fixed-seed programs.
add_test(NAME model.differential COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/model/test_model.py)
set_tests_properties(model.differential PROPERTIES ENVIRONMENT "${_rel_env}" TIMEOUT 300)

# Refleak, short form: a few test files, 3 runs each in one process.
add_test(NAME refleak.short COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tools/refleak.py --runs 3
         --python ${Python3_EXECUTABLE} --pythonpath "${CARBON_PYTHON_DIR}:${CARBON_TEST_PYTHON_DIR}"
         ${CMAKE_CURRENT_SOURCE_DIR}/python/test_reliability.py
         ${CMAKE_CURRENT_SOURCE_DIR}/python/test_sem_05_channels.py
         ${CMAKE_CURRENT_SOURCE_DIR}/python/test_sem_09_lifetime.py)
set_tests_properties(refleak.short PROPERTIES ENVIRONMENT "${_rel_env}" TIMEOUT 300)

# Static analysis, when cppcheck is installed (tools/dev lint installs it).
find_program(CARBON_CPPCHECK cppcheck)
if(CARBON_CPPCHECK)
    add_test(NAME lint.cppcheck COMMAND ${CMAKE_SOURCE_DIR}/tools/dev lint
             WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
    set_tests_properties(lint.cppcheck PROPERTIES TIMEOUT 300)
endif()

# Fault injection: an extension hooking PyMem_SetAllocator and a preloadable
# mmap shim, both next to the test modules (tests/python/test_fault_injection.py).
Python3_add_library(faultinject MODULE WITH_SOABI faultinject/faultinject.c)
target_link_libraries(faultinject PRIVATE ${CMAKE_DL_LIBS})
set_target_properties(faultinject PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${CARBON_TEST_PYTHON_DIR})
add_library(carbon_faultshim SHARED faultinject/faultshim.c)
target_link_libraries(carbon_faultshim PRIVATE ${CMAKE_DL_LIBS})
set_target_properties(carbon_faultshim PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${CARBON_TEST_PYTHON_DIR}
                      C_VISIBILITY_PRESET default)

# Stress, short form: 4 threads x 100 tasklets, 5 s at most (tools/dev stress: 1,000 and 60 s).
add_test(NAME stress.short COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/stress/stress.py
         --threads 4 --tasklets 100 --messages 20000 --seconds 5)
set_tests_properties(stress.short PROPERTIES ENVIRONMENT "${_rel_env}" TIMEOUT 120)

# Stress at carbon_shutdown, short form: 10,000 tasklets blocked on channels,
# sleeping and reading loopback sockets over the host and 3 workers, every
# finally counted (tools/dev stress: 100,000; tools/dev valgrind runs this one).
if(TARGET carbon_embed)
    add_executable(shutdown_stress stress/shutdown_stress.c)
    target_link_libraries(shutdown_stress PRIVATE carbon_embed)
    target_compile_definitions(shutdown_stress PRIVATE
        SHUTDOWN_SCRIPT="${CMAKE_CURRENT_SOURCE_DIR}/stress/shutdown_script.py")
    set_target_properties(shutdown_stress PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
    add_test(NAME stress.shutdown COMMAND shutdown_stress --tasklets 10000 --workers 3 --pairs 50)
    set_tests_properties(stress.shutdown PROPERTIES ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;PYTHONFAULTHANDLER=1;${SAN_ENV}"
                         TIMEOUT 600)
endif()

# Stress: spawn/finish churn with flat RSS + VmPTE, short form: 3 s on the host
# thread and 3 workers (tools/dev stress: 60 s).
add_test(NAME stress.churn COMMAND carbon ${CMAKE_CURRENT_SOURCE_DIR}/stress/churn.py
         --seconds 3 --warmup 1 --workers 3)
set_tests_properties(stress.churn PROPERTIES ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;PYTHONFAULTHANDLER=1;${SAN_ENV}"
                     TIMEOUT 120)
