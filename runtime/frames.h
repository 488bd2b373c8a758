/* Frame chains of suspended tasklets whose C stack is copied out (see
 * frames.c). */
#ifndef CB_FRAMES_H
#define CB_FRAMES_H

#include <stddef.h>

struct _PyInterpreterFrame;

typedef struct cb_relink {
    struct _PyInterpreterFrame **slot; /* a link that was rewritten */
    struct _PyInterpreterFrame *value; /* what it held */
} cb_relink;

/* Rewrites the chain starting at *head so that no link points into
 * [lo, hi); returns how many links that takes. With out == NULL it only
 * counts (nothing is written). */
size_t cb_frames_hide(struct _PyInterpreterFrame **head, const char *lo, const char *hi,
                      cb_relink *out);
/* Puts back what cb_frames_hide() rewrote. */
void cb_frames_unhide(const cb_relink *r, size_t n);

#endif
