/*
 * webhook.c - `herald webhook add|ls|rm|failures|retry`: outgoing webhooks
 * (webhook.h).  Delivery itself is `herald serve`'s and `herald run`'s.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/cmd.h"
#include "herald/db.h"
#include "herald/webhook.h"

const char cmd_webhook_usage[] =
	"usage: herald webhook add URL --events EVENT[,EVENT...] [--secret-file FILE]\n"
	"       herald webhook ls [--json]\n"
	"       herald webhook rm ID\n"
	"       herald webhook failures [--json]\n"
	"       herald webhook retry [ID]\n"
	"\n"
	"Each event herald records is POSTed as JSON to the webhooks that asked\n"
	"for its kind, signed with HMAC-SHA256 (header Herald-Signature:\n"
	"t=TIME,v1=HEX over 'TIME.' and the body), from an outbox written with the\n"
	"event: 'herald serve' delivers every second, 'herald run' after its\n"
	"sends; a receiver that is down gets retries ([webhooks] retry) until\n"
	"[webhooks] give_up, then the delivery is listed by 'failures' and 'retry'\n"
	"queues it again.  EVENTs: subscribe, confirm, unsubscribe, bounce,\n"
	"complaint, click, open.  Without --secret-file a secret is made and\n"
	"printed once.\n";

/* The secret in FILE: its first line, trimmed. */
static int
read_secret(const char *path, char *out, size_t size, struct herr *err)
{
	FILE *fp = fopen(path, "r");
	size_t n;

	if (!fp)
		return herr_set(err, EX_NOINPUT, path, "cannot read the secret file");
	if (!fgets(out, (int)size, fp))
		out[0] = '\0';
	fclose(fp);
	n = strcspn(out, "\r\n");
	out[n] = '\0';
	while (n && (out[n - 1] == ' ' || out[n - 1] == '\t'))
		out[--n] = '\0';
	return 0;
}

static int
webhook_add_cmd(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "events", required_argument, NULL, 'e' },
		{ "secret-file", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *events = NULL, *secret_file = NULL;
	char canon[96], secret[WEBHOOK_SECRET_MAX + 2], made[65];
	long long id;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'e')
			events = optarg;
		else if (ch == 's')
			secret_file = optarg;
		else
			return cmd_usage(cmd_webhook_usage, 1);
	}
	if (optind + 1 != argc)
		return cmd_usage_error(cmd_webhook_usage, "webhook add needs exactly one URL");
	if (!events)
		return cmd_usage_error(cmd_webhook_usage, "webhook add needs --events");
	if (webhook_events_parse(events, canon, sizeof canon, &env->err) < 0)
		return -1;
	if (secret_file && read_secret(secret_file, secret, sizeof secret, &env->err) < 0)
		return -1;
	made[0] = '\0';
	if (webhook_add(env->db, argv[optind], canon, secret_file ? secret : NULL, made, db_now(),
	                &id, &env->err) < 0)
		return -1;
	if (!env->quiet)
		printf("added webhook %lld: %s for %s\n", id, argv[optind], canon);
	if (made[0])
		printf("secret: %s\n", made);
	return 0;
}

struct ls_ctx {
	struct cmd_json_rows json;  /* --json: rows as they come (cmd.h) */
	int     n;
};

static int
print_hook(void *ctx, const struct webhook_info *w)
{
	struct ls_ctx *c = ctx;

	if (c->json.on)
		return cmd_json_rows_add(&c->json, json_pack("{s:I, s:s, s:s, s:I, s:I, s:I, s:I}",
		        "id", (json_int_t)w->id, "url", w->url, "events", w->events,
		        "created_at", (json_int_t)w->created_at, "pending", (json_int_t)w->pending,
		        "delivered", (json_int_t)w->delivered, "failed", (json_int_t)w->failed));
	if (c->n++ == 0)
		printf("%4s %8s %9s %6s  %-40s %s\n", "ID", "PENDING", "DELIVERED", "FAILED", "URL",
		       "EVENTS");
	printf("%4lld %8lld %9lld %6lld  %-40s %s\n", w->id, w->pending, w->delivered, w->failed,
	       w->url, w->events);
	return 0;
}

static int
print_failure(void *ctx, const struct webhook_failure *f)
{
	struct ls_ctx *c = ctx;
	char t[32];

	if (c->json.on)
		return cmd_json_rows_add(&c->json, json_pack("{s:I, s:I, s:I, s:s, s:s, s:I, s:I, s:s}",
		        "id", (json_int_t)f->id, "webhook", (json_int_t)f->webhook_id,
		        "event", (json_int_t)f->event_id, "kind", f->kind, "url", f->url,
		        "created_at", (json_int_t)f->created_at, "attempts", (json_int_t)f->attempts,
		        "last_error", f->last_error));
	if (c->n++ == 0)
		printf("%6s %4s %-12s %-17s %8s  %s\n", "ID", "HOOK", "EVENT", "AT", "ATTEMPTS",
		       "LAST ERROR");
	printf("%6lld %4lld %-12s %-17s %8lld  %s\n", f->id, f->webhook_id, f->kind,
	       cmd_time(f->created_at, t, sizeof t), f->attempts, f->last_error);
	return 0;
}

static int
listing(int argc, char **argv, struct cmd_env *env, int failures)
{
	struct ls_ctx c = { { argc == 2, 0, &env->err }, 0 };
	int rc;

	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json")))
		return cmd_usage_error(cmd_webhook_usage, "webhook %s takes only --json", argv[0]);
	rc = failures ? webhook_each_failure(env->db, print_failure, &c, &env->err)
	              : webhook_each(env->db, print_hook, &c, &env->err);
	/* the each functions stop quietly when a row fails: the row said why */
	if (rc < 0 || env->err.code)
		return -1;
	if (c.json.on)
		return cmd_json_rows_end(&c.json);
	if (!c.n && !env->quiet)
		printf(failures ? "no failed deliveries\n"
		                : "no webhooks; add one with 'herald webhook add URL --events ...'\n");
	return 0;
}

int
cmd_webhook(int argc, char **argv, struct cmd_env *env)
{
	long long id = 0, n;

	if (argc < 2)
		return cmd_usage_error(cmd_webhook_usage, "webhook needs a verb");
	if (!strcmp(argv[1], "add"))
		return webhook_add_cmd(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "ls"))
		return listing(argc - 1, argv + 1, env, 0);
	if (!strcmp(argv[1], "failures"))
		return listing(argc - 1, argv + 1, env, 1);
	if (!strcmp(argv[1], "rm") || !strcmp(argv[1], "retry")) {
		int rm = argv[1][1] == 'm';

		if (argc != 3 && !(argc == 2 && !rm))
			return cmd_usage_error(cmd_webhook_usage, "webhook %s takes %s", argv[1],
			                       rm ? "one ID" : "at most one ID");
		if (argc == 3 && cmd_parse_id(argv[2], &id, &env->err) < 0)
			return -1;
		if (rm) {
			if (webhook_remove(env->db, id, &env->err) < 0)
				return -1;
			if (!env->quiet)
				printf("removed webhook %lld and its deliveries\n", id);
			return 0;
		}
		if (webhook_retry_failed(env->db, id, db_now(), &n, &env->err) < 0)
			return -1;
		if (!env->quiet)
			printf("%lld failed deliveries queued again\n", n);
		return 0;
	}
	return cmd_usage_error(cmd_webhook_usage, "unknown verb 'webhook %s'", argv[1]);
}
