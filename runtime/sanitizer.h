/* AddressSanitizer fiber annotations and valgrind stack registration; all
 * compile to nothing when the tool is not in use. */
#ifndef CB_SANITIZER_H
#define CB_SANITIZER_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define CB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CB_ASAN 1
#endif
#endif

#ifdef CB_ASAN
#include <sanitizer/common_interface_defs.h>
#define CB_ASAN_START_SWITCH(fake_save, lo, size) \
    __sanitizer_start_switch_fiber((fake_save), (lo), (size))
#define CB_ASAN_FINISH_SWITCH(fake) \
    __sanitizer_finish_switch_fiber((fake), NULL, NULL)
#include <sanitizer/asan_interface.h>
#define CB_ASAN_UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#define CB_ASAN_POISON(p, n) __asan_poison_memory_region((p), (n))
#else
#define CB_ASAN_UNPOISON(p, n) ((void)(p), (void)(n))
#define CB_ASAN_POISON(p, n) ((void)(p), (void)(n))
#define CB_ASAN_START_SWITCH(fake_save, lo, size) ((void)(fake_save), (void)(lo), (void)(size))
#define CB_ASAN_FINISH_SWITCH(fake) ((void)(fake))
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CB_HAVE_VALGRIND 1
#endif
#endif

#ifdef CB_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#define CB_VALGRIND_STACK_REGISTER(lo, hi) VALGRIND_STACK_REGISTER((lo), (hi))
#define CB_VALGRIND_STACK_DEREGISTER(id) VALGRIND_STACK_DEREGISTER(id)
/* Stack memory below a stack pointer that moved up is no-access for memcheck;
 * a stack copied back into its region is written there legitimately. */
#define CB_VALGRIND_MAKE_UNDEFINED(p, n) ((void)VALGRIND_MAKE_MEM_UNDEFINED((p), (n)))
#define CB_RUNNING_ON_VALGRIND (RUNNING_ON_VALGRIND != 0)
#else
#define CB_VALGRIND_STACK_REGISTER(lo, hi) ((void)(lo), (void)(hi), 0u)
#define CB_VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#define CB_VALGRIND_MAKE_UNDEFINED(p, n) ((void)(p), (void)(n))
#define CB_RUNNING_ON_VALGRIND 0
#endif

#endif
