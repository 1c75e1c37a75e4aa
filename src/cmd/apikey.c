/*
 * apikey.c - `herald apikey create|ls|revoke`: the keys of the HTTP API
 * (apikey.h).  The key is printed once, by create; herald keeps only its
 * hash.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "herald/apikey.h"
#include "herald/cmd.h"
#include "herald/config.h"
#include "herald/db.h"

const char cmd_apikey_usage[] =
	"usage: herald apikey create NAME --scope SCOPE[,SCOPE...] [--expires SPAN]\n"
	"       herald apikey ls [--json]\n"
	"       herald apikey revoke NAME\n"
	"\n"
	"Keys of the HTTP API (/api/v1/ of herald serve), sent as\n"
	"'Authorization: Bearer KEY'.  create prints the key once; only its hash\n"
	"is kept.  SCOPEs: subscribers:read, subscribers:write, lists:read,\n"
	"issues:read, mail:send.  --expires 90d (d, w, months, y) ends it then.\n"
	"revoke ends it at once; ls shows each key's first characters, scopes,\n"
	"expiry and last use.\n";

static int
apikey_create_cmd(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "scope", required_argument, NULL, 's' },
		{ "expires", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	const char *scope = NULL, *expires = NULL;
	char key[APIKEY_LEN + 1];
	long long now = db_now(), span = 0;
	unsigned scopes;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 's')
			scope = optarg;
		else if (ch == 'e')
			expires = optarg;
		else
			return cmd_usage(cmd_apikey_usage, 1);
	}
	if (optind + 1 != argc)
		return cmd_usage_error(cmd_apikey_usage, "apikey create needs exactly one NAME");
	if (!scope)
		return cmd_usage_error(cmd_apikey_usage, "apikey create needs --scope");
	if (apikey_scopes_parse(scope, &scopes, &env->err) < 0)
		return -1;
	if (expires && (span = config_parse_period(expires)) <= 0)
		return cmd_usage_error(cmd_apikey_usage, "--expires '%s' is not a span such as 90d",
		                       expires);
	if (apikey_create(env->db, argv[optind], scopes, span ? now + span : 0, now, key,
	                  &env->err) < 0)
		return -1;
	if (!env->quiet)
		fprintf(stderr, "created key '%s'; it is shown once, here:\n", argv[optind]);
	printf("%s\n", key);
	return 0;
}

struct ls_ctx {
	struct cmd_json_rows json;  /* --json: rows as they come (cmd.h) */
	int       n;
	long long now;
};

static const char *
key_state(const struct apikey *k, long long now)
{
	return k->revoked_at ? "revoked" : k->expires_at && now >= k->expires_at ? "expired"
	                                                                         : "active";
}

static int
print_key(void *ctx, const struct apikey *k)
{
	struct ls_ctx *c = ctx;
	char scopes[96], exp[32], used[32];

	apikey_scopes_text(k->scopes, scopes, sizeof scopes);
	if (c->json.on) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:o}",
		                      "name", k->name, "prefix", k->prefix, "scopes", scopes,
		                      "state", key_state(k, c->now),
		                      "created_at", (json_int_t)k->created_at,
		                      "expires_at", k->expires_at ? json_integer(k->expires_at)
		                                                  : json_null(),
		                      "revoked_at", k->revoked_at ? json_integer(k->revoked_at)
		                                                  : json_null(),
		                      "last_used_at", k->last_used_at
		                                      ? json_integer(k->last_used_at) : json_null());

		return cmd_json_rows_add(&c->json, o);
	}
	if (c->n++ == 0)
		printf("%-20s %-13s %-8s %-17s %-17s %s\n", "NAME", "KEY", "STATE", "EXPIRES",
		       "LAST USED", "SCOPES");
	printf("%-20s %-13s %-8s %-17s %-17s %s\n", k->name, k->prefix, key_state(k, c->now),
	       cmd_time(k->expires_at, exp, sizeof exp), cmd_time(k->last_used_at, used, sizeof used),
	       scopes);
	return 0;
}

static int
apikey_ls_cmd(int argc, char **argv, struct cmd_env *env)
{
	struct ls_ctx c = { { argc == 2, 0, &env->err }, 0, db_now() };

	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json")))
		return cmd_usage_error(cmd_apikey_usage, "apikey ls takes only --json");
	/* apikey_each stops quietly when a row fails: the row said why */
	if (apikey_each(env->db, print_key, &c, &env->err) < 0 || env->err.code)
		return -1;
	if (c.json.on)
		return cmd_json_rows_end(&c.json);
	if (!c.n && !env->quiet)
		printf("no API keys; make one with 'herald apikey create NAME --scope ...'\n");
	return 0;
}

static int
apikey_revoke_cmd(int argc, char **argv, struct cmd_env *env)
{
	if (argc != 2 || argv[1][0] == '-')
		return cmd_usage_error(cmd_apikey_usage, "apikey revoke needs exactly one NAME");
	if (apikey_revoke(env->db, argv[1], db_now(), &env->err) < 0)
		return -1;
	if (!env->quiet)
		printf("revoked key '%s'\n", argv[1]);
	return 0;
}

int
cmd_apikey(int argc, char **argv, struct cmd_env *env)
{
	if (argc < 2)
		return cmd_usage_error(cmd_apikey_usage, "apikey needs a verb");
	if (!strcmp(argv[1], "create"))
		return apikey_create_cmd(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "ls"))
		return apikey_ls_cmd(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "revoke"))
		return apikey_revoke_cmd(argc - 1, argv + 1, env);
	return cmd_usage_error(cmd_apikey_usage, "unknown verb 'apikey %s'", argv[1]);
}
