/*
 * bounce.c - herald bounce: read returned mail and act on it.
 *
 *   herald bounce                  one message on stdin (an MTA pipe)
 *   herald bounce --maildir DIR    every message in DIR/new
 *   herald bounce --fetch          the [bounce] mailbox (IMAP or POP3)
 *   herald bounce --explain FILE.. what each message means; changes nothing
 *                                  (bounce_explain.c; --why adds the why line)
 *   herald bounce unmatched        failures kept with no subscriber, newest
 *                                  first, with a guess of whom; changes nothing
 *
 * Exit status on stdin follows what an MTA pipe expects (sendmail's
 * sysexits convention, Postfix pipe(8) and local(8), Exim's pipe transport):
 * 0 when the message was dealt with, including when it was not a bounce
 * herald understands (it is logged and recorded; a non-zero status would
 * make the MTA bounce the bounce); 75 (EX_TEMPFAIL) for anything that may
 * work later - a busy database, a config or permission problem, no
 * memory - so the MTA keeps the message and tries again.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herald/log.h"
#include "herald/bounce.h"
#include "herald/bouncelog.h"
#include "herald/cmd.h"
#include "herald/config.h"
#include "herald/mailbox.h"
#include "herald/token.h"

const char cmd_bounce_usage[] =
	"usage: herald bounce [--envelope-to ADDR]   (one message on stdin)\n"
	"       herald bounce --maildir DIR\n"
	"       herald bounce --fetch\n"
	"       herald bounce --explain [--why] FILE...\n"
	"       herald bounce unmatched [--json] [--limit N]\n";

/* Larger than any bounce worth reading (they quote at most the original's
 * headers); still read whole, so a 10 MB bounce is fine. */
#define BOUNCE_MESSAGE_MAX (64u << 20)

struct bounce_run {
	struct cmd_env          *env;
	struct token_key         key;
	struct bouncelog_policy  policy;
	const char              *envelope_to;
	long messages, duplicates, bounces, hard, soft, complaints, ignored, unsubscribes;
};

/* Parse, record, log one message.  0 when committed (also for a message
 * that is not a bounce: it is recorded as 'unknown'), -1 with err set. */
static int
ingest(struct bounce_run *b, const char *data, size_t len, const char *source, struct herr *err)
{
	struct bounce_report *r = NULL, empty;
	struct bouncelog_outcome out;
	struct herr perr;
	int rc;

	herr_clear(&perr);
	if (bounce_parse(data, len, b->envelope_to, &r, &perr) < 0) {
		if (perr.code != EX_DATAERR) {
			*err = perr;
			return -1;
		}
		/* Not a message at all: remember its digest (the same one
		 * bounce_parse() gives a message) so it is not read again, and
		 * say why. */
		memset(&empty, 0, sizeof empty);
		empty.shape = "";
		if (bounce_digest(data, len, empty.sha256, err) < 0)
			return -1;
		log_event(LOG_WARNING, "bounce.not_mail", LOG_FIELDS(LOG_S("source", source)),
		          "herald bounce: %s: not a mail message (%s); recorded, ignored", source,
		          perr.msg);
		r = NULL;
		rc = bouncelog_ingest(b->env->db, &b->key, &b->policy, &empty, source, &out, err);
	} else
		rc = bouncelog_ingest(b->env->db, &b->key, &b->policy, r, source, &out, err);
	bounce_report_free(r);
	if (rc < 0)
		return -1;
	b->messages++;
	if (out.duplicate)
		b->duplicates++;
	else {
		b->hard += out.hard;
		b->soft += out.soft;
		b->complaints += out.complaints;
		b->bounces += out.hard + out.soft;
		b->unsubscribes += !strcmp(out.kind, "unsubscribe");
		if (!out.hard && !out.soft && !out.complaints && strcmp(out.kind, "unsubscribe"))
			b->ignored++;
	}
	if (!b->env->quiet)
		log_event(LOG_INFO, "bounce.read", LOG_FIELDS(LOG_S("source", source),
		          LOG_S("kind", out.kind), LOG_I("hard", out.hard), LOG_I("soft", out.soft),
		          LOG_I("complaints", out.complaints), LOG_I("duplicate", out.duplicate),
		          LOG_I("marked", out.marked)),
		          "herald bounce: %s: %s%s%s", source, out.summary,
		          out.marked ? "; subscriber marked " : "",
		          out.marked ? (out.complaints ? "complained" : "bounced") : "");
	return 0;
}

/* stdin: whatever failed may work later; never make the MTA bounce a
 * bounce.  Says what failed and returns 75. */
static int
tempfail(struct cmd_env *env)
{
	log_event(LOG_ERR, "bounce.tempfail", LOG_FIELDS(LOG_S("where", env->err.where),
	          LOG_I("code", EX_TEMPFAIL)),
	          "herald bounce: %s%s%s (exit 75: the MTA will retry)",
	          env->err.where[0] ? env->err.where : "", env->err.where[0] ? ": " : "",
	          env->err.msg);
	return EX_TEMPFAIL;
}

static int
on_mailbox_message(void *ctx, const char *name, const char *data, size_t len, struct herr *err)
{
	return ingest(ctx, data, len, name, err);
}

static void
print_summary(const struct bounce_run *b, const char *verb)
{
	printf("%s %ld message%s: %ld bounce%s (%ld hard, %ld soft), %ld complaint%s, "
	       "%ld unsubscribe%s, %ld ignored, %ld duplicate%s\n",
	       verb, b->messages, b->messages == 1 ? "" : "s", b->bounces,
	       b->bounces == 1 ? "" : "s", b->hard, b->soft, b->complaints,
	       b->complaints == 1 ? "" : "s", b->unsubscribes, b->unsubscribes == 1 ? "" : "s",
	       b->ignored, b->duplicates, b->duplicates == 1 ? "" : "s");
}

/* Read all of stdin, up to BOUNCE_MESSAGE_MAX. */
static int
read_stdin(char **out, size_t *len, int *too_big, struct herr *err)
{
	size_t cap = 64 * 1024, n = 0;
	char *p = malloc(cap), *q;
	size_t got;

	*too_big = 0;
	if (!p)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	while ((got = fread(p + n, 1, cap - n, stdin)) > 0) {
		n += got;
		if (n == cap) {
			if (cap >= BOUNCE_MESSAGE_MAX) {
				*too_big = 1;
				break;
			}
			cap *= 2;
			if (!(q = realloc(p, cap))) {
				free(p);
				return herr_set(err, EX_OSERR, NULL, "out of memory");
			}
			p = q;
		}
	}
	if (ferror(stdin)) {
		free(p);
		return herr_set(err, EX_IOERR, "stdin", "read: %s", strerror(errno));
	}
	*out = p;
	*len = n;
	return 0;
}

/* Where `herald bounce unmatched` puts each row: a JSON array, or text. */
struct unmatched_out {
	struct cmd_json_rows json;  /* --json: rows as they come (cmd.h) */
	long    n;
};

static int
print_unmatched(void *ctx, const struct bouncelog_unmatched *u)
{
	struct unmatched_out *o = ctx;
	char t[32], code[8] = "";

	o->n++;
	if (o->json.on) {
		/* I: jansson's json_int_t (long long); the ids are 64-bit. */
		json_t *j = json_pack("{s:I, s:I, s:o, s:o, s:s, s:s, s:s, s:s, s:s, s:s, s:i, "
		                      "s:s, s:s, s:s, s:s, s:s}",
		                      "id", (json_int_t)u->id, "at", (json_int_t)u->at,
		                      "issue_id", u->issue_id ? json_integer(u->issue_id) : json_null(),
		                      "inbound_id",
		                      u->inbound_id ? json_integer(u->inbound_id) : json_null(),
		                      "inbound_source", u->inbound_source, "message_id", u->message_id,
		                      "source", u->source, "class", u->cls, "reason", u->reason,
		                      "status", u->status, "reply_code", u->reply_code,
		                      "diagnostic", u->diagnostic, "recipient", u->recipient,
		                      "guess", u->guess, "guess_from", u->guess_from, "why", u->why);

		return cmd_json_rows_add(&o->json, j);
	}
	if (u->reply_code)
		snprintf(code, sizeof code, "%d ", u->reply_code);
	printf("%s  %-9s %-15s %s%-7s %s", cmd_time(u->at, t, sizeof t), u->cls, u->reason, code,
	       u->status[0] ? u->status : "-", u->guess[0] ? u->guess : "(nobody named)");
	if (u->guess[0] && strcmp(u->guess_from, "recipient"))
		printf(" (%s)", u->guess_from);
	putchar('\n');
	printf("    from %s", u->inbound_source[0] ? u->inbound_source : "-");
	if (u->message_id[0])
		printf(", message <%s>", u->message_id);
	if (u->issue_id)
		printf(", issue #%lld", u->issue_id);
	putchar('\n');
	if (u->diagnostic[0])
		printf("    %s\n", u->diagnostic);
	if (u->why[0])
		printf("    why: %s\n", u->why);
	return 0;
}

/* herald bounce unmatched [--json] [--limit N]: reads only. */
static int
unmatched(int argc, char **argv, struct cmd_env *env)
{
	struct unmatched_out o;
	long limit = 50;
	int i, json = 0, rc;
	char *end;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "--limit") && i + 1 < argc) {
			errno = 0;
			limit = strtol(argv[++i], &end, 10);
			if (errno || end == argv[i] || *end || limit < 1 || limit > 100000)
				return cmd_usage_error(cmd_bounce_usage,
				                       "bounce unmatched: --limit takes 1 to 100000, not '%s'",
				                       argv[i]);
		} else
			return cmd_usage_error(cmd_bounce_usage, "bounce unmatched: unexpected '%s'",
			                       argv[i]);
	}
	if (cmd_setup(env, CMD_NEED_CONFIG | CMD_NEED_DB) < 0)
		return -1;
	memset(&o, 0, sizeof o);
	o.json.on = json;
	o.json.err = &env->err;
	rc = bouncelog_each_unmatched(env->db, (int)limit, print_unmatched, &o, &env->err);
	if (rc < 0)
		return -1;
	if (o.json.on)
		return cmd_json_rows_end(&o.json);
	if (!o.n)
		printf("no unmatched bounces\n");
	else if (!env->quiet)
		printf("%ld unmatched bounce%s%s\n", o.n, o.n == 1 ? "" : "s",
		       o.n == limit ? " (--limit reached; there may be more)" : "");
	return 0;
}

static int
fetch(struct bounce_run *b)
{
	struct cmd_env *env = b->env;
	struct mailbox_opts o;
	struct mailbox_stats st;
	char password[512];
	int rc;

	if (!env->cfg.bounce_mailbox)
		return herr_set(&env->err, EX_CONFIG, env->config_path,
		                "bounce --fetch needs [bounce] mailbox, username and password_file");
	if (config_read_password_file(env->cfg.bounce_password_file, password,
	                              sizeof password, &env->err) < 0)
		return -1;
	memset(&o, 0, sizeof o);
	o.url = env->cfg.bounce_mailbox;
	o.username = env->cfg.bounce_username;
	o.password = password;
	o.ca_file = env->cfg.bounce_ca_file;
	o.timeout_s = 60;
	o.max_message = BOUNCE_MESSAGE_MAX;
	memset(&st, 0, sizeof st);
	rc = mailbox_fetch_each(&o, on_mailbox_message, b, &st, &env->err);
	explicit_bzero(password, sizeof password);
	if (st.skipped_large)
		log_event(LOG_WARNING, "bounce.too_large",
		          LOG_FIELDS(LOG_I("messages", (long long)st.skipped_large)),
		          "herald bounce: %zu message%s larger than %u MB left in the mailbox",
		          st.skipped_large, st.skipped_large == 1 ? "" : "s", BOUNCE_MESSAGE_MAX >> 20);
	if (!env->quiet || rc < 0)
		print_summary(b, "fetched");
	return rc < 0 ? -1 : 0;
}

int
cmd_bounce(int argc, char **argv, struct cmd_env *env)
{
	struct bounce_run b;
	const char *maildir = NULL;
	int do_fetch = 0, i, rc, too_big;
	char *data = NULL;
	size_t len = 0;

	if (argc > 1 && strcmp(argv[1], "--explain") == 0) {
		/* --why, the only option, comes before the files */
		if (argc < 3 || (argc == 3 && strcmp(argv[2], "--why") == 0))
			return cmd_usage_error(cmd_bounce_usage, "bounce --explain: no FILE given");
		return cmd_bounce_explain(argc - 2, argv + 2, env);
	}
	if (argc > 1 && strcmp(argv[1], "unmatched") == 0)
		return unmatched(argc - 1, argv + 1, env);
	memset(&b, 0, sizeof b);
	b.env = env;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--maildir") && i + 1 < argc)
			maildir = argv[++i];
		else if (!strcmp(argv[i], "--fetch"))
			do_fetch = 1;
		else if (!strcmp(argv[i], "--envelope-to") && i + 1 < argc)
			b.envelope_to = argv[++i];
		else
			return cmd_usage_error(cmd_bounce_usage, "bounce: unexpected '%s'", argv[i]);
	}
	if (maildir && do_fetch)
		return cmd_usage_error(cmd_bounce_usage, "bounce: --maildir or --fetch, not both");
	/* Postfix local(8)/pipe(8) and Exim's pipe transport say whom the
	 * message was for: the VERP address with the token. */
	if (!b.envelope_to && !maildir && !do_fetch) {
		b.envelope_to = getenv("ORIGINAL_RECIPIENT");
		if (!b.envelope_to || !*b.envelope_to)
			b.envelope_to = getenv("RECIPIENT");
	}
	/* Set up here, not in cli.c: --explain needed neither config nor
	 * database, and reading stdin for an MTA a failure must be 75 - 78 for
	 * a config problem or 66 for a missing database would make the MTA
	 * bounce the bounce; this way it keeps the message until fixed. */
	if (cmd_setup(env, CMD_NEED_CONFIG | CMD_NEED_DB) < 0)
		return maildir || do_fetch ? -1 : tempfail(env);
	b.policy.soft_limit = env->cfg.bounce_soft_limit;
	b.policy.soft_window = env->cfg.bounce_soft_window;
	if (token_key_load(env->cfg.secret_file, &b.key, &env->err) < 0)
		return maildir || do_fetch ? -1 : tempfail(env);

	if (do_fetch)
		return fetch(&b);
	if (maildir) {
		struct mailbox_stats st;

		memset(&st, 0, sizeof st);
		rc = mailbox_maildir_each(maildir, BOUNCE_MESSAGE_MAX, on_mailbox_message, &b, &st,
		                          &env->err);
		if (!env->quiet || rc < 0)
			print_summary(&b, "read");
		return rc < 0 ? -1 : 0;
	}

	/* stdin: one message from an MTA.  A terminal is a person who forgot
	 * the mode, not an MTA: say so rather than wait. */
	if (isatty(STDIN_FILENO))
		return cmd_usage_error(cmd_bounce_usage,
		                       "bounce: reads one message on stdin (from an MTA pipe); "
		                       "give it a message, --maildir, --fetch or --explain");
	if (read_stdin(&data, &len, &too_big, &env->err) < 0)
		return tempfail(env);
	if (too_big) {
		/* Keep nothing back: the MTA's own size limit should have caught it. */
		log_event(LOG_WARNING, "bounce.too_large", LOG_FIELDS(LOG_I("messages", 1)),
		          "herald bounce: stdin: message larger than %u MB; ignored",
		          BOUNCE_MESSAGE_MAX >> 20);
		free(data);
		return 0;
	}
	rc = ingest(&b, data, len, "stdin", &env->err);
	free(data);
	explicit_bzero(&b.key, sizeof b.key);
	return rc == 0 ? 0 : tempfail(env);
}
