/*
 * test_config.c - reading herald.conf (src/config.c).
 *
 * The shipped example must load without problems; a broken file must report
 * every problem with its line, not just the first; defaults, relative
 * paths, continuation lines and the password sources behave as documented;
 * an unknown key or section names the one likely meant.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "herald/config.h"

static char dir[] = "/tmp/herald-config-XXXXXX";

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static const char *
write_conf(const char *name, const char *text)
{
	static char path[512];
	FILE *fp;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	return path;
}

#define MINIMAL \
	"[database]\npath = herald.db\n" \
	"[smtp]\nurl = smtp://127.0.0.1:2525\nstarttls = never\n" \
	"[sender]\nfrom = News <news@example.org>\npostal_address = 1 Street\n" \
	"[web]\nbase_url = https://news.example.org/\n"

static int
has_problem(const struct config *c, const char *needle)
{
	size_t i;

	for (i = 0; i < c->n_problems; i++)
		if (strstr(c->problems[i], needle))
			return 1;
	return 0;
}

static void
test_config_load_example(void **state)
{
	struct config c;
	struct herr err;
	int rc;

	(void)state;
	rc = config_load(HERALD_SOURCE_DIR "/config/herald.conf.example", &c, &err);
	if (rc < 0) {
		size_t i;
		for (i = 0; i < c.n_problems; i++)
			fprintf(stderr, "%s\n", c.problems[i]);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(c.n_problems, 0);
	assert_string_equal(c.db_path, "/var/lib/herald/herald.db");
	assert_int_equal(c.n_relays, 1);
	assert_int_equal(c.relays[0].starttls, CONFIG_STARTTLS_REQUIRED);
	assert_int_equal(c.relays[0].connections, 8);
	assert_string_equal(c.from_name, "What Works Centre");
	assert_string_equal(c.from.ascii, "news@example.org");
	/* the continuation line of postal_address is kept as a second line */
	assert_non_null(strchr(c.postal_address, '\n'));
	assert_string_equal(c.secret_file, "/var/lib/herald/herald.db.secret");
	assert_string_equal(c.message_id_domain, "example.org");
	config_free(&c);
}

static void
test_config_load_minimal_defaults(void **state)
{
	struct config c;
	struct herr err;
	char want[600];

	(void)state;
	assert_int_equal(config_load(write_conf("min.conf", MINIMAL), &c, &err), 0);
	snprintf(want, sizeof want, "%s/herald.db", dir);
	assert_string_equal(c.db_path, want);            /* relative to the file */
	assert_string_equal(c.base_url, "https://news.example.org"); /* slash trimmed */
	assert_int_equal(c.relays[0].timeout, 60);
	assert_int_equal(c.relays[0].connect_timeout, 15);
	assert_int_equal(c.n_retry, 5);
	assert_int_equal(c.retry[0], 300);
	assert_int_equal(c.retry[4], 43200);
	assert_int_equal(c.retry_window, 3 * 86400);
	assert_int_equal(c.db_busy_timeout_ms, 5000);
	assert_int_equal(c.relays[0].tls_verify, 1);
	assert_string_equal(c.lang, "en");
	assert_string_equal(c.return_addr.ascii, "news@example.org");
	assert_null(c.relays[0].username);
	config_free(&c);
}

static void
test_config_load_reports_every_problem_with_its_line(void **state)
{
	struct config c;
	struct herr err;
	const char *path;

	(void)state;
	path = write_conf("bad.conf",
	                  "[database]\n"                         /* 1 */
	                  "path = herald.db\n"                   /* 2 */
	                  "colour = blue\n"                      /* 3 unknown key */
	                  "[smtp]\n"                             /* 4 */
	                  "url = http://relay.example.org\n"     /* 5 bad scheme */
	                  "starttls = sometimes\n"               /* 6 bad enum */
	                  "timeout = 0\n"                        /* 7 out of range */
	                  "[sender]\n"                           /* 8 */
	                  "postal_address = 1 Street\n"          /* 9 */
	                  "postal_address = 2 Street\n"          /* 10 duplicate */
	                  "[web]\n"                              /* 11 */
	                  "base_url = ftp://x\n"                 /* 12 bad scheme */
	                  "[extras]\n"                           /* 13 unknown section */
	                  "x = 1\n");
	assert_int_equal(config_load(path, &c, &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	assert_true(has_problem(&c, "bad.conf:3: unknown key 'colour' in [database]"));
	assert_true(has_problem(&c, "bad.conf:5: 'url' must start with smtp:// or smtps://"));
	assert_true(has_problem(&c, "bad.conf:6: 'starttls' must be required, optional or never"));
	assert_true(has_problem(&c, "bad.conf:7: 'timeout' must be a whole number from 1 to 3600"));
	assert_true(has_problem(&c, "bad.conf:10: 'postal_address' in [sender] is already set on line 9"));
	assert_true(has_problem(&c, "bad.conf:12: 'base_url' must start with https:// or http://"));
	assert_true(has_problem(&c, "bad.conf:14: unknown section [extras]"));
	assert_true(has_problem(&c, "[sender] from is required"));
	assert_true(c.n_problems >= 8);
	config_free(&c);
}

/* Is some problem exactly `want`? */
static int
has_exact_problem(const struct config *c, const char *want)
{
	size_t i;

	for (i = 0; i < c->n_problems; i++)
		if (!strcmp(c->problems[i], want))
			return 1;
	return 0;
}

static void
test_config_load_unknown_names_suggest_known_ones(void **state)
{
	struct config c;
	struct herr err;
	char want[700];
	const char *path;

	(void)state;
	path = write_conf("typo.conf",
	                  "[database]\n"                         /* 1 */
	                  "path = herald.db\n"                   /* 2 */
	                  "busy-timeout = 100\n"                 /* 3 separator */
	                  "colour = blue\n"                      /* 4 nothing close */
	                  "[smtp]\n"                             /* 5 */
	                  "url = smtp://127.0.0.1:2525\n"        /* 6 */
	                  "startls = never\n"                    /* 7 */
	                  "[smtp.backup]\n"                      /* 8 */
	                  "url = smtp://127.0.0.1:2526\n"        /* 9 */
	                  "conections = 2\n"                     /* 10 */
	                  "from = x@example.org\n"               /* 11 another section's */
	                  "[sender]\n"                           /* 12 */
	                  "from = News <news@example.org>\n"     /* 13 */
	                  "postal_address = 1 Street\n"          /* 14 */
	                  "Reply-To = a@example.org\n"           /* 15 */
	                  "username = u\n"                       /* 16 two sections' */
	                  "[web]\n"                              /* 17 */
	                  "base_url = https://news.example.org\n"/* 18 */
	                  "[rendr]\n"                            /* 19 */
	                  "lang = en\n"                          /* 20 */
	                  "[smpt.third]\n"                       /* 21 */
	                  "url = smtp://127.0.0.1:2527\n"        /* 22 */
	                  "[extras]\n"                           /* 23 */
	                  "x = 1\n");                            /* 24 */
	assert_int_equal(config_load(path, &c, &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
#define WANT(line, text) do { \
		snprintf(want, sizeof want, "%s:%d: %s", path, line, text); \
		if (!has_exact_problem(&c, want)) \
			fail_msg("no problem '%s'", want); \
	} while (0)
	WANT(3, "unknown key 'busy-timeout' in [database]; did you mean 'busy_timeout'?");
	WANT(4, "unknown key 'colour' in [database]");
	WANT(7, "unknown key 'startls' in [smtp]; did you mean 'starttls'?");
	WANT(10, "unknown key 'conections' in [smtp.backup]; did you mean 'connections'?");
	WANT(11, "unknown key 'from' in [smtp.backup]; it belongs in [sender]");
	WANT(15, "unknown key 'Reply-To' in [sender]; did you mean 'reply_to'?");
	WANT(16, "unknown key 'username' in [sender]; it belongs in [smtp] or [bounce]");
	WANT(20, "unknown section [rendr]; did you mean [render]?");
	WANT(22, "unknown section [smpt.third]; did you mean [smtp.third]?");
	WANT(24, "unknown section [extras]");
#undef WANT
	assert_int_equal(c.n_problems, 10);
	config_free(&c);
}

static void
test_config_load_rejects_header_injection_in_from(void **state)
{
	struct config c;
	struct herr err;

	(void)state;
	/* inih strips the line at the newline, so injection arrives as a
	 * mailbox with trailing garbage or a control character */
	assert_int_equal(config_load(write_conf("inj.conf",
	        "[database]\npath = x.db\n[smtp]\nurl = smtp://127.0.0.1:25\n"
	        "[sender]\nfrom = News <news@example.org> Bcc: victim@example.com\n"
	        "postal_address = 1 Street\n[web]\nbase_url = https://x.example\n"),
	        &c, &err), -1);
	assert_true(has_problem(&c, "inj.conf:6: 'from'"));
	config_free(&c);
}

static void
test_config_smtp_password_sources(void **state)
{
	struct config c;
	struct herr err;
	char pw[64];
	const char *pwfile;
	FILE *fp;
	char text[1024];

	(void)state;
	/* env variable */
	assert_int_equal(config_load(write_conf("env.conf",
	        "[database]\npath = x.db\n[smtp]\nurl = smtp://127.0.0.1:25\nusername = u\n"
	        "password_env = HERALD_TEST_CONFIG_PW\n[sender]\nfrom = a@example.org\n"
	        "postal_address = 1 Street\n[web]\nbase_url = https://x.example\n"), &c, &err), 0);
	unsetenv("HERALD_TEST_CONFIG_PW");
	assert_int_equal(config_smtp_password(&c.relays[0], pw, sizeof pw, &err), -1);
	assert_non_null(strstr(err.msg, "HERALD_TEST_CONFIG_PW"));
	setenv("HERALD_TEST_CONFIG_PW", "s3cret", 1);
	assert_int_equal(config_smtp_password(&c.relays[0], pw, sizeof pw, &err), 1);
	assert_string_equal(pw, "s3cret");
	config_free(&c);
	/* file, trailing newline removed, 0644 warned about */
	snprintf(text, sizeof text, "%s/pw", dir);
	pwfile = text;
	assert_non_null(fp = fopen(pwfile, "w"));
	fputs("from-a-file\n", fp);
	fclose(fp);
	chmod(pwfile, 0644);
	assert_int_equal(config_load(write_conf("file.conf",
	        "[database]\npath = x.db\n[smtp]\nurl = smtp://127.0.0.1:25\nusername = u\n"
	        "password_file = pw\n[sender]\nfrom = a@example.org\n"
	        "postal_address = 1 Street\n[web]\nbase_url = https://x.example\n"), &c, &err), 0);
	assert_int_equal(c.n_warnings, 1);
	assert_non_null(strstr(c.warnings[0], "readable by others"));
	assert_int_equal(config_smtp_password(&c.relays[0], pw, sizeof pw, &err), 1);
	assert_string_equal(pw, "from-a-file");
	config_free(&c);
	unlink(pwfile);
	/* username without a password source is a problem */
	assert_int_equal(config_load(write_conf("nopw.conf",
	        "[database]\npath = x.db\n[smtp]\nurl = smtp://127.0.0.1:25\nusername = u\n"
	        "[sender]\nfrom = a@example.org\n"
	        "postal_address = 1 Street\n[web]\nbase_url = https://x.example\n"), &c, &err), -1);
	assert_true(has_problem(&c, "'username' needs password_env or password_file"));
	config_free(&c);
}

static void
test_config_locate_order(void **state)
{
	char out[512];
	struct herr err;

	(void)state;
	setenv("HERALD_CONFIG", "/from/env.conf", 1);
	assert_int_equal(config_locate("/explicit.conf", out, sizeof out, &err), 0);
	assert_string_equal(out, "/explicit.conf");
	assert_int_equal(config_locate(NULL, out, sizeof out, &err), 0);
	assert_string_equal(out, "/from/env.conf");
	unsetenv("HERALD_CONFIG");
	assert_int_equal(chdir(dir), 0);
	unlink("herald.conf");
	assert_int_equal(config_locate(NULL, out, sizeof out, &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	write_conf("herald.conf", MINIMAL);
	assert_int_equal(config_locate(NULL, out, sizeof out, &err), 0);
	assert_string_equal(out, "herald.conf");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_load_example),
		cmocka_unit_test(test_config_load_minimal_defaults),
		cmocka_unit_test(test_config_load_reports_every_problem_with_its_line),
		cmocka_unit_test(test_config_load_unknown_names_suggest_known_ones),
		cmocka_unit_test(test_config_load_rejects_header_injection_in_from),
		cmocka_unit_test(test_config_smtp_password_sources),
		cmocka_unit_test(test_config_locate_order),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
