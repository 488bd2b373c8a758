# C API tests: a cmocka program embedding the interpreter with the scheduler
# built in, driving it only through the scheduler._C_API capsule.
add_executable(test_capi c/test_capi.c)
target_link_libraries(test_capi PRIVATE PkgConfig::CMOCKA carbon_internal carbon_runtime)
target_compile_definitions(test_capi PRIVATE CARBON_PYTHON_DIR="${CARBON_PYTHON_DIR}")
set_target_properties(test_capi PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
add_test(NAME c.test_capi COMMAND test_capi)
set(_capi_env "PYTHONDONTWRITEBYTECODE=1" "PYTHONFAULTHANDLER=1")
if(CARBON_SANITIZE)
    list(APPEND _capi_env "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1"
                          "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
endif()
set_tests_properties(c.test_capi PROPERTIES ENVIRONMENT "${_capi_env}" TIMEOUT 300)
