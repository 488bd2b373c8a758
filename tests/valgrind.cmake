# Valgrind (docs/reliability.md, "valgrind").
#
# libcarbon_vgshim.so: what tools/valgrind_suite.py preloads instead of
# setting PYTHONMALLOC=malloc when the Python is 3.11, whose ints make
# memcheck report CPython's own reads far from their cause
# (valgrind/pylong_shim.c says how and why).
add_library(carbon_vgshim SHARED valgrind/pylong_shim.c)
set_target_properties(carbon_vgshim PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests
                      C_VISIBILITY_PRESET default)

# The carbon host under memcheck, when valgrind is installed (tools/dev
# valgrind installs it): importing email.message (once reported at exit, from
# CPython's collector), tasklets left blocked at exit, a full collection.
# No error, with no suppression needed (tools/valgrind.supp is empty).
find_program(CARBON_VALGRIND valgrind)
if(CARBON_VALGRIND AND NOT CARBON_SANITIZE)
    if(Python3_VERSION_MINOR EQUAL 11)
        set(_vg_env "LD_PRELOAD=$<TARGET_FILE:carbon_vgshim>")
    else()
        set(_vg_env "PYTHONMALLOC=malloc")
    endif()
    add_test(NAME valgrind.host_import
             COMMAND ${CARBON_VALGRIND} --error-exitcode=99 --quiet --num-callers=50
                     --suppressions=${CMAKE_SOURCE_DIR}/tools/valgrind.supp $<TARGET_FILE:carbon> -c
                     "import email.message, gc, scheduler\nch = scheduler.channel()\nfor _ in range(3): scheduler.tasklet(ch.receive)()\nscheduler.run()\ngc.collect()")
    set_tests_properties(valgrind.host_import PROPERTIES
                         ENVIRONMENT "${_vg_env};PYTHONDONTWRITEBYTECODE=1" TIMEOUT 300)
endif()
