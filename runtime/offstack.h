/* Nothing that another party reads or writes while a tasklet is suspended
 * lives on that tasklet's C stack (docs/design.md, "Nothing points into a
 * suspended tasklet's C stack"): a suspended tasklet's stack may be copied
 * out of its address and another's copied in (issue 8). The waiting records
 * of embed/ and the run loop's queue markers are therefore heap blocks.
 *
 * The check: every place that links a record into something others touch
 * while its owner waits (a timer heap, a poll's waiter list, a stream's
 * slot, a worker's joiners, the run queue) passes the record's address to
 * cb_offstack_check() first. It costs a thread-local load, two compares and
 * a count (tens of nanoseconds against a wait's microseconds), so it is
 * always on; a record found on the running tasklet's own stack is
 * a bug of ours and ends the process with a message naming it, before the
 * record can be corrupted by a copy.
 */
#ifndef CB_OFFSTACK_H
#define CB_OFFSTACK_H

/* 1 if `p` lies in the C stack of the calling thread's running tasklet, 0
 * otherwise (and for a thread's main tasklet, which runs on the thread's own
 * stack: that stack is never copied). Needs no GIL. */
int cb_stack_owns(const void *p);

/* Aborts with "carbon: internal error: <what> ..." if cb_stack_owns(p);
 * counts the checks made per `what` (a string literal naming the kind of
 * record). GIL held. */
void cb_offstack_check(const void *p, const char *what);

/* The i-th kind of record checked so far and its count; 0 past the last
 * (tests: each wait path checks its record). GIL held. */
int cb_offstack_checks(int i, const char **what, unsigned long long *n);

#endif
