/* LD_PRELOAD shim: mmap() shares faultinject's counter, so the Nth
 * allocation may be a tasklet stack's mapping (docs/reliability.md). Only
 * anonymous mappings are counted (not files the loader maps). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>

static long long *counter, *fail_at, *failures;

void carbon_faultshim_arm(long long *c, long long *at, long long *f);
void carbon_faultshim_arm(long long *c, long long *at, long long *f)
{
    counter = c;
    fail_at = at;
    failures = f;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    static void *(*real)(void *, size_t, int, int, int, off_t);

    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "mmap");
    if (counter && (flags & MAP_ANONYMOUS) && *fail_at >= 0 && ++*counter == *fail_at) {
        /* (the shim fails single mappings only) */
        ++*failures;
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return real(addr, len, prot, flags, fd, off);
}
