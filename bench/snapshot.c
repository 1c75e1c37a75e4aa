/*
 * snapshot.c - time one send's snapshot (issue 14's speed target): the
 * transaction issue_start_send() runs when a send starts - the merge-field
 * check against the audience, then ledger_snapshot() writing a pending
 * delivery for every person of the audience - on a database and issue that
 * bench/segment.sh prepared.  Built only with -DHERALD_BENCH=ON (target
 * bench_snapshot); no network, no SMTP: the send itself is not started.
 *
 *   bench_snapshot DB ISSUE_ID
 *
 * Prints one JSON line: recipients, wall seconds, peak RSS in KiB.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "herald/db.h"
#include "herald/herr.h"
#include "herald/issue.h"

static double
seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct issue is;
	struct herr err;
	struct rusage ru;
	sqlite3 *db;
	long long n = 0;
	double t0, t1;

	if (argc != 3) {
		fprintf(stderr, "usage: bench_snapshot DB ISSUE_ID\n");
		return 64;
	}
	herr_clear(&err);
	if (db_open(argv[1], DB_OPEN_EXISTING, 5000, &db, &err) < 0 || issue_get(db, atoll(argv[2]), &is, &err) < 0) {
		fprintf(stderr, "bench_snapshot: %s\n", err.msg);
		return 1;
	}
	t0 = seconds();
	if (issue_start_send(db, &is, NULL, NULL, &n, &err) < 0) {
		fprintf(stderr, "bench_snapshot: %s\n", err.msg);
		return 1;
	}
	t1 = seconds();
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"recipients\": %lld, \"wall_s\": %.3f, \"peak_rss_kb\": %ld}\n", n, t1 - t0,
	       ru.ru_maxrss);
	issue_clear(&is);
	db_close(db);
	return 0;
}
