/* libcarbon_vgshim.so: preloaded by tools/valgrind_suite.py (and the
 * valgrind.host_import test) into programs run under valgrind with CPython
 * 3.11. It replaces PYTHONMALLOC=malloc: the MEM and OBJ domains use malloc,
 * so memcheck sees every Python object, as with PYTHONMALLOC=malloc, with
 * one difference: the 4 bytes where an int keeps its first digit are
 * zeroed in every object allocation.
 *
 * Why. CPython 3.11's _PyLong_New leaves ob_digit[0] uninitialised, and a
 * result that normalizes to zero (int('0'), int.from_bytes(b'\0\0\0\0') in
 * every .pyc header check, 5 & 2, ...) is turned into the small int 0 by
 * get_small_int(size * ob_digit[0]): 0 times an undefined value is
 * undefined to memcheck, so the *pointer* to the small int 0 is "undefined",
 * and every later use of it (the eval loop, the GC traversing an object
 * that holds it, at exit too) is reported, far from the cause. That is
 * python/cpython#119022 (fixed in 3.12 by python/cpython#102510, which sets
 * ob_digit[0] = 0 in _PyLong_New; 3.11 takes security fixes only). Zeroing
 * that digit at allocation is what 3.12 does; everything else stays
 * undefined until written, as before.
 *
 * Without libpython in the process (pure C tests) it does nothing. It must
 * not be combined with PYTHONMALLOC, which would replace these allocators. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The stable ABI's allocator types (Include/cpython/pymem.h), declared here
 * so that the shim needs no Python headers and binds weakly. */
typedef struct {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t new_size);
    void (*free)(void *ctx, void *ptr);
} shim_allocator;

enum { SHIM_DOMAIN_MEM = 1, SHIM_DOMAIN_OBJ = 2 }; /* PYMEM_DOMAIN_MEM, _OBJ */

extern void PyMem_SetAllocator(int domain, shim_allocator *allocator) __attribute__((weak));

/* offsetof(PyLongObject, ob_digit) on 64-bit builds: PyObject_VAR_HEAD. */
#define DIGIT0_OFFSET 24
#define DIGIT0_SIZE 4

static void *mem_malloc(void *ctx, size_t size)
{
    (void)ctx;
    return malloc(size ? size : 1);
}

static void *mem_calloc(void *ctx, size_t nelem, size_t elsize)
{
    (void)ctx;
    return nelem && elsize ? calloc(nelem, elsize) : calloc(1, 1);
}

static void *mem_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    return realloc(ptr, size ? size : 1);
}

static void mem_free(void *ctx, void *ptr)
{
    (void)ctx;
    free(ptr);
}

static void *obj_malloc(void *ctx, size_t size)
{
    char *p = mem_malloc(ctx, size);

    if (p && size >= DIGIT0_OFFSET + DIGIT0_SIZE)
        memset(p + DIGIT0_OFFSET, 0, DIGIT0_SIZE);
    return p;
}

__attribute__((constructor)) static void shim_install(void)
{
    static shim_allocator mem = {NULL, mem_malloc, mem_calloc, mem_realloc, mem_free};
    static shim_allocator obj = {NULL, obj_malloc, mem_calloc, mem_realloc, mem_free};

    if (!PyMem_SetAllocator)
        return;
    PyMem_SetAllocator(SHIM_DOMAIN_MEM, &mem);
    PyMem_SetAllocator(SHIM_DOMAIN_OBJ, &obj);
}
