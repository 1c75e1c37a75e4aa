/*
 * lock.h - one sender at a time per database.
 *
 * `herald run` and `herald send` hold an flock(2) on "<database>.lock" for
 * as long as they send.  The kernel drops it when the process dies, however
 * it dies, so a SIGKILLed run never leaves a stale lock; the file keeps the
 * holder's pid only to name it in the message the second process prints.
 */
#ifndef HERALD_LOCK_H
#define HERALD_LOCK_H

#include "herald/herr.h"

struct herald_lock {
	int fd; /* -1 when not held */
};

/* Take the lock or fail at once: EX_TEMPFAIL "another herald run or send is
 * active (pid N)" when someone holds it, EX_CANTCREAT when the file cannot
 * be made. */
int lock_acquire(const char *db_path, struct herald_lock *l, struct herr *err);
void lock_release(struct herald_lock *l);

#endif
