/*
 * sub.c - `herald sub ...`: subscribers one at a time, and CSV in and out.
 */
#include <csv.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "herald/bouncelog.h"
#include "herald/cmd.h"
#include "herald/consent.h"
#include "herald/csvimport.h"
#include "herald/db.h"
#include "herald/engagement.h"
#include "herald/ledger.h"
#include "herald/list.h"
#include "herald/privacy.h"
#include "herald/segment.h"
#include "herald/subimport.h"
#include "herald/subscriber.h"
#include "herald/suppress.h"

const char cmd_sub_usage[] =
	"usage: herald sub add ADDR --list NAME [--name N] [--attr K=V]... [--unconfirmed]\n"
	"       herald sub ls [--list NAME] [--status S] [--where EXPR] [--json]\n"
	"       herald sub ls --unengaged [--json]\n"
	"       herald sub show ADDR [--json]\n"
	"       herald sub rm ADDR\n"
	"       herald sub unsubscribe ADDR --list NAME [--reason TEXT]\n"
	"       herald sub block ADDR\n"
	"       herald sub reactivate ADDR\n"
	"       herald sub import --list NAME FILE.csv [--dry-run] [--unconfirmed] [--welcome]"
	" [--email-column COL] [--name-column COL]\n"
	"       herald sub export --list NAME [--status S] [--with-consent]\n"
	"       herald sub export-data ADDR [--out FILE.json]\n"
	"       herald sub forget ADDR --by TEXT\n"
	"\n"
	"Addresses are one subscriber regardless of case; the first spelling is\n"
	"kept.  S is confirmed, unconfirmed or unsubscribed.  import reads a CSV with\n"
	"a header row: 'email' is required, 'name' optional, other columns become\n"
	"attributes; --email-column and --name-column take the addresses and names\n"
	"from columns of other names (\"Email Address\", matched regardless of case)\n"
	"instead.  Bad rows are reported as FILE:LINE: reason and skipped; the\n"
	"good rows go in one transaction; the exit status is 65 when any row was\n"
	"bad.  A bulk import never resubscribes someone who unsubscribed, and\n"
	"sends no welcome mail (list set --welcome) unless --welcome.  export\n"
	"writes CSV (default: confirmed members) that import reads back.  ls --where\n"
	"EXPR lists the active subscribers a segment matches (with --list, those of\n"
	"the list's audience: confirmed and mailable); see 'herald segment --help'.\n"
	"show also prints the consent history: each sign-up, confirmation,\n"
	"unsubscribe and reactivation with when, how (source), the text or list\n"
	"title shown, and for web requests the client address ([privacy] store_ip)\n"
	"and browser.  unsubscribe --reason records why they left.  export\n"
	"--with-consent adds the columns consent_at (ISO 8601, UTC) and\n"
	"consent_source of each subscription's latest sign-up; import reads them\n"
	"back as a dated consent from another system (without them, the import\n"
	"itself is recorded as the source).\n"
	"ls --unengaged lists the active subscribers the [audience] sunset_after\n"
	"rule leaves out of every campaign now: sent issues over the whole span and\n"
	"engaged with none.  show prints the last human open, the last click and\n"
	"the last issue sent.  export-data writes everything herald holds about a\n"
	"person as one JSON document (docs/privacy.md); forget\n"
	"erases them, keeping the issues' counts and a keyed hash of the address\n"
	"that later imports skip, and logs when and --by whom, never whom.\n";

#define MAX_ATTRS 64

static const char *
result_word(enum subscribe_result r)
{
	switch (r) {
	case SUBSCRIBE_ADDED: return "added";
	case SUBSCRIBE_UPDATED: return "updated";
	case SUBSCRIBE_UNCHANGED: return "unchanged";
	case SUBSCRIBE_SKIPPED_UNSUBSCRIBED: return "skipped (unsubscribed earlier)";
	case SUBSCRIBE_SKIPPED_BLOCKED: return "skipped (address is blocked, bounced or complained)";
	case SUBSCRIBE_SKIPPED_SUPPRESSED: return "skipped (address or domain is suppressed)";
	case SUBSCRIBE_SKIPPED_ERASED:
		return "skipped (erased on request: only a new sign-up of their own brings them back)";
	case SUBSCRIBE_N_RESULTS: break;
	}
	return "?";
}

static int
check_status(const char *s, struct herr *err)
{
	if (s && strcmp(s, "confirmed") && strcmp(s, "unconfirmed") && strcmp(s, "unsubscribed"))
		return herr_set(err, EX_USAGE, NULL,
		                "unknown status '%s' (confirmed, unconfirmed, unsubscribed)", s);
	return 0;
}

static int
sub_add(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "list", required_argument, NULL, 'l' },
		{ "name", required_argument, NULL, 'n' },
		{ "attr", required_argument, NULL, 'a' },
		{ "unconfirmed", no_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	struct tmpl_attr attrs[MAX_ATTRS];
	char *keys[MAX_ATTRS];
	size_t n_attrs = 0, i;
	const char *list_name = NULL, *name = NULL;
	int ch, unconfirmed = 0;
	struct signup_req req;
	struct signup_result res;
	struct token_key key;
	struct address a;
	struct list l;

	while ((ch = getopt_long(argc, argv, "l:n:a:", opts, NULL)) != -1) {
		switch (ch) {
		case 'l': list_name = optarg; break;
		case 'n': name = optarg; break;
		case 'u': unconfirmed = 1; break;
		case 'a': {
			char *eq = strchr(optarg, '=');

			if (!eq || eq == optarg)
				return cmd_usage_error(cmd_sub_usage, "--attr wants KEY=VALUE, not '%s'",
				                       optarg);
			if (n_attrs == MAX_ATTRS)
				return cmd_usage_error(cmd_sub_usage, "at most %d --attr", MAX_ATTRS);
			*eq = '\0';
			if (!strcasecmp(optarg, "email") || !strcasecmp(optarg, "name"))
				return cmd_usage_error(cmd_sub_usage,
				                       "'%s' is not an attribute; use the address or --name",
				                       optarg);
			attrs[n_attrs].key = optarg;
			attrs[n_attrs++].value = eq + 1;
			break;
		}
		default: return cmd_usage(cmd_sub_usage, 1);
		}
	}
	(void)keys;
	if (optind + 1 != argc)
		return cmd_usage_error(cmd_sub_usage, "sub add needs exactly one ADDR");
	if (!list_name)
		return cmd_usage_error(cmd_sub_usage, "sub add needs --list NAME");
	for (i = 0; i < n_attrs; i++)
		if (!*attrs[i].value)
			return cmd_usage_error(cmd_sub_usage, "--attr %s= has no value", attrs[i].key);
	if (address_parse(argv[optind], &a, &env->err) < 0 ||
	    list_get(env->db, list_name, &l, &env->err) < 0 ||
	    token_key_load(env->cfg.secret_file, &key, &env->err) < 0)
		return -1;
	memset(&req, 0, sizeof req);
	req.addr = &a;
	req.name = name;
	req.attrs = attrs;
	req.n_attrs = n_attrs;
	req.unconfirmed = unconfirmed;
	req.source = SIGNUP_ADMIN;
	req.erased_key = &key;
	if (subscriber_signup(env->db, &l, &req, &res, &env->err) < 0)
		return herr_wrap(&env->err, "%s", a.addr);
	if (res.res == SUBSCRIBE_SKIPPED_BLOCKED || res.res == SUBSCRIBE_SKIPPED_SUPPRESSED)
		return herr_set(&env->err, EX_DATAERR, a.addr, "not subscribed: %s",
		                res.res == SUBSCRIBE_SKIPPED_BLOCKED
		                    ? "the address is blocked, bounced or complained"
		                    : "the address or its domain is suppressed (herald suppress ls)");
	if (!env->quiet)
		printf("%s: %s to '%s'%s\n", a.addr, result_word(res.res), l.name,
		       unconfirmed && res.res == SUBSCRIBE_ADDED ? " (unconfirmed)" : "");
	return 0;
}

/* One listing's output: JSON rows as they come (cmd.h), or text. */
struct ls_ctx {
	struct cmd_json_rows json;
	long n;
};

static json_t *
attrs_json(const char *text)
{
	json_t *j = json_loads(text ? text : "{}", 0, NULL);

	return j ? j : json_object();
}

static int
print_member(void *ctx, const struct member *m)
{
	struct ls_ctx *c = ctx;
	char t[32];

	c->n++;
	if (c->json.on)
		return cmd_json_rows_add(&c->json,
		        json_pack("{s:I, s:s, s:s, s:o, s:s, s:s}", "id", (json_int_t)m->sub->id,
		                  "email", m->sub->email, "name", m->sub->name,
		                  "attributes", attrs_json(m->sub->attributes),
		                  "subscription", m->sub_status, "status", m->sub->status));
	if (c->n == 1)
		printf("%-40s %-28s %-13s %s\n", "EMAIL", "NAME", "SUBSCRIPTION", "SINCE");
	cmd_print_cell(m->sub->email, 40);
	cmd_print_cell(m->sub->name, 28);
	printf("%-13s %s%s%s\n", m->sub_status, cmd_time(m->sub->created_at, t, sizeof t),
	       strcmp(m->sub->status, "active") ? "  " : "",
	       strcmp(m->sub->status, "active") ? m->sub->status : "");
	return 0;
}

/* sub ls --where: a segment's matches, printed as print_member does. */
struct match_ctx {
	struct ls_ctx *ls;
	const char    *sub_status; /* "confirmed" with --list, else NULL */
};

static int
print_match(void *ctx, const struct segment_row *r)
{
	struct match_ctx *mc = ctx;
	struct subscriber s;
	struct member m;

	if (mc->ls->json.on) {
		mc->ls->n++;
		return cmd_json_rows_add(&mc->ls->json,
		        json_pack("{s:I, s:s, s:s, s:o, s:s?, s:s}", "id", (json_int_t)r->id,
		                  "email", r->email, "name", r->name,
		                  "attributes", attrs_json(r->attributes),
		                  "subscription", mc->sub_status, "status", "active"));
	}
	memset(&s, 0, sizeof s);
	s.id = r->id;
	snprintf(s.email, sizeof s.email, "%s", r->email);
	snprintf(s.name, sizeof s.name, "%s", r->name);
	snprintf(s.status, sizeof s.status, "active");
	s.created_at = r->created_at;
	m.sub = &s;
	m.sub_status = mc->sub_status ? mc->sub_status : "-";
	return print_member(mc->ls, &m);
}

static int
sub_ls_where(const char *expr, const char *list_name, int json, struct cmd_env *env)
{
	struct ls_ctx c = { { json, 0, &env->err }, 0 };
	struct match_ctx mc = { &c, NULL };
	struct segment *seg;
	struct list l;
	int rc;

	l.id = 0;
	if (list_name) {
		if (list_get(env->db, list_name, &l, &env->err) < 0)
			return -1;
		mc.sub_status = "confirmed";
	}
	if (segment_compile(env->db, expr, "--where", db_now(), &seg, &env->err) < 0)
		return -1;
	rc = segment_each(env->db, seg, l.id, print_match, &mc, &env->err);
	segment_free(seg);
	if (rc < 0) {
		if (!env->err.code)
			herr_set(&env->err, EX_OSERR, NULL, "out of memory");
		return -1;
	}
	if (json)
		return cmd_json_rows_end(&c.json);
	if (!env->quiet)
		printf("%ld subscriber%s\n", c.n, c.n == 1 ? "" : "s");
	return 0;
}

/* sub ls --unengaged: who the sunset rule leaves out now. */
static int
print_unengaged(void *ctx, const struct engagement_row *r)
{
	struct ls_ctx *c = ctx;
	char t1[32], t2[32];

	c->n++;
	if (c->json.on)
		return cmd_json_rows_add(&c->json,
		        json_pack("{s:I, s:s, s:s, s:I, s:I}", "id", (json_int_t)r->id,
		                  "email", r->email, "name", r->name,
		                  "first_sent_at", (json_int_t)r->first_sent_at,
		                  "last_sent_at", (json_int_t)r->last_sent_at));
	if (c->n == 1)
		printf("%-40s %-28s %-17s %s\n", "EMAIL", "NAME", "FIRST SENT", "LAST SENT");
	cmd_print_cell(r->email, 40);
	cmd_print_cell(r->name, 28);
	cmd_print_cell(cmd_time(r->first_sent_at, t1, sizeof t1), 17);
	printf("%s\n", cmd_time(r->last_sent_at, t2, sizeof t2));
	return 0;
}

static int
sub_ls_unengaged(int json, struct cmd_env *env)
{
	struct ls_ctx c = { { json, 0, &env->err }, 0 };

	if (env->cfg.sunset_after <= 0)
		return herr_set(&env->err, EX_CONFIG, env->config_path, "[audience] sunset_after "
		                "is off: nobody is left out as unengaged");
	if (engagement_each_unengaged(env->db, env->cfg.sunset_after, db_now(), print_unengaged,
	                              &c, &env->err) < 0) {
		if (!env->err.code)
			herr_set(&env->err, EX_OSERR, NULL, "out of memory");
		return -1;
	}
	if (json)
		return cmd_json_rows_end(&c.json);
	if (!env->quiet)
		printf("%ld unengaged subscriber%s\n", c.n, c.n == 1 ? "" : "s");
	return 0;
}

static int
sub_ls(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "list", required_argument, NULL, 'l' },
		{ "status", required_argument, NULL, 's' },
		{ "where", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "unengaged", no_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	const char *list_name = NULL, *status = NULL, *where = NULL;
	struct ls_ctx c = { { 0, 0, &env->err }, 0 };
	struct list l;
	int ch, json = 0, unengaged = 0;

	while ((ch = getopt_long(argc, argv, "l:s:", opts, NULL)) != -1) {
		switch (ch) {
		case 'l': list_name = optarg; break;
		case 's': status = optarg; break;
		case 'w': where = optarg; break;
		case 'j': json = 1; break;
		case 'u': unengaged = 1; break;
		default: return cmd_usage(cmd_sub_usage, 1);
		}
	}
	if (unengaged) {
		if (optind != argc || list_name || status || where)
			return cmd_usage_error(cmd_sub_usage, "sub ls --unengaged takes only --json");
		return sub_ls_unengaged(json, env);
	}
	if (where && optind == argc && !status)
		return sub_ls_where(where, list_name, json, env);
	if (where && status)
		return cmd_usage_error(cmd_sub_usage, "sub ls --where lists confirmed, mailable "
		                       "subscribers; it takes no --status");
	if (optind != argc || !list_name)
		return cmd_usage_error(cmd_sub_usage, "sub ls needs --list NAME or --where EXPR "
		                       "and nothing else");
	if (check_status(status, &env->err) < 0 || list_get(env->db, list_name, &l, &env->err) < 0)
		return -1;
	c.json.on = json;
	if (subscriber_each_member(env->db, l.id, status, print_member, &c, &env->err) < 0)
		return -1;
	if (json)
		return cmd_json_rows_end(&c.json);
	if (!env->quiet)
		printf("%ld subscriber%s\n", c.n, c.n == 1 ? "" : "s");
	return 0;
}

static int
add_subscription(void *ctx, const struct subscription_info *s)
{
	json_t *arr = ((json_t **)ctx)[0];
	char t1[32], t2[32];

	if (arr)
		return json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:I, s:I}",
		        "list", s->list_name, "status", s->status,
		        "created_at", (json_int_t)s->created_at,
		        "confirmed_at", (json_int_t)s->confirmed_at,
		        "unsubscribed_at", (json_int_t)s->unsubscribed_at));
	printf("  %-20s %-13s since %s%s%s\n", s->list_name, s->status,
	       cmd_time(s->created_at, t1, sizeof t1),
	       s->unsubscribed_at ? ", left " : "",
	       s->unsubscribed_at ? cmd_time(s->unsubscribed_at, t2, sizeof t2) : "");
	return 0;
}

static int
add_delivery(void *ctx, const struct ledger_delivery *d)
{
	json_t *arr = ((json_t **)ctx)[0];
	char t[32];

	if (arr)
		return json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:i, s:i, s:s, s:I}",
		        "issue", (json_int_t)d->issue_id, "subject", d->subject,
		        "status", d->status, "attempts", d->attempts, "smtp_code", d->smtp_code,
		        "smtp_reply", d->smtp_reply, "updated_at", (json_int_t)d->updated_at));
	printf("  #%-5lld %-9s %s  %s\n", d->issue_id, d->status,
	       cmd_time(d->updated_at, t, sizeof t), d->smtp_reply);
	return 0;
}

/* The identity key of a stored address (address.h); the address itself if
 * it no longer parses (it did when it was stored). */
static const char *
key_of(const char *email)
{
	static struct address a;
	struct herr ignored;

	return address_parse(email, &a, &ignored) == 0 ? a.key : email;
}

static int
add_bounce(void *ctx, const struct bouncelog_entry *e)
{
	json_t *arr = ((json_t **)ctx)[0];
	char t[32], code[8] = "";

	if (arr)
		return json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:I, s:s}",
		        "issue", (json_int_t)e->issue_id, "recipient", e->recipient,
		        "source", e->source, "class", e->cls, "reason", e->reason,
		        "status", e->status, "reply_code", e->reply_code,
		        "diagnostic", e->diagnostic, "at", (json_int_t)e->at, "why", e->why));
	if (e->reply_code)
		snprintf(code, sizeof code, "%d ", e->reply_code);
	printf("  %s  %-9s %-15s %-4s %s%-7s", cmd_time(e->at, t, sizeof t), e->cls, e->reason,
	       e->source, code, e->status[0] ? e->status : "-");
	if (e->issue_id)
		printf(" issue #%lld", e->issue_id);
	putchar('\n');
	if (e->diagnostic[0])
		printf("      %s\n", e->diagnostic);
	/* How the classifier decided; "" for SMTP-time rejections and rows
	 * recorded before herald kept it. */
	if (e->why[0])
		printf("      why: %s\n", e->why);
	return 0;
}

/* {at, issue} or null: an engagement fact. */
static json_t *
fact_json(long long at, long long issue)
{
	if (!at)
		return json_null();
	return json_pack("{s:I, s:I}", "at", (json_int_t)at, "issue",
	                 (json_int_t)issue);
}

/* engagement.h (2) and, when the sunset is on, (3).  NULL when out of
 * memory: json_pack's "o" then fails the whole object. */
static json_t *
engagement_json(const struct engagement *e, int sunset_on)
{
	json_t *sent = e->last_sent_at
	               ? json_pack("{s:I, s:I, s:s}", "at", (json_int_t)e->last_sent_at, "issue",
	                           (json_int_t)e->last_sent_issue, "subject",
	                           e->last_sent_subject ? e->last_sent_subject : "")
	               : json_null();

	return json_pack("{s:o, s:o, s:o, s:o}", "last_open", fact_json(e->last_open_at,
	                 e->last_open_issue), "last_click", fact_json(e->last_click_at,
	                 e->last_click_issue), "last_issue", sent,
	                 "unengaged", sunset_on ? json_boolean(e->unengaged) : json_null());
}

static void
print_fact(const char *label, long long at, long long issue)
{
	char t[32];

	printf("%-11s %s", label, at ? cmd_time(at, t, sizeof t) : "never");
	if (at && issue)
		printf(" (issue #%lld)", issue);
	putchar('\n');
}

static void
print_engagement(const struct engagement *e, int sunset_on)
{
	print_fact("last open", e->last_open_at, e->last_open_issue);
	print_fact("last click", e->last_click_at, e->last_click_issue);
	print_fact("last issue", e->last_sent_at, e->last_sent_issue);
	if (e->last_sent_at)
		printf("            %s\n", e->last_sent_subject ? e->last_sent_subject : "");
	if (sunset_on)
		printf("unengaged   %s\n", e->unengaged ? "yes (left out of campaigns by "
		       "[audience] sunset_after)" : "no");
}

/* One consent record (consent.h): a JSON object, or lines under
 * "consent:".  NULL columns are JSON nulls and are not printed. */
static int
add_consent(void *ctx, const struct consent_entry *e)
{
	json_t *arr = *(json_t **)ctx;
	char t[32];

	if (arr)
		return json_array_append_new(arr, json_pack("{s:s, s:s?, s:I, s:I, s:s, s:s, s:s?, "
		        "s:s?, s:s?}", "kind", e->kind, "list", e->list_id ? e->list_name : NULL,
		        "at", (json_int_t)e->at, "recorded_at", (json_int_t)e->recorded_at,
		        "source", e->source, "detail", e->detail, "ip", e->ip,
		        "user_agent", e->user_agent, "reason", e->reason));
	printf("  %s  %-11s %-20s %s\n", cmd_time(e->at, t, sizeof t), e->kind,
	       e->list_id ? e->list_name : "-", e->source);
	if (e->detail[0])
		printf("      shown: %s\n", e->detail);
	if (e->ip || e->user_agent)
		printf("      from: %s%s%s\n", e->ip ? e->ip : "-", e->user_agent ? "  " : "",
		       e->user_agent ? e->user_agent : "");
	if (e->reason)
		printf("      reason: %s\n", e->reason);
	/* a consent from another system: when herald learnt of it */
	if (e->recorded_at != e->at)
		printf("      recorded %s\n", cmd_time(e->recorded_at, t, sizeof t));
	return 0;
}

static int
sub_show(int argc, char **argv, struct cmd_env *env)
{
	struct subscriber s;
	const char *addr = NULL;
	json_t *obj = NULL, *subs = NULL, *dels = NULL, *bounces = NULL;
	struct engagement eng = ENGAGEMENT_INIT;
	json_t *consent = NULL;
	char t[32], hit[SUPPRESS_PATTERN_MAX];
	int i, json = 0, ret = -1, suppressed = 0;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!addr)
			addr = argv[i];
		else
			return cmd_usage_error(cmd_sub_usage, "unexpected '%s'", argv[i]);
	}
	if (!addr)
		return cmd_usage_error(cmd_sub_usage, "sub show needs an ADDR");
	if (subscriber_get(env->db, addr, &s, &env->err) < 0)
		return -1;
	if ((suppressed = suppress_check(env->db, key_of(s.email), hit, &env->err)) < 0 ||
	    engagement_get(env->db, s.id, env->cfg.sunset_after, db_now(), &eng, &env->err) < 0)
		goto out;
	if (json) {
		subs = json_array();
		dels = json_array();
		bounces = json_array();
		if (!subs || !dels || !bounces)
			goto oom;
	} else {
		printf("email       %s\n", s.email);
		printf("name        %s\n", s.name[0] ? s.name : "-");
		printf("status      %s\n", s.status);
		if (suppressed)
			printf("suppressed  yes (%s)\n", hit);
		printf("attributes  %s\n", s.attributes);
		printf("created     %s\n", cmd_time(s.created_at, t, sizeof t));
		print_engagement(&eng, env->cfg.sunset_after > 0);
		printf("lists:\n");
	}
	if (subscriber_each_subscription(env->db, s.id, add_subscription, &subs, &env->err) < 0)
		goto out;
	if (!json)
		printf("recent deliveries:\n");
	if (ledger_each_of_subscriber(env->db, s.id, 20, add_delivery, &dels, &env->err) < 0)
		goto out;
	if (!json)
		printf("bounces and complaints:\n");
	if (bouncelog_each(env->db, s.id, 0, 20, add_bounce, &bounces, &env->err) < 0)
		goto out;
	if (!json)
		printf("consent:\n");
	else if (!(consent = json_array()))
		goto oom;
	if (consent_each(env->db, s.id, add_consent, &consent, &env->err) < 0) {
		if (!env->err.code)
			goto oom;   /* add_consent could not build its object */
		goto out;
	}
	if (json) {
		obj = json_pack("{s:I, s:s, s:s, s:s, s:s?, s:o, s:I, s:I, s:o, s:o, s:o, s:o}",
		                "id", (json_int_t)s.id, "email", s.email, "name", s.name,
		                "status", s.status, "suppressed", suppressed ? hit : NULL,
		                "attributes", attrs_json(s.attributes),
		                "created_at", (json_int_t)s.created_at,
		                "updated_at", (json_int_t)s.updated_at,
		                "subscriptions", subs, "deliveries", dels, "bounces", bounces,
		                "engagement", engagement_json(&eng, env->cfg.sunset_after > 0));
		subs = dels = bounces = NULL;
		/* set_new takes the array, also when it fails */
		if (json_object_set_new(obj, "consent", consent) < 0) {
			consent = NULL;
			json_decref(obj);
			goto oom;
		}
		consent = NULL;
		ret = cmd_print_json(obj);
		goto out;
	}
	ret = 0;
	goto out;
oom:
	herr_set(&env->err, EX_OSERR, NULL, "out of memory");
out:
	json_decref(subs);
	json_decref(dels);
	json_decref(bounces);
	json_decref(consent);
	engagement_clear(&eng);
	subscriber_clear(&s);
	return ret;
}

static int
sub_rm(int argc, char **argv, struct cmd_env *env)
{
	struct subscriber s;

	if (argc != 2)
		return cmd_usage_error(cmd_sub_usage, "sub rm needs exactly one ADDR");
	if (subscriber_get(env->db, argv[1], &s, &env->err) < 0)
		return -1;
	if (subscriber_remove(env->db, s.id, &env->err) < 0) {
		subscriber_clear(&s);
		return -1;
	}
	if (!env->quiet)
		printf("removed %s and all their subscriptions and delivery records\n", s.email);
	subscriber_clear(&s);
	return 0;
}

static int
sub_block(int argc, char **argv, struct cmd_env *env)
{
	struct subscriber s;

	if (argc != 2)
		return cmd_usage_error(cmd_sub_usage, "sub block needs exactly one ADDR");
	if (subscriber_get(env->db, argv[1], &s, &env->err) < 0)
		return -1;
	if (subscriber_block(env->db, s.id, &env->err) < 0) {
		subscriber_clear(&s);
		return -1;
	}
	if (!env->quiet)
		printf("blocked %s: no list will mail them\n", s.email);
	subscriber_clear(&s);
	return 0;
}

/* Undo `block` or a bounce (the mailbox works again): subscriber.h rule (7). */
static int
sub_reactivate(int argc, char **argv, struct cmd_env *env)
{
	struct subscriber s;
	char was[16];
	int rc;

	if (argc != 2)
		return cmd_usage_error(cmd_sub_usage, "sub reactivate needs exactly one ADDR");
	if (subscriber_get(env->db, argv[1], &s, &env->err) < 0)
		return -1;
	rc = subscriber_reactivate(env->db, s.id, was, &env->err);
	if (rc == 0 && !env->quiet)
		printf("%s: %s, now active\n", s.email, was);
	subscriber_clear(&s);
	return rc;
}

static int
sub_unsubscribe(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "list", required_argument, NULL, 'l' },
		{ "reason", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *list_name = NULL, *reason = NULL;
	struct subscriber s;
	struct list l;
	int ch;

	while ((ch = getopt_long(argc, argv, "l:", opts, NULL)) != -1) {
		switch (ch) {
		case 'l': list_name = optarg; break;
		case 'r': reason = optarg; break;
		default: return cmd_usage(cmd_sub_usage, 1);
		}
	}
	if (optind + 1 != argc || !list_name)
		return cmd_usage_error(cmd_sub_usage, "sub unsubscribe needs ADDR and --list NAME");
	if (list_get(env->db, list_name, &l, &env->err) < 0 ||
	    subscriber_get(env->db, argv[optind], &s, &env->err) < 0)
		return -1;
	/* the reason is the consent record's (consent.h (6)), given after */
	if (subscription_unsubscribe(env->db, l.id, s.id, "cli", &env->err) < 0 ||
	    (reason && consent_set_reason(env->db, s.id, l.id, reason, &env->err) < 0)) {
		herr_wrap(&env->err, "%s on '%s'", s.email, l.name);
		subscriber_clear(&s);
		return -1;
	}
	if (!env->quiet)
		printf("unsubscribed %s from '%s'\n", s.email, l.name);
	subscriber_clear(&s);
	return 0;
}

/* --- import --- */

static void
import_bad(void *ctx, unsigned long line, const char *reason)
{
	fprintf(stderr, "%s:%lu: %s\n", (const char *)ctx, line, reason);
}

static void
import_note(void *ctx, unsigned long line, const char *msg)
{
	fprintf(stderr, "%s:%lu: note: %s\n", (const char *)ctx, line, msg);
}

static void
import_skipped(void *ctx, unsigned long line, const char *addr, enum subscribe_result res)
{
	fprintf(stderr, "%s:%lu: %s %s\n", (const char *)ctx, line, addr, result_word(res));
}

static int
sub_import(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "list", required_argument, NULL, 'l' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "unconfirmed", no_argument, NULL, 'u' },
		{ "welcome", no_argument, NULL, 'w' },
		{ "email-column", required_argument, NULL, 'E' },
		{ "name-column", required_argument, NULL, 'N' },
		{ NULL, 0, NULL, 0 },
	};
	const char *list_name = NULL, *path;
	struct csvimport_columns cols = { NULL, NULL };
	struct subimport_handler h;
	struct subimport_report rep;
	struct subimport_opts o;
	struct token_key key;
	struct list l;
	long good, skipped;
	int ch, rc;

	memset(&o, 0, sizeof o);
	while ((ch = getopt_long(argc, argv, "l:n", opts, NULL)) != -1) {
		switch (ch) {
		case 'l': list_name = optarg; break;
		case 'n': o.dry_run = 1; break;
		case 'u': o.unconfirmed = 1; break;
		case 'w': o.welcome = 1; break;
		case 'E': cols.email = optarg; break;
		case 'N': cols.name = optarg; break;
		default: return cmd_usage(cmd_sub_usage, 1);
		}
	}
	if (optind + 1 != argc || !list_name)
		return cmd_usage_error(cmd_sub_usage, "sub import needs --list NAME and one FILE.csv");
	if ((cols.email && !cols.email[strspn(cols.email, " \t")]) ||
	    (cols.name && !cols.name[strspn(cols.name, " \t")]))
		return cmd_usage_error(cmd_sub_usage, "--email-column and --name-column need a "
		                       "column name");
	path = argv[optind];
	if (list_get(env->db, list_name, &l, &env->err) < 0 ||
	    token_key_load(env->cfg.secret_file, &key, &env->err) < 0)
		return -1;
	if (!strcmp(path, "-"))
		o.fp = stdin;
	else if (!(o.fp = fopen(path, "rb")))
		return herr_set(&env->err, errno == ENOENT ? EX_NOINPUT : EX_IOERR, path,
		                "cannot open: %s", strerror(errno));
	o.path = path;
	o.list = &l;
	o.columns = &cols;
	h.bad = import_bad;
	h.note = import_note;
	h.skipped = import_skipped;
	h.ctx = (void *)path;
	o.erased_key = &key;
	rc = subimport_run(env->db, &o, &h, &rep, &env->err);
	if (o.fp != stdin)
		fclose(o.fp);
	if (rc < 0)
		return herr_wrap(&env->err, "nothing imported");
	good = rep.counts[SUBSCRIBE_ADDED] + rep.counts[SUBSCRIBE_UPDATED] +
	       rep.counts[SUBSCRIBE_UNCHANGED];
	skipped = rep.counts[SUBSCRIBE_SKIPPED_UNSUBSCRIBED] + rep.counts[SUBSCRIBE_SKIPPED_BLOCKED] +
	          rep.counts[SUBSCRIBE_SKIPPED_SUPPRESSED] + rep.counts[SUBSCRIBE_SKIPPED_ERASED];
	if (!env->quiet || rep.bad)
		fprintf(rep.bad ? stderr : stdout,
		        "%s%s: %ld added, %ld updated, %ld unchanged, %ld skipped, %ld bad row%s%s\n",
		        o.dry_run ? "dry run, nothing written: " : "", path,
		        rep.counts[SUBSCRIBE_ADDED], rep.counts[SUBSCRIBE_UPDATED],
		        rep.counts[SUBSCRIBE_UNCHANGED], skipped, rep.bad, rep.bad == 1 ? "" : "s",
		        !rep.bad ? "" : o.dry_run ? " (the good rows would be imported)" :
		        good ? " (bad rows skipped, good rows imported)" : " (nothing imported)");
	return rep.bad ? EX_DATAERR : 0;
}

/* --- export --- */

struct export_ctx {
	char  **keys;
	size_t  n_keys;
	int     failed;
	struct consent_reader *consent;  /* --with-consent */
	long long list_id;
	struct herr *err;
};

static int
collect_key(void *ctx, const char *key)
{
	struct export_ctx *c = ctx;
	char **grown = realloc(c->keys, (c->n_keys + 1) * sizeof *grown);

	if (!grown || !(grown[c->n_keys] = strdup(key))) {
		if (grown)
			c->keys = grown;
		return -1;
	}
	c->keys = grown;
	c->n_keys++;
	return 0;
}

static void
csv_field(const char *s, int last)
{
	csv_fwrite(stdout, s, strlen(s));
	fputs(last ? "\r\n" : ",", stdout);
}

static int
export_member(void *ctx, const struct member *m)
{
	struct export_ctx *c = ctx;
	json_t *attrs = attrs_json(m->sub->attributes), *v;
	size_t i;

	csv_field(m->sub->email, 0);
	csv_field(m->sub->name, c->n_keys == 0 && !c->consent);
	for (i = 0; i < c->n_keys; i++) {
		v = json_object_get(attrs, c->keys[i]);
		csv_field(json_is_string(v) ? json_string_value(v) : "",
		          i + 1 == c->n_keys && !c->consent);
	}
	json_decref(attrs);
	if (c->consent) {
		char source[CONSENT_SOURCE_MAX], at[32] = "";
		long long t;
		time_t tt;
		struct tm tm;

		if (consent_reader_latest(c->consent, c->list_id, m->sub->id, &t, source,
		                          sizeof source, c->err) < 0)
			return -1;
		/* ISO 8601 in UTC, as import's consent_at reads it back */
		tt = (time_t)t;
		if (t && gmtime_r(&tt, &tm))
			strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
		csv_field(at, 0);
		csv_field(source, 1);
	}
	return ferror(stdout) ? -1 : 0;
}

static int
sub_export(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "list", required_argument, NULL, 'l' },
		{ "status", required_argument, NULL, 's' },
		{ "with-consent", no_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	const char *list_name = NULL, *status = "confirmed";
	struct export_ctx c = { NULL, 0, 0, NULL, 0, NULL };
	struct list l;
	size_t i;
	int ch, ret = -1, with_consent = 0;

	while ((ch = getopt_long(argc, argv, "l:s:", opts, NULL)) != -1) {
		switch (ch) {
		case 'l': list_name = optarg; break;
		case 's': status = optarg; break;
		case 'c': with_consent = 1; break;
		default: return cmd_usage(cmd_sub_usage, 1);
		}
	}
	if (optind != argc || !list_name)
		return cmd_usage_error(cmd_sub_usage, "sub export needs --list NAME");
	if (check_status(status, &env->err) < 0 || list_get(env->db, list_name, &l, &env->err) < 0)
		return -1;
	if (subscriber_attr_keys(env->db, l.id, status, collect_key, &c, &env->err) < 0)
		goto out;
	c.list_id = l.id;
	c.err = &env->err;
	if (with_consent && consent_reader_open(env->db, &c.consent, &env->err) < 0)
		goto out;
	csv_field("email", 0);
	csv_field("name", c.n_keys == 0 && !c.consent);
	for (i = 0; i < c.n_keys; i++)
		csv_field(c.keys[i], i + 1 == c.n_keys && !c.consent);
	if (c.consent) {
		csv_field("consent_at", 0);
		csv_field("consent_source", 1);
	}
	if (subscriber_each_member(env->db, l.id, status, export_member, &c, &env->err) < 0)
		goto out;
	if (fflush(stdout) != 0) {
		herr_set(&env->err, EX_IOERR, NULL, "write error: %s", strerror(errno));
		goto out;
	}
	ret = 0;
out:
	consent_reader_close(c.consent);
	for (i = 0; i < c.n_keys; i++)
		free(c.keys[i]);
	free(c.keys);
	if (ret < 0 && !env->err.code)
		herr_set(&env->err, EX_IOERR, NULL, "export failed");
	return ret;
}

/* --- a person's data: export and erasure (privacy.h) --- */

static int
sub_export_data(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = NULL;
	struct address a;
	json_t *doc;
	FILE *fp;
	int ch, rc, fd;

	while ((ch = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
		if (ch != 'o')
			return cmd_usage(cmd_sub_usage, 1);
		out = optarg;
	}
	if (optind + 1 != argc)
		return cmd_usage_error(cmd_sub_usage, "sub export-data needs exactly one ADDR");
	if (address_parse(argv[optind], &a, &env->err) < 0 ||
	    privacy_export(env->db, &a, db_now(), &doc, &env->err) < 0)
		return -1;
	if (!out)
		return cmd_print_json(doc);
	/* the person's data: a new file is readable by its owner only */
	if ((fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
	    !(fp = fdopen(fd, "w"))) {
		if (fd >= 0)
			close(fd);
		json_decref(doc);
		return herr_set(&env->err, EX_CANTCREAT, out, "cannot write: %s", strerror(errno));
	}
	rc = json_dumpf(doc, fp, JSON_INDENT(2));
	json_decref(doc);
	if (rc < 0 || fputc('\n', fp) == EOF || fclose(fp) != 0)
		return herr_set(&env->err, EX_IOERR, out, "write error: %s", strerror(errno));
	if (!env->quiet)
		printf("wrote everything herald holds about %s to %s\n", a.addr, out);
	return 0;
}

static int
sub_forget(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "by", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	struct privacy_forget_result res;
	const char *by = NULL;
	struct token_key key;
	struct address a;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "b:", opts, NULL)) != -1) {
		if (ch != 'b')
			return cmd_usage(cmd_sub_usage, 1);
		by = optarg;
	}
	if (optind + 1 != argc || !by)
		return cmd_usage_error(cmd_sub_usage, "sub forget needs ADDR and --by TEXT "
		                       "(who erases, for the erasure log)");
	if (address_parse(argv[optind], &a, &env->err) < 0 ||
	    token_key_load(env->cfg.secret_file, &key, &env->err) < 0)
		return -1;
	rc = privacy_forget(env->db, &key, &a, by, db_now(), &res, &env->err);
	explicit_bzero(&key, sizeof key);
	if (rc < 0)
		return -1;
	if (!env->quiet) {
		printf("erased %s%s; %lld delivery, event and bounce record%s kept for the "
		       "issues' figures, linked to nobody\n", a.addr,
		       res.subscriber ? "" : " (not a subscriber: what named the address)",
		       res.kept, res.kept == 1 ? "" : "s");
		if (res.suppressed)
			printf("its suppression is kept as a keyed hash only: no sign-up can bring "
			       "the address back\n");
		if (!res.checkpointed)
			printf("note: another process is reading the database, so the erased bytes "
			       "may stay in %s-wal until its next checkpoint\n", env->cfg.db_path);
	}
	return 0;
}

int
cmd_sub(int argc, char **argv, struct cmd_env *env)
{
	static const struct {
		const char *verb;
		int (*fn)(int, char **, struct cmd_env *);
	} verbs[] = {
		{ "add", sub_add }, { "ls", sub_ls }, { "show", sub_show }, { "rm", sub_rm },
		{ "unsubscribe", sub_unsubscribe }, { "block", sub_block },
		{ "reactivate", sub_reactivate },
		{ "import", sub_import }, { "export", sub_export },
		{ "export-data", sub_export_data }, { "forget", sub_forget },
	};
	size_t i;

	if (argc < 2)
		return cmd_usage_error(cmd_sub_usage, "sub needs a verb");
	for (i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		if (!strcmp(argv[1], verbs[i].verb))
			return verbs[i].fn(argc - 1, argv + 1, env);
	return cmd_usage_error(cmd_sub_usage, "unknown verb 'sub %s'", argv[1]);
}
