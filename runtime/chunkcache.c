/* A small cache of CPython's frame data-stack chunks (chunkcache.h). */
#include "chunkcache.h"

/* CPython's DATA_STACK_CHUNK_SIZE (3.11-3.13): the size of every chunk it
 * pushes for frames that do not fit the current one, unless a single frame
 * needs more. pymalloc's arenas (1 MiB) are never this size. */
#define CHUNK_BYTES (16u * 1024u)
/* Chunks kept: 128 KiB at most. */
#define CACHE_MAX 8

static PyObjectArenaAllocator g_next; /* the allocator we wrap */
static void *g_cache[CACHE_MAX];
static int g_ncached;
static int g_installed;

/* Called with the GIL held, as every arena allocation is. */
static void *chunk_alloc(void *ctx, size_t size)
{
    (void)ctx;
    if (size == CHUNK_BYTES && g_ncached > 0)
        return g_cache[--g_ncached];
    return g_next.alloc(g_next.ctx, size);
}

static void chunk_free(void *ctx, void *p, size_t size)
{
    (void)ctx;
    if (size == CHUNK_BYTES && g_ncached < CACHE_MAX) {
        g_cache[g_ncached++] = p;
        return;
    }
    g_next.free(g_next.ctx, p, size);
}

void cb_chunkcache_install(void)
{
    PyObjectArenaAllocator mine = {NULL, chunk_alloc, chunk_free};

    if (g_installed)
        return;
    PyObject_GetArenaAllocator(&g_next);
    PyObject_SetArenaAllocator(&mine);
    g_installed = 1;
}
