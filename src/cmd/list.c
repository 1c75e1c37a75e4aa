/*
 * list.c - `herald list create|set|ls|show|form|rm`.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "herald/api.h"
#include "herald/buf.h"
#include "herald/cmd.h"
#include "herald/list.h"
#include "herald/prefs.h"
#include "herald/webpages.h"
#include "herald/welcome.h"

const char cmd_list_usage[] =
	"usage: herald list create NAME [--title TITLE] [--double-opt-in] [--public] [--signup] [--consent-text TEXT]\n"
	"       herald list set NAME [--title TITLE] [--double-opt-in|--single-opt-in] [--public|--private] [--signup|--no-signup] [--consent-text TEXT] [--welcome FILE.md|--no-welcome]\n"
	"       herald list ls [--json]\n"
	"       herald list show NAME [--json]\n"
	"       herald list form NAME\n"
	"       herald list rm NAME [--force]\n"
	"\n"
	"NAME is 1-64 characters of a-z, 0-9, '.', '_' and '-'.  --signup lets the\n"
	"web form (herald serve) take sign-ups for the list, off by default;\n"
	"--double-opt-in makes them confirm by mail; --public lists the issues in\n"
	"the web archive.  set changes only what it names.  rm refuses a list that\n"
	"has issues unless --force.\n"
	"\n"
	"--consent-text TEXT is what the sign-up form says the reader agrees to\n"
	"('I agree to receive the monthly newsletter...'; at most 1000 bytes, ''\n"
	"clears it): shown by the hosted form (GET /subscribe/NAME), 'list form'\n"
	"and the preference centre, and kept in each web sign-up's consent record\n"
	"(the title is kept when there is none).  form prints the HTML of a\n"
	"sign-up form for your own site, posting to [web] base_url/subscribe.\n"
	"\n"
	"--welcome FILE.md makes FILE.md (an issue file, read as 'issue new' reads\n"
	"it) the list's welcome mail: sent once to each subscriber confirmed from\n"
	"now on (after their confirmation on a double opt-in list), by 'herald\n"
	"run' or 'herald serve', never to imported ones unless 'sub import\n"
	"--welcome'.  A new file replaces it for those still to join; --no-welcome\n"
	"stops it.  show says its issue id (for 'herald stats') and how many got it.\n";

/* The options of create and set into `s`; create takes only the "on" forms.
 * set's --welcome FILE.md goes to *welcome ("" for --no-welcome). */
static int
parse_settings(int argc, char **argv, int create, struct list_settings *s,
               const char **welcome)
{
	static const struct option opts[] = {
		{ "title", required_argument, NULL, 't' },
		{ "double-opt-in", no_argument, NULL, 'd' },
		{ "single-opt-in", no_argument, NULL, 'D' },
		{ "public", no_argument, NULL, 'p' },
		{ "private", no_argument, NULL, 'P' },
		{ "signup", no_argument, NULL, 's' },
		{ "no-signup", no_argument, NULL, 'S' },
		{ "welcome", required_argument, NULL, 'w' },
		{ "no-welcome", no_argument, NULL, 'W' },
		{ "consent-text", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
		if (create && (ch == 'w' || ch == 'W'))
			return cmd_usage_error(cmd_list_usage, "a welcome mail is set with "
			                       "'list set NAME --welcome FILE.md'");
		if (create && (ch == 'D' || ch == 'P' || ch == 'S'))
			return cmd_usage_error(cmd_list_usage, "list create takes --double-opt-in, "
			                       "--public and --signup; the rest are for list set");
		switch (ch) {
		case 't': s->title = optarg; break;
		case 'd': s->double_opt_in = 1; break;
		case 'D': s->double_opt_in = 0; break;
		case 'p': s->public = 1; break;
		case 'P': s->public = 0; break;
		case 's': s->signup = 1; break;
		case 'S': s->signup = 0; break;
		case 'c': s->consent_text = optarg; break;
		case 'w':
		case 'W':
			if (*welcome)
				return cmd_usage_error(cmd_list_usage, "give --welcome FILE.md or "
				                       "--no-welcome once");
			*welcome = ch == 'w' ? optarg : "";
			if (ch == 'w' && !*optarg)
				return cmd_usage_error(cmd_list_usage, "--welcome needs a FILE.md");
			break;
		default: return cmd_usage(cmd_list_usage, 1);
		}
	}
	if (optind + 1 != argc)
		return cmd_usage_error(cmd_list_usage, "list %s needs exactly one NAME",
		                       create ? "create" : "set");
	return 0;
}

static int
list_create_cmd(int argc, char **argv, struct cmd_env *env)
{
	struct list_settings s = { "", 0, 0, 0, NULL };
	const char *welcome = NULL;
	long long id;
	int rc;

	if ((rc = parse_settings(argc, argv, 1, &s, &welcome)) != 0)
		return rc;
	if (list_create_with(env->db, argv[optind], &s, &id, &env->err) < 0)
		return -1;
	if (!env->quiet)
		printf("created list '%s' (id %lld)\n", argv[optind], id);
	return 0;
}

static int
list_set_cmd(int argc, char **argv, struct cmd_env *env)
{
	struct list_settings s = LIST_SETTINGS_UNCHANGED;
	const char *welcome = NULL, *name;
	long long wid = 0;
	int rc;

	if ((rc = parse_settings(argc, argv, 0, &s, &welcome)) != 0)
		return rc;
	name = argv[optind];
	if (list_set(env->db, name, &s, &env->err) < 0)
		return -1;
	if (welcome && *welcome &&
	    welcome_set(env->db, &env->cfg, name, welcome, cmd_warn, (void *)welcome, &wid,
	                &env->err) < 0)
		return -1;
	if (welcome && !*welcome && welcome_clear(env->db, name, &env->err) < 0)
		return -1;
	if (!env->quiet && wid)
		printf("changed list '%s': welcome mail is issue %lld\n", name, wid);
	else if (!env->quiet)
		printf("changed list '%s'%s\n", name, welcome ? ": no welcome mail" : "");
	return 0;
}

struct ls_ctx {
	struct cmd_json_rows json;  /* --json: rows as they come (cmd.h) */
	int n;
};

static int
print_list(void *ctx, const struct list *l)
{
	struct ls_ctx *c = ctx;

	if (c->json.on)
		return cmd_json_rows_add(&c->json, api_list_json(l));
	if (c->n++ == 0)
		printf("%-20s %9s %11s %12s %6s  %s\n", "NAME", "CONFIRMED", "UNCONFIRMED",
		       "UNSUBSCRIBED", "ISSUES", "TITLE");
	printf("%-20s %9lld %11lld %12lld %6lld  %s%s%s%s\n", l->name, l->n_confirmed,
	       l->n_unconfirmed, l->n_unsubscribed, l->n_issues, l->title,
	       l->double_opt_in ? " [double opt-in]" : "", l->public ? " [public]" : "",
	       l->signup ? " [sign-up]" : "");
	return 0;
}

static int
has_flag(int argc, char **argv, const char *flag)
{
	int i;

	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], flag))
			return 1;
	return 0;
}

static int
list_ls_cmd(int argc, char **argv, struct cmd_env *env)
{
	struct ls_ctx c = { { has_flag(argc, argv, "--json"), 0, &env->err }, 0 };

	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json")))
		return cmd_usage_error(cmd_list_usage, "list ls takes only --json");
	if (list_each(env->db, print_list, &c, &env->err) < 0)
		return -1;
	if (c.json.on)
		return cmd_json_rows_end(&c.json);
	if (!c.n && !env->quiet)
		printf("no lists yet; create one with 'herald list create NAME'\n");
	return 0;
}

/* The answers to "Why are you leaving?" about the list (prefs.h): the
 * object {too_many, not_relevant, never_signed_up, other}, or NULL. */
static json_t *
leave_reasons_json(const long long *leave)
{
	json_t *o = json_object();
	int i;

	for (i = 0; o && i < PREFS_N_REASONS; i++)
		if (json_object_set_new(o, prefs_reason_name((enum prefs_reason)i),
		                        json_integer((json_int_t)leave[i])) < 0) {
			json_decref(o);
			o = NULL;
		}
	return o;
}

static int
list_show_cmd(int argc, char **argv, struct cmd_env *env)
{
	long long leave[PREFS_N_REASONS];
	struct list l;
	struct welcome_info wi;
	const char *name = NULL;
	char t[32];
	int i, json = 0;
	json_t *o;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!name && argv[i][0] != '-')
			name = argv[i];
		else
			return cmd_usage_error(cmd_list_usage, "unexpected '%s'", argv[i]);
	}
	if (!name)
		return cmd_usage_error(cmd_list_usage, "list show needs a NAME");
	if (list_get_counted(env->db, name, &l, &env->err) < 0 ||
	    welcome_get(env->db, l.id, &wi, &env->err) < 0 ||
	    prefs_survey_counts_list(env->db, l.id, leave, &env->err) < 0)
		return -1;
	if (json) {
		if (!(o = api_list_json(&l)))
			return herr_set(&env->err, EX_OSERR, NULL, "out of memory");
		if (json_object_set_new(o, "welcome", !wi.issue_id ? json_null() :
		        json_pack("{s:I, s:s, s:s, s:I, s:I, s:I}", "issue", (json_int_t)wi.issue_id,
		                  "subject", wi.subject, "status", wi.status,
		                  "sent", (json_int_t)wi.counts.sent,
		                  "waiting", (json_int_t)(wi.counts.pending + wi.counts.sending +
		                                          wi.counts.deferred),
		                  "total", (json_int_t)wi.counts.total)) < 0) {
			json_decref(o);
			return herr_set(&env->err, EX_OSERR, NULL, "out of memory");
		}
		if (json_object_set_new(o, "leave_reasons", leave_reasons_json(leave)) < 0) {
			json_decref(o);
			return herr_set(&env->err, EX_OSERR, NULL, "out of memory");
		}
		return cmd_print_json(o);
	}
	printf("list          %s (id %lld)\n", l.name, l.id);
	printf("title         %s\n", l.title[0] ? l.title : "-");
	printf("double opt-in %s\n", l.double_opt_in ? "yes" : "no");
	printf("public        %s\n", l.public ? "yes" : "no");
	printf("web sign-up   %s\n", l.signup ? "yes" : "no");
	printf("consent text  %s\n", l.consent_text[0] ? l.consent_text : "- (the title is recorded)");
	printf("created       %s\n", cmd_time(l.created_at, t, sizeof t));
	printf("subscribers   %lld confirmed, %lld unconfirmed, %lld unsubscribed\n",
	       l.n_confirmed, l.n_unconfirmed, l.n_unsubscribed);
	printf("issues        %lld\n", l.n_issues);
	printf("leaving       ");
	for (i = 0; i < PREFS_N_REASONS; i++)
		printf("%s%s %lld", i ? ", " : "", prefs_reason_label((enum prefs_reason)i), leave[i]);
	printf("\n");
	if (wi.issue_id)
		printf("welcome       issue %lld \"%s\" (%s): %lld sent, %lld waiting, "
		       "%lld not delivered\n", wi.issue_id, wi.subject, wi.status, wi.counts.sent,
		       wi.counts.pending + wi.counts.sending + wi.counts.deferred,
		       wi.counts.bounced + wi.counts.failed + wi.counts.skipped);
	else
		printf("welcome       -\n");
	return 0;
}

/* The sign-up form for the organisation's own page; the same HTML as the
 * hosted page's (webpages.c), posting to [web] base_url/subscribe. */
static int
list_form_cmd(int argc, char **argv, struct cmd_env *env)
{
	struct buf html = BUF_INIT(4096), action = BUF_INIT(256);
	struct webpage_signup f;
	struct list l;
	int rc = 0;

	if (argc != 2 || argv[1][0] == '-')
		return cmd_usage_error(cmd_list_usage, "list form needs exactly one NAME");
	if (list_get(env->db, argv[1], &l, &env->err) < 0)
		return -1;
	if (!l.signup)
		cmd_warn((void *)l.name, "the list takes no web sign-ups yet: the form is refused "
		         "until 'herald list set NAME --signup'");
	if (!env->cfg.base_url || !*env->cfg.base_url)
		return herr_set(&env->err, EX_CONFIG, NULL, "[web] base_url is not set: the form "
		                "needs the address it posts to");
	memset(&f, 0, sizeof f);
	f.list_name = l.name;
	f.list_title = l.title[0] ? l.title : l.name;
	f.consent_text = l.consent_text;
	f.tracking_shown = env->cfg.tracking_mode == CONFIG_TRACKING_CONSENT;
	if (buf_addf(&action, "%s/subscribe", env->cfg.base_url) < 0 ||
	    (f.action = buf_str(&action), webpage_signup_form(&html, &f) < 0))
		rc = herr_set(&env->err, EX_OSERR, NULL, "out of memory");
	else
		fputs(buf_str(&html), stdout);
	buf_free(&html);
	buf_free(&action);
	return rc;
}

static int
list_rm_cmd(int argc, char **argv, struct cmd_env *env)
{
	const char *name = NULL;
	int i, force = 0;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--force"))
			force = 1;
		else if (!name && argv[i][0] != '-')
			name = argv[i];
		else
			return cmd_usage_error(cmd_list_usage, "unexpected '%s'", argv[i]);
	}
	if (!name)
		return cmd_usage_error(cmd_list_usage, "list rm needs a NAME");
	if (list_remove(env->db, name, force, &env->err) < 0)
		return -1;
	if (!env->quiet)
		printf("removed list '%s'\n", name);
	return 0;
}

int
cmd_list(int argc, char **argv, struct cmd_env *env)
{
	if (argc < 2)
		return cmd_usage_error(cmd_list_usage, "list needs a verb");
	if (!strcmp(argv[1], "create"))
		return list_create_cmd(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "set"))
		return list_set_cmd(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "ls"))
		return list_ls_cmd(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "show"))
		return list_show_cmd(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "rm"))
		return list_rm_cmd(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "form"))
		return list_form_cmd(argc - 1, argv + 1, env);
	return cmd_usage_error(cmd_list_usage, "unknown verb 'list %s'", argv[1]);
}
