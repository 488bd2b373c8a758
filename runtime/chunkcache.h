/* Frame data-stack chunks without a system call each.
 *
 * A tasklet's Python frames live in a small root chunk of its own (384 bytes
 * or what its parked siblings' frames took, rootchunk.h: what a parked
 * tasklet keeps is its whole cost). A tasklet that
 * goes deeper gets a 16 KiB chunk from CPython, which takes it from the
 * arena allocator (mmap) and gives it back (munmap) as soon as the frame at
 * its base returns: a tasklet calling across that boundary in a loop would
 * make two system calls per call. The arena allocator is wrapped (once per
 * process) so that up to eight freed 16 KiB chunks are kept and handed out
 * again; every other arena request goes through unchanged.
 */
#ifndef CB_CHUNKCACHE_H
#define CB_CHUNKCACHE_H

#include <Python.h>

void cb_chunkcache_install(void);

#endif
