/*
 * test_mailbox.c - reading returned mail (src/mailbox.c).
 *
 * The Maildir side in full, in a fresh temporary Maildir per test: every
 * file of new/ (and only new/: not tmp/, not cur/, not dot files, not
 * directories or symbolic links) is handed over in name order with its
 * exact bytes; it moves to cur/ with the ":2," info suffix only when the
 * callback returns 0 (invariant (1) of mailbox.c), stays in new/ on 1, and
 * -1 stops the run at once; messages over the size cap are never read nor
 * moved (invariant (5)); a missing directory or one that is not a Maildir
 * is EX_NOINPUT naming the path.
 *
 * The IMAP/POP3 side needs a server: tests/integration/test_mailbox_fetch.py
 * runs it against Dovecot.  Here only what needs no server: URL checks, and
 * a refused connection on loopback (EX_UNAVAILABLE, the URL as where, the
 * password in no message: invariant (4)).
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <dirent.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "herald/mailbox.h"

struct fixture {
	char dir[64];          /* the Maildir */
};

/* What the callback saw, and what it is to answer. */
struct seen {
	int    calls;
	char   names[8][256];  /* basenames, in call order */
	size_t lens[8];
	char   data[8][64];
	int    answer[8];      /* per call: 0, 1, -1 (sets err), -2 (-1, err untouched) */
};

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof *fx);
	char sub[128];
	const char *s[] = { "tmp", "new", "cur" };
	size_t i;

	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof fx->dir, "/tmp/herald-test-mailbox-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	for (i = 0; i < 3; i++) {
		snprintf(sub, sizeof sub, "%s/%s", fx->dir, s[i]);
		if (mkdir(sub, 0700) < 0)
			return -1;
	}
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static void
put(const struct fixture *fx, const char *sub, const char *name, const void *data, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s/%s", fx->dir, sub, name);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
put_text(const struct fixture *fx, const char *name, const char *text)
{
	put(fx, "new", name, text, strlen(text));
}

static int
exists(const struct fixture *fx, const char *sub, const char *name)
{
	char path[512];
	struct stat sb;

	snprintf(path, sizeof path, "%s/%s/%s", fx->dir, sub, name);
	return lstat(path, &sb) == 0;
}

static int
count(const struct fixture *fx, const char *sub)
{
	char path[512];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof path, "%s/%s", fx->dir, sub);
	assert_non_null(d = opendir(path));
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int
record(void *ctx, const char *name, const char *data, size_t len, struct herr *err)
{
	struct seen *s = ctx;
	const char *base = strrchr(name, '/');
	int i = s->calls++;

	assert_true(i < 8);
	snprintf(s->names[i], sizeof s->names[i], "%s", base ? base + 1 : name);
	s->lens[i] = len;
	memcpy(s->data[i], data, len < sizeof s->data[i] ? len : sizeof s->data[i]);
	assert_int_equal(data[len], '\0');     /* NUL-terminated for convenience */
	if (s->answer[i] == -1)
		return herr_set(err, EX_DATAERR, name, "cannot record it");
	if (s->answer[i] == -2)
		return -1;
	return s->answer[i];
}

static void
test_mailbox_maildir_each_name_order_and_move(void **state)
{
	struct fixture *fx = *state;
	struct seen s = { 0 };
	struct mailbox_stats st;
	struct herr err = { 0 };

	/* written out of order: the order handed over is the names' */
	put_text(fx, "1700000300.M3P1.host", "Subject: three\r\n\r\n3\r\n");
	put_text(fx, "1700000100.M1P1.host", "Subject: one\r\n\r\n1\r\n");
	put_text(fx, "1700000200.M2P1.host", "Subject: two\r\n\r\n2\r\n");
	assert_int_equal(mailbox_maildir_each(fx->dir, 0, record, &s, &st, &err), 0);
	assert_int_equal(s.calls, 3);
	assert_string_equal(s.names[0], "1700000100.M1P1.host");
	assert_string_equal(s.names[1], "1700000200.M2P1.host");
	assert_string_equal(s.names[2], "1700000300.M3P1.host");
	assert_int_equal(s.lens[0], strlen("Subject: one\r\n\r\n1\r\n"));
	assert_memory_equal(s.data[0], "Subject: one\r\n\r\n1\r\n", s.lens[0]);
	/* committed: moved to cur/ with the ":2," info (maildir.html) */
	assert_int_equal(count(fx, "new"), 0);
	assert_int_equal(count(fx, "cur"), 3);
	assert_true(exists(fx, "cur", "1700000100.M1P1.host:2,"));
	assert_true(exists(fx, "cur", "1700000200.M2P1.host:2,"));
	assert_true(exists(fx, "cur", "1700000300.M3P1.host:2,"));
	assert_int_equal(st.seen, 3);
	assert_int_equal(st.done, 3);
	assert_int_equal(st.left, 0);
	assert_int_equal(st.skipped_large, 0);
	assert_string_equal(st.note, "");

	/* a second run finds nothing: cur/ is not read */
	memset(&s, 0, sizeof s);
	assert_int_equal(mailbox_maildir_each(fx->dir, 0, record, &s, &st, &err), 0);
	assert_int_equal(s.calls, 0);
	assert_int_equal(st.seen, 0);
}

static void
test_mailbox_maildir_each_leave(void **state)
{
	struct fixture *fx = *state;
	struct seen s = { .answer = { 1, 0, 1 } };
	struct mailbox_stats st;
	struct herr err = { 0 };

	put_text(fx, "a", "A\r\n");
	put_text(fx, "b", "B\r\n");
	put_text(fx, "c", "C\r\n");
	assert_int_equal(mailbox_maildir_each(fx->dir, 0, record, &s, &st, &err), 0);
	assert_int_equal(s.calls, 3);
	assert_true(exists(fx, "new", "a"));
	assert_false(exists(fx, "cur", "a:2,"));
	assert_false(exists(fx, "new", "b"));
	assert_true(exists(fx, "cur", "b:2,"));
	assert_true(exists(fx, "new", "c"));
	assert_int_equal(st.seen, 3);
	assert_int_equal(st.done, 1);
	assert_int_equal(st.left, 2);

	/* what was left is offered again */
	memset(&s, 0, sizeof s);
	assert_int_equal(mailbox_maildir_each(fx->dir, 0, record, &s, &st, &err), 0);
	assert_int_equal(s.calls, 2);
	assert_string_equal(s.names[0], "a");
	assert_string_equal(s.names[1], "c");
	assert_int_equal(count(fx, "new"), 0);
}

static void
test_mailbox_maildir_each_stop(void **state)
{
	struct fixture *fx = *state;
	struct seen s = { .answer = { 0, -1, 0 } };
	struct mailbox_stats st;
	struct herr err = { 0 };

	put_text(fx, "a", "A\r\n");
	put_text(fx, "b", "B\r\n");
	put_text(fx, "c", "C\r\n");
	assert_int_equal(mailbox_maildir_each(fx->dir, 0, record, &s, &st, &err), -1);
	/* the callback's own error comes back untouched */
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(err.msg, "cannot record it");
	assert_non_null(strstr(err.where, "/new/b"));
	assert_int_equal(s.calls, 2);           /* c never offered */
	assert_true(exists(fx, "cur", "a:2,")); /* committed before the stop */
	assert_true(exists(fx, "new", "b"));
	assert_true(exists(fx, "new", "c"));
	assert_int_equal(st.seen, 2);
	assert_int_equal(st.done, 1);
	assert_int_equal(st.left, 0);
}

static void
test_mailbox_maildir_each_stop_without_error(void **state)
{
	struct fixture *fx = *state;
	struct seen s = { .answer = { -2 } };
	struct herr err = { 0 };

	put_text(fx, "a", "A\r\n");
	assert_int_equal(mailbox_maildir_each(fx->dir, 0, record, &s, NULL, &err), -1);
	assert_int_equal(err.code, EX_SOFTWARE);
	assert_non_null(strstr(err.msg, "new/a"));
	assert_true(exists(fx, "new", "a"));
}

static void
test_mailbox_maildir_each_size_cap(void **state)
{
	struct fixture *fx = *state;
	struct seen s = { 0 };
	struct mailbox_stats st;
	struct herr err = { 0 };
	char big[101];

	memset(big, 'x', sizeof big);
	put(fx, "new", "1-exact", big, 100);    /* == the cap: read */
	put(fx, "new", "2-over", big, 101);     /* one byte over: skipped */
	put_text(fx, "3-small", "small\r\n");
	assert_int_equal(mailbox_maildir_each(fx->dir, 100, record, &s, &st, &err), 0);
	assert_int_equal(s.calls, 2);
	assert_string_equal(s.names[0], "1-exact");
	assert_int_equal(s.lens[0], 100);
	assert_string_equal(s.names[1], "3-small");
	assert_true(exists(fx, "new", "2-over")); /* left in place, unread */
	assert_false(exists(fx, "new", "1-exact"));
	assert_int_equal(st.seen, 3);
	assert_int_equal(st.done, 2);
	assert_int_equal(st.skipped_large, 1);
	assert_non_null(strstr(st.note, "2-over"));
	assert_non_null(strstr(st.note, "101 bytes"));
}

static void
test_mailbox_maildir_each_exact_bytes(void **state)
{
	struct fixture *fx = *state;
	struct seen s = { 0 };
	struct herr err = { 0 };
	static const char bytes[] = "From: a\n\nNUL\0here\r\n\xff\xfe";

	put(fx, "new", "bin", bytes, sizeof bytes - 1);
	assert_int_equal(mailbox_maildir_each(fx->dir, 0, record, &s, NULL, &err), 0);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.lens[0], sizeof bytes - 1);
	assert_memory_equal(s.data[0], bytes, sizeof bytes - 1);
}

static void
test_mailbox_maildir_each_ignores_others(void **state)
{
	struct fixture *fx = *state;
	struct seen s = { 0 };
	struct mailbox_stats st;
	struct herr err = { 0 };
	char path[512], target[512];

	put(fx, "tmp", "being-delivered", "T\r\n", 3);  /* not finished: never read */
	put(fx, "cur", "old:2,S", "O\r\n", 3);          /* already seen */
	put_text(fx, ".hidden", "H\r\n");               /* dot files are not messages */
	snprintf(path, sizeof path, "%s/new/subdir", fx->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(target, sizeof target, "%s/tmp/being-delivered", fx->dir);
	snprintf(path, sizeof path, "%s/new/link", fx->dir);
	assert_int_equal(symlink(target, path), 0);
	put_text(fx, "real", "R\r\n");
	assert_int_equal(mailbox_maildir_each(fx->dir, 0, record, &s, &st, &err), 0);
	assert_int_equal(s.calls, 1);
	assert_string_equal(s.names[0], "real");
	assert_int_equal(st.seen, 1);
	assert_true(exists(fx, "tmp", "being-delivered"));
	assert_true(exists(fx, "cur", "old:2,S"));
	assert_true(exists(fx, "new", ".hidden"));
	assert_true(exists(fx, "new", "link"));
	assert_true(exists(fx, "new", "subdir"));
}

static void
test_mailbox_maildir_each_keeps_info(void **state)
{
	struct fixture *fx = *state;
	struct seen s = { 0 };
	struct herr err = { 0 };

	/* should not be in new/, but if it is, its flags are not doubled */
	put_text(fx, "m:2,S", "M\r\n");
	assert_int_equal(mailbox_maildir_each(fx->dir, 0, record, &s, NULL, &err), 0);
	assert_true(exists(fx, "cur", "m:2,S"));
	assert_false(exists(fx, "cur", "m:2,S:2,"));
}

static void
test_mailbox_maildir_each_missing_dir(void **state)
{
	struct fixture *fx = *state;
	struct seen s = { 0 };
	struct mailbox_stats st;
	struct herr err = { 0 };
	char path[512];

	snprintf(path, sizeof path, "%s/nonexistent", fx->dir);
	assert_int_equal(mailbox_maildir_each(path, 0, record, &s, &st, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_string_equal(err.where, path);
	assert_int_equal(s.calls, 0);
	assert_int_equal(st.seen, 0);
}

static void
test_mailbox_maildir_each_not_a_maildir(void **state)
{
	struct fixture *fx = *state;
	struct seen s = { 0 };
	struct herr err = { 0 };
	char path[512];

	/* new/ alone is not enough: a committed message needs cur/ */
	snprintf(path, sizeof path, "%s/cur", fx->dir);
	assert_int_equal(rmdir(path), 0);
	put_text(fx, "a", "A\r\n");
	assert_int_equal(mailbox_maildir_each(fx->dir, 0, record, &s, NULL, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_string_equal(err.where, fx->dir);
	assert_non_null(strstr(err.msg, "not a Maildir"));
	assert_int_equal(s.calls, 0);
	assert_true(exists(fx, "new", "a"));

	/* a plain file is not one either */
	herr_clear(&err);
	snprintf(path, sizeof path, "%s/new/a", fx->dir);
	assert_int_equal(mailbox_maildir_each(path, 0, record, &s, NULL, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
}

static void
test_mailbox_fetch_each_bad_urls(void **state)
{
	static const struct {
		const char *url;
		const char *user, *password;
		const char *msg;
	} cases[] = {
		{ "http://127.0.0.1/", "u", "p", "unsupported mailbox URL scheme 'http'" },
		{ "imaps://bob:hunter2@127.0.0.1/INBOX", "u", "p", "must not hold a user name" },
		{ "imaps://127.0.0.1/INBOX;UID=3", "u", "p", "folder only" },
		{ "imaps://127.0.0.1/INBOX?ALL", "u", "p", "query" },
		{ "pop3s://127.0.0.1/3", "u", "p", "pop3 mailbox URL has no path" },
		{ "", "u", "p", "no mailbox URL" },
		{ "imaps://127.0.0.1/INBOX", NULL, "p", "needs a username and a password" },
		{ "imaps://127.0.0.1/INBOX", "u", NULL, "needs a username and a password" },
	};
	struct seen s = { 0 };
	struct herr err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct mailbox_opts o = { cases[i].url, cases[i].user, cases[i].password,
		                          NULL, 5, 0 };

		herr_clear(&err);
		assert_int_equal(mailbox_fetch_each(&o, record, &s, NULL, &err), -1);
		assert_int_equal(err.code, EX_CONFIG);
		if (!strstr(err.msg, cases[i].msg))
			fail_msg("%s: got '%s'", cases[i].url, err.msg);
		/* (4) a password written into the URL is not repeated */
		assert_null(strstr(err.msg, "hunter2"));
		assert_null(strstr(err.where, "hunter2"));
	}
	assert_int_equal(s.calls, 0);
}

static void
test_mailbox_fetch_each_refused(void **state)
{
	struct sockaddr_in sa = { 0 };
	socklen_t salen = sizeof sa;
	struct seen s = { 0 };
	struct mailbox_stats st;
	struct herr err = { 0 };
	char url[64];
	const char *schemes[] = { "imaps", "imap", "pop3s", "pop3" };
	size_t i;
	int fd;

	(void)state;
	/* A port bound but not listening refuses connections, and nobody else
	 * can take it while we hold it. */
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);
	for (i = 0; i < 4; i++) {
		struct mailbox_opts o = { url, "bounces", "s3cret-Pa55", NULL, 5, 0 };

		snprintf(url, sizeof url, "%s://127.0.0.1:%u%s", schemes[i],
		         (unsigned)ntohs(sa.sin_port), schemes[i][0] == 'i' ? "/INBOX" : "");
		herr_clear(&err);
		assert_int_equal(mailbox_fetch_each(&o, record, &s, &st, &err), -1);
		assert_int_equal(err.code, EX_UNAVAILABLE);
		assert_string_equal(err.where, url);
		assert_non_null(strstr(err.msg, "cannot connect"));
		assert_null(strstr(err.msg, "s3cret"));
		assert_int_equal(st.seen, 0);
	}
	close(fd);
	assert_int_equal(s.calls, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mailbox_maildir_each_name_order_and_move,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_maildir_each_leave, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_maildir_each_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_maildir_each_stop_without_error,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_maildir_each_size_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_maildir_each_exact_bytes, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_maildir_each_ignores_others, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_maildir_each_keeps_info, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_maildir_each_missing_dir, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_maildir_each_not_a_maildir, setup,
		                                teardown),
		cmocka_unit_test(test_mailbox_fetch_each_bad_urls),
		cmocka_unit_test(test_mailbox_fetch_each_refused),
	};
	int rc;

	/* As herald's main does (mailbox.h): libcurl once, before the tests. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fputs("test_mailbox: cannot initialise libcurl\n", stderr);
		return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
