/*
 * lock.c - the sender's lock file (see lock.h).
 */
#include "herald/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int
lock_acquire(const char *db_path, struct herald_lock *l, struct herr *err)
{
	char path[4200], pid[32];
	ssize_t n;
	int fd;

	l->fd = -1;
	snprintf(path, sizeof path, "%s.lock", db_path);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return herr_set(err, EX_CANTCREAT, path, "cannot open lock file: %s",
		                strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno, tries;

		/* The holder writes its pid just after taking the lock; give
		 * it a moment rather than print "pid ?". */
		for (tries = 0; tries < 10; tries++) {
			n = pread(fd, pid, sizeof pid - 1, 0);
			if (n > 0)
				break;
			usleep(10000);
		}
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		close(fd);
		if (e == EWOULDBLOCK)
			return herr_set(err, EX_TEMPFAIL, NULL,
			                "another herald run or send is active (pid %s); not sending",
			                pid[0] ? pid : "?");
		return herr_set(err, EX_CANTCREAT, path, "cannot lock: %s", strerror(e));
	}
	n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		/* the pid is only for messages; the lock itself is held */
	}
	l->fd = fd;
	return 0;
}

void
lock_release(struct herald_lock *l)
{
	if (l->fd >= 0) {
		/* Truncate before unlocking so a reader never sees our stale pid. */
		if (ftruncate(l->fd, 0) < 0) {
			/* nothing to do: the next holder overwrites it */
		}
		close(l->fd);
		l->fd = -1;
	}
}
