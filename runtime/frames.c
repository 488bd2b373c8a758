/* Hiding the interpreter frames that lie on a C stack from a frame chain
 * (frames.h). Compiled as core code: it reads _PyInterpreterFrame.previous.
 *
 * 3.12 and 3.13 put an entry frame (owner FRAME_OWNED_BY_CSTACK) on the C
 * stack of every call into the eval loop and link it into the `previous`
 * chain. When a suspended tasklet's C stack is copied out of its region, the
 * region's memory belongs to another tasklet, so the chain must not lead
 * there: each link that points into [lo, hi) is made to skip to the next
 * frame outside it (entry frames are never shown: CPython skips them too),
 * and the original value is recorded to be put back when the stack is copied
 * in again (greenlet does the same in expose_frames). On 3.11 no frame lives
 * on the C stack and nothing is ever rewritten. */
#define Py_BUILD_CORE_MODULE 1
#include <Python.h>
#include <internal/pycore_frame.h>

#include "frames.h"

#if PY_VERSION_HEX >= 0x030C0000
static int inside(const struct _PyInterpreterFrame *f, const char *lo, const char *hi)
{
    return (const char *)f >= lo && (const char *)f < hi;
}
#endif

size_t cb_frames_hide(struct _PyInterpreterFrame **head, const char *lo, const char *hi,
                      cb_relink *out)
{
#if PY_VERSION_HEX < 0x030C0000
    /* Nothing to hide on 3.11 (above): walking would read a parked
     * tasklet's frames for nothing on every copy out. */
    (void)head;
    (void)lo;
    (void)hi;
    (void)out;
    return 0;
#else
    struct _PyInterpreterFrame **slot = head;
    size_t n = 0;

    while (*slot) {
        struct _PyInterpreterFrame *f = *slot;
        if (inside(f, lo, hi)) {
            struct _PyInterpreterFrame *g = f;
            while (g && inside(g, lo, hi))
                g = g->previous;
            if (out) {
                out[n].slot = slot;
                out[n].value = f;
                *slot = g;
            }
            n++;
            if (!g)
                break;
            f = g;
        }
        slot = &f->previous;
    }
    return n;
#endif
}

void cb_frames_unhide(const cb_relink *r, size_t n)
{
    while (n-- > 0)
        *r[n].slot = r[n].value;
}
