/*
 * test_ratelimit.c - relay limits (src/ratelimit.c) on a fake clock.
 *
 * Pacing spreads starts evenly; a sliding window never admits N+1 starts in
 * any span, including across what a fixed bucket would call a boundary and
 * with history loaded from an earlier run; throttling halves the rate and
 * recovers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>

#include <cmocka.h>

#include "herald/ratelimit.h"

/* Start as soon as allowed, `n` times, from t0; returns the last start. */
static double
run(struct ratelimit *rl, double t0, int n)
{
	double t = t0, d;
	int i;

	for (i = 0; i < n; i++) {
		while ((d = ratelimit_delay(rl, t)) > 0)
			t += d;
		ratelimit_take(rl, t);
	}
	return t;
}

static void
test_ratelimit_pacing(void **state)
{
	struct ratelimit rl;
	double last;

	(void)state;
	assert_int_equal(ratelimit_init(&rl, 50, 0, 0), 0);
	last = run(&rl, 1000, 200);
	/* 200 starts at 50/s: the first at 1000, the last 199/50 s later */
	assert_true(fabs(last - (1000 + 199.0 / 50)) < 1e-6);
	/* no burst after idling: after 10 s of nothing, still one per 20 ms */
	assert_true(ratelimit_delay(&rl, last + 10) == 0);
	ratelimit_take(&rl, last + 10);
	assert_true(fabs(ratelimit_delay(&rl, last + 10) - 0.02) < 1e-9);
	ratelimit_free(&rl);
}

static void
test_ratelimit_unlimited(void **state)
{
	struct ratelimit rl;
	int i;

	(void)state;
	assert_int_equal(ratelimit_init(&rl, 0, 0, 0), 0);
	for (i = 0; i < 10000; i++) {
		assert_true(ratelimit_delay(&rl, 5) == 0);
		ratelimit_take(&rl, 5);
	}
	ratelimit_free(&rl);
}

static void
test_ratelimit_window_never_n_plus_one(void **state)
{
	struct ratelimit rl;
	double times[301], t;
	int i, j, in_window;

	(void)state;
	assert_int_equal(ratelimit_init(&rl, 0, 100, 0), 0);
	/* 100 go at once, the 101st waits exactly until the first is an hour old */
	t = run(&rl, 0, 100);
	assert_true(t == 0);
	assert_true(fabs(ratelimit_delay(&rl, 10) - (3600 - 10)) < 1e-9);
	/* starts spread over 3 hours: every window of 3600 s holds <= 100 */
	ratelimit_free(&rl);
	assert_int_equal(ratelimit_init(&rl, 0, 100, 0), 0);
	t = 0;
	for (i = 0; i < 301; i++) {
		while (ratelimit_delay(&rl, t) > 0)
			t += ratelimit_delay(&rl, t);
		ratelimit_take(&rl, t);
		times[i] = t;
		t += 7.3; /* the sender would go faster than the window allows */
	}
	for (i = 0; i < 301; i++) {
		in_window = 0;
		for (j = i; j < 301 && times[j] < times[i] + 3600; j++)
			in_window++;
		assert_true(in_window <= 100);
	}
	ratelimit_free(&rl);
}

static void
test_ratelimit_history_from_earlier_run(void **state)
{
	struct ratelimit rl;
	int i;

	(void)state;
	assert_int_equal(ratelimit_init(&rl, 0, 100, 1000), 0);
	/* an earlier run sent 100 in the hour before 10000 */
	for (i = 0; i < 100; i++)
		ratelimit_history(&rl, 10000 - 3000 + i);
	assert_true(ratelimit_delay(&rl, 10000) > 0);
	/* allowed again once the oldest of those is an hour old */
	assert_true(fabs(ratelimit_delay(&rl, 10000) - (7000 + 3600 - 10000)) < 1e-9);
	assert_true(ratelimit_delay(&rl, 7000 + 3600) == 0);
	ratelimit_free(&rl);
}

static void
test_ratelimit_day_window(void **state)
{
	struct ratelimit rl;

	(void)state;
	assert_int_equal(ratelimit_init(&rl, 0, 0, 3), 0);
	run(&rl, 0, 3);
	assert_true(fabs(ratelimit_delay(&rl, 100) - (86400 - 100)) < 1e-9);
	ratelimit_free(&rl);
}

static void
test_ratelimit_throttle_halves_and_recovers(void **state)
{
	struct ratelimit rl;
	double t;

	(void)state;
	assert_int_equal(ratelimit_init(&rl, 100, 0, 0), 0);
	t = run(&rl, 0, 50);
	ratelimit_throttle(&rl, t);
	assert_true(fabs(ratelimit_current(&rl) - 50) < 1e-9);
	/* a second complaint in the same second does not halve again */
	ratelimit_throttle(&rl, t + 0.5);
	assert_true(fabs(ratelimit_current(&rl) - 50) < 1e-9);
	ratelimit_throttle(&rl, t + 1.5);
	assert_true(fabs(ratelimit_current(&rl) - 25) < 1e-9);
	/* quiet for 5 s: up by a quarter; long quiet: back to configured */
	ratelimit_take(&rl, t + 6.6);
	assert_true(fabs(ratelimit_current(&rl) - 31.25) < 1e-9);
	ratelimit_take(&rl, t + 600);
	assert_true(fabs(ratelimit_current(&rl) - 100) < 1e-9);
	ratelimit_free(&rl);
}

static void
test_ratelimit_throttle_without_configured_rate(void **state)
{
	struct ratelimit rl;
	double t;

	(void)state;
	assert_int_equal(ratelimit_init(&rl, 0, 0, 0), 0);
	/* 31 starts 10 ms apart: 100/s reached; throttled to 50/s */
	for (t = 0; t < 0.305; t += 0.01)
		ratelimit_take(&rl, t);
	ratelimit_throttle(&rl, t);
	assert_true(ratelimit_current(&rl) > 40 && ratelimit_current(&rl) < 60);
	assert_true(ratelimit_delay(&rl, t) > 0.015);
	ratelimit_free(&rl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ratelimit_pacing),
		cmocka_unit_test(test_ratelimit_unlimited),
		cmocka_unit_test(test_ratelimit_window_never_n_plus_one),
		cmocka_unit_test(test_ratelimit_history_from_earlier_run),
		cmocka_unit_test(test_ratelimit_day_window),
		cmocka_unit_test(test_ratelimit_throttle_halves_and_recovers),
		cmocka_unit_test(test_ratelimit_throttle_without_configured_rate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
