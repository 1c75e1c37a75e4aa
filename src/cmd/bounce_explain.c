/*
 * bounce_explain.c - herald bounce --explain FILE...: what each message means.
 *
 * Reads each FILE (one message, any line ends) with bounce_parse() and
 * prints one JSON object per line on stdout for every recipient the
 * message speaks of:
 *
 *   {"file","recipient","status","reply_code","reason","class",
 *    "diagnostic","action","feedback_type","shape","why"}
 *
 * "why" is the classifier's account of how class and reason were decided
 * (bounce_recipient.why).  With --why (before the files) it is also
 * printed for people, under each recipient's line, as "    why: ...": a
 * line that is not JSON, so a program reading the output leaves --why off
 * and takes "why" from the object.
 *
 * A message with no recipient herald understands (not a bounce, or a
 * shape it cannot read) still gets one line, so every FILE shows up in
 * the output: recipient "", reason "undefined", class "none", shape what
 * it was read as ("none" when nothing matched).  A file that cannot be
 * read, or whose bytes are not a message, is reported on stderr
 * ("herald: bounce --explain: 'FILE': ...") and skipped; after the last
 * file the exit status is EX_DATAERR (65) if any was skipped, else 0.
 * Needs no configuration and no database; changes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "herald/bounce.h"
#include "herald/cmd.h"

/* A bounce larger than this is not a bounce (the returned message is cut
 * by every MTA long before). */
#define EXPLAIN_MAX_FILE (64L * 1024 * 1024)

static int
read_file(const char *path, char **data, size_t *len, struct herr *err)
{
	FILE *fp = fopen(path, "rb");
	char *p = NULL;
	size_t n = 0, cap = 0;

	if (fp == NULL)
		return herr_set(err, EX_NOINPUT, path, "cannot open: %s", strerror(errno));
	for (;;) {
		size_t got;

		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 65536;
			char *np;

			if (ncap > (size_t)EXPLAIN_MAX_FILE + 1)
				ncap = (size_t)EXPLAIN_MAX_FILE + 1;
			if (ncap <= cap) {
				free(p);
				fclose(fp);
				return herr_set(err, EX_DATAERR, path, "larger than %ld bytes",
				    EXPLAIN_MAX_FILE);
			}
			np = realloc(p, ncap);
			if (np == NULL) {
				free(p);
				fclose(fp);
				return herr_set(err, EX_OSERR, path, "out of memory");
			}
			p = np;
			cap = ncap;
		}
		got = fread(p + n, 1, cap - n, fp);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(fp)) {
		free(p);
		fclose(fp);
		return herr_set(err, EX_IOERR, path, "cannot read: %s", strerror(errno));
	}
	fclose(fp);
	*data = p;
	*len = n;
	return 0;
}

static int
print_line(const char *file, const struct bounce_report *r, const struct bounce_recipient *b,
           int why)
{
	json_t *o;
	char *s;

	o = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
	    "file", file,
	    "recipient", b != NULL ? b->recipient : "",
	    "status", b != NULL ? b->status : "",
	    "reply_code", b != NULL ? b->reply_code : 0,
	    "reason", b != NULL ? b->reason : "undefined",
	    "class", b != NULL ? bounce_class_name(b->cls) : "none",
	    "diagnostic", b != NULL ? b->diagnostic : "",
	    "action", b != NULL ? b->action : "",
	    "feedback_type", b != NULL ? b->feedback_type : "",
	    "shape", r->shape != NULL ? r->shape : "none",
	    "why", b != NULL ? b->why : "");
	if (o == NULL)
		return -1;
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (s == NULL)
		return -1;
	puts(s);
	free(s);
	/* Only a recipient has a why; a message that named none says so in
	 * its class ("none"). */
	if (why && b != NULL)
		printf("    why: %s\n", b->why);
	return 0;
}

int
cmd_bounce_explain(int argc, char **argv, struct cmd_env *env)
{
	int i = 0, bad = 0, why = 0;

	if (argc > 0 && strcmp(argv[0], "--why") == 0) {
		why = 1;
		i++;
	}
	for (; i < argc; i++) {
		struct bounce_report *r = NULL;
		struct herr e;
		char *data = NULL;
		size_t len = 0, k;
		const char *file = argv[i];
		/* JSON wants UTF-8: a file name that is not is shown escaped. */
		char shown[1024];

		herr_clear(&e);
		herr_show(shown, sizeof(shown), file);
		if (read_file(file, &data, &len, &e) < 0 ||
		    bounce_parse(data, len, NULL, &r, &e) < 0) {
			fprintf(stderr, "herald: bounce --explain: '%s': %s\n", shown, e.msg);
			free(data);
			bad = 1;
			continue;
		}
		free(data);
		if (r->n_recipients == 0) {
			if (print_line(shown, r, NULL, why) < 0)
				goto oom;
		}
		for (k = 0; k < r->n_recipients; k++)
			if (print_line(shown, r, &r->recipients[k], why) < 0)
				goto oom;
		bounce_report_free(r);
		continue;
oom:
		bounce_report_free(r);
		return herr_set(&env->err, EX_OSERR, "bounce --explain", "out of memory");
	}
	if (fflush(stdout) != 0)
		return herr_set(&env->err, EX_IOERR, "bounce --explain", "cannot write: %s",
		    strerror(errno));
	return bad ? EX_DATAERR : 0;
}
