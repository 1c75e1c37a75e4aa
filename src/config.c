/*
 * config.c - reading and checking herald.conf (see config.h).
 *
 * Every key is one row of `keys[]` below: section, name, type, where it is
 * stored, and its default.  Parsing (inih) only records raw strings and line
 * numbers; validate() then checks each value and the keys that depend on each
 * other, collecting every problem with its line rather than stopping at the
 * first, so `herald config check` shows the whole picture in one run.  An
 * unknown key or section names the one likely meant (suggest.h): a typo is
 * the usual reason for it.
 */
#include "herald/config.h"
#include "herald/sequence.h"
#include "herald/suggest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

enum key_type {
	KEY_STRING,
	KEY_PATH,    /* resolved against the config file's directory */
	KEY_LONG,
	KEY_DOUBLE,
	KEY_BOOL,
	KEY_STARTTLS,
	KEY_SYNC,      /* normal | full */
	KEY_MULTILINE, /* continuation lines are joined with "\n" */
};

struct key {
	const char   *section;
	const char   *name;
	enum key_type type;
	size_t        offset;  /* of the field in struct config / struct config_relay */
	const char   *dflt;    /* NULL: no default */
	long          min, max;/* KEY_LONG and KEY_DOUBLE range */
};

#define F(field) offsetof(struct config, field)
static const struct key keys[] = {
	{ "database", "path",            KEY_PATH,      F(db_path),            NULL, 0, 0 },
	{ "database", "busy_timeout",    KEY_LONG,      F(db_busy_timeout_ms), "5000", 0, 600000 },
	{ "database", "synchronous",     KEY_SYNC,      F(db_sync_full),       "normal", 0, 0 },
	{ "sender",   "from",            KEY_STRING,    F(sender_from),        NULL, 0, 0 },
	{ "sender",   "reply_to",        KEY_STRING,    F(sender_reply_to),    NULL, 0, 0 },
	{ "sender",   "postal_address",  KEY_MULTILINE, F(postal_address),     NULL, 0, 0 },
	{ "sender",   "message_id_domain", KEY_STRING,  F(message_id_domain),  NULL, 0, 0 },
	{ "sender",   "return_path",     KEY_STRING,    F(return_path),        NULL, 0, 0 },
	{ "sender",   "verp",            KEY_BOOL,      F(verp),               "yes", 0, 0 },
	{ "sender",   "feedback_id",     KEY_STRING,    F(feedback_id),        "herald", 0, 0 },
	{ "dkim",     "domain",          KEY_STRING,    F(dkim_domain),        NULL, 0, 0 },
	{ "dkim",     "selector",        KEY_STRING,    F(dkim_selector),      NULL, 0, 0 },
	{ "dkim",     "private_key",     KEY_PATH,      F(dkim_key),           NULL, 0, 0 },
	{ "dkim",     "ed25519_selector", KEY_STRING,   F(dkim_ed_selector),   NULL, 0, 0 },
	{ "dkim",     "ed25519_private_key", KEY_PATH,  F(dkim_ed_key),        NULL, 0, 0 },
	{ "dkim",     "expire",          KEY_STRING,    F(dkim_expire_text),   NULL, 0, 0 },
	{ "send",     "workers",         KEY_LONG,      F(workers),            "0", 0, 64 },
	{ "send",     "retry",           KEY_STRING,    F(retry_text),         "5m 15m 1h 4h 12h", 0, 0 },
	{ "send",     "retry_window",    KEY_STRING,    F(retry_window_text),  "3d", 0, 0 },
	{ "web",      "base_url",        KEY_STRING,    F(base_url),           NULL, 0, 0 },
	{ "web",      "secret_file",     KEY_PATH,      F(secret_file),        NULL, 0, 0 },
	{ "web",      "tracking",        KEY_BOOL,      F(tracking),           "yes", 0, 0 },
	{ "web",      "confirm_ttl",     KEY_STRING,    F(confirm_ttl_text),   "7d", 0, 0 },
	{ "web",      "trusted_proxies", KEY_STRING,    F(trusted_proxies),    NULL, 0, 0 },
	{ "web",      "max_connections_per_client", KEY_LONG, F(web_per_client), "32", 1, 10000 },
	{ "webhooks", "retry",           KEY_STRING,    F(webhook_retry_text), "10s 1m 5m 15m 1h", 0, 0 },
	{ "webhooks", "give_up",         KEY_STRING,    F(webhook_give_up_text), "24h", 0, 0 },
	{ "api",      "rate",            KEY_LONG,      F(api_rate),           "100", 1, 100000 },
	{ "api",      "max_body",        KEY_LONG,      F(api_max_body),       "8388608", 1024,
	  268435456 },
	{ "bounce",   "mailbox",         KEY_STRING,    F(bounce_mailbox),     NULL, 0, 0 },
	{ "bounce",   "username",        KEY_STRING,    F(bounce_username),    NULL, 0, 0 },
	{ "bounce",   "password_file",   KEY_PATH,      F(bounce_password_file), NULL, 0, 0 },
	{ "bounce",   "ca_file",         KEY_PATH,      F(bounce_ca_file),     NULL, 0, 0 },
	{ "bounce",   "soft_limit",      KEY_LONG,      F(bounce_soft_limit),  "3", 1, 1000 },
	{ "bounce",   "soft_window",     KEY_STRING,    F(bounce_soft_window_text), "30d", 0, 0 },
	{ "audience", "sunset_after",    KEY_STRING,    F(sunset_after_text),  "off", 0, 0 },
	{ "sequences", "timezone",       KEY_STRING,    F(sequence_timezone),  "UTC", 0, 0 },
	{ "privacy",  "store_ip",        KEY_STRING,    F(store_ip_text),      "yes", 0, 0 },
	{ "tracking", "mode",            KEY_STRING,    F(tracking_mode_text), "on", 0, 0 },
	{ "retention", "events",         KEY_STRING,    F(retention_events_text), "off", 0, 0 },
	{ "retention", "deliveries",     KEY_STRING,    F(retention_deliveries_text), "off", 0, 0 },
	{ "retention", "inbound",        KEY_STRING,    F(retention_inbound_text), "off", 0, 0 },
	{ "render",   "html_template",   KEY_PATH,      F(html_template),      NULL, 0, 0 },
	{ "render",   "text_template",   KEY_PATH,      F(text_template),      NULL, 0, 0 },
	{ "render",   "lang",            KEY_STRING,    F(lang),               "en", 0, 0 },
	{ "metrics",  "listen",          KEY_STRING,    F(metrics_listen),     NULL, 0, 0 },
	{ "metrics",  "allow",           KEY_STRING,    F(metrics_allow_text), "127.0.0.1/8 ::1", 0, 0 },
	{ "log",      "format",          KEY_STRING,    F(log_format_text),    "text", 0, 0 },
	{ "log",      "target",          KEY_STRING,    F(log_target_text),    "stderr", 0, 0 },
};
#undef F
#define NKEYS (sizeof keys / sizeof keys[0])

/* The keys of [smtp] and of every [smtp.NAME]. */
#define R(field) offsetof(struct config_relay, field)
static const struct key relay_keys[] = {
	{ "smtp", "url",             KEY_STRING,   R(url),             NULL, 0, 0 },
	{ "smtp", "username",        KEY_STRING,   R(username),        NULL, 0, 0 },
	{ "smtp", "password_env",    KEY_STRING,   R(password_env),    NULL, 0, 0 },
	{ "smtp", "password_file",   KEY_PATH,     R(password_file),   NULL, 0, 0 },
	{ "smtp", "starttls",        KEY_STARTTLS, R(starttls),        "required", 0, 0 },
	{ "smtp", "tls_verify",      KEY_BOOL,     R(tls_verify),      "yes", 0, 0 },
	{ "smtp", "ca_file",         KEY_PATH,     R(ca_file),         NULL, 0, 0 },
	{ "smtp", "helo",            KEY_STRING,   R(helo),            NULL, 0, 0 },
	{ "smtp", "timeout",         KEY_LONG,     R(timeout),         "60", 1, 3600 },
	{ "smtp", "connect_timeout", KEY_LONG,     R(connect_timeout), "15", 1, 600 },
	{ "smtp", "connections",     KEY_LONG,     R(connections),     "8", 1, 100 },
	{ "smtp", "rate",            KEY_DOUBLE,   R(rate),            "0", 0, 100000 },
	{ "smtp", "max_per_hour",    KEY_LONG,     R(max_per_hour),    "0", 0, 10000000 },
	{ "smtp", "max_per_day",     KEY_LONG,     R(max_per_day),     "0", 0, 100000000 },
};
#undef R
#define NRKEYS (sizeof relay_keys / sizeof relay_keys[0])
#define MAX_RELAYS 16

/* Raw values of one relay section. */
struct relay_raw {
	char         *name;
	unsigned long line;
	char         *raw[NRKEYS];
	unsigned long raw_line[NRKEYS];
};

/* Parser state: raw values and where they were set. */
struct parse {
	struct config *c;
	FILE          *fp;
	unsigned long  line;          /* physical line being parsed */
	int            continuation;  /* current line starts with whitespace */
	int            too_long;      /* current line exceeded inih's buffer */
	char          *raw[NKEYS];
	unsigned long  raw_line[NKEYS];
	struct relay_raw relays[MAX_RELAYS];
	size_t         n_relays;
	char         **last_value;    /* the value the previous line set */
	enum key_type  last_type;
};

static int problem(struct config *c, unsigned long line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int warning(struct config *c, unsigned long line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
push(char ***list, size_t *n, const char *path, unsigned long line,
     const char *fmt, va_list ap)
{
	char msg[768], *s, **grown;
	int len;

	vsnprintf(msg, sizeof msg, fmt, ap);
	if (line)
		len = snprintf(NULL, 0, "%s:%lu: %s", path, line, msg);
	else
		len = snprintf(NULL, 0, "%s: %s", path, msg);
	if (len < 0 || !(s = malloc((size_t)len + 1)))
		return -1;
	if (line)
		snprintf(s, (size_t)len + 1, "%s:%lu: %s", path, line, msg);
	else
		snprintf(s, (size_t)len + 1, "%s: %s", path, msg);
	grown = realloc(*list, (*n + 1) * sizeof *grown);
	if (!grown) {
		free(s);
		return -1;
	}
	*list = grown;
	(*list)[(*n)++] = s;
	return 0;
}

static int
problem(struct config *c, unsigned long line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	push(&c->problems, &c->n_problems, c->path, line, fmt, ap);
	va_end(ap);
	return -1;
}

static int
warning(struct config *c, unsigned long line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	push(&c->warnings, &c->n_warnings, c->path, line, fmt, ap);
	va_end(ap);
	return 0;
}

/* inih's line source: fgets() that also counts lines, notices continuation
 * lines, and flags lines longer than inih's fixed buffer. */
static char *
reader(char *str, int num, void *stream)
{
	struct parse *p = stream;
	int ch;

	if (!fgets(str, num, p->fp))
		return NULL;
	p->line++;
	p->continuation = (str[0] == ' ' || str[0] == '\t');
	p->too_long = 0;
	if (!strchr(str, '\n') && !feof(p->fp)) {
		p->too_long = 1;
		while ((ch = fgetc(p->fp)) != EOF && ch != '\n')
			;
	}
	return str;
}

static int
find_in(const struct key *table, size_t n, const char *section, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((!section || strcasecmp(table[i].section, section) == 0) &&
		    strcasecmp(table[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int
find_key(const char *section, const char *name)
{
	return find_in(keys, NKEYS, section, name);
}

/* "smtp" or "smtp.NAME": the relay raw record for it, made on first sight. */
static struct relay_raw *
relay_section(struct parse *p, const char *section)
{
	const char *name;
	size_t i;

	if (strcasecmp(section, "smtp") == 0)
		name = "smtp";
	else if (strncasecmp(section, "smtp.", 5) == 0 && section[5])
		name = section + 5;
	else
		return NULL;
	for (i = 0; i < p->n_relays; i++)
		if (strcmp(p->relays[i].name, name) == 0)
			return &p->relays[i];
	if (p->n_relays == MAX_RELAYS) {
		problem(p->c, p->line, "more than %d relays", MAX_RELAYS);
		return NULL;
	}
	p->relays[p->n_relays].name = strdup(name);
	p->relays[p->n_relays].line = p->line;
	return &p->relays[p->n_relays++];
}

static int
known_section(const char *section)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (strcasecmp(keys[i].section, section) == 0)
			return 1;
	return 0;
}

/*
 * What to add to "unknown key 'NAME' in [SECTION]": "; did you mean 'KEY'?"
 * for the closest key of that section (`table`, rows of `section` or all
 * rows when it is NULL), else "; it belongs in [web]" when NAME is a key of
 * other sections, else "".  Written into `out`, which is returned.
 */
static const char *
key_hint(char *out, size_t size, const struct key *table, size_t n,
         const char *section, const char *name)
{
	const char *cands[NKEYS > NRKEYS ? NKEYS : NRKEYS], *best, *secs[4];
	size_t i, m = 0, n_secs = 0, j, len;

	out[0] = '\0';
	for (i = 0; i < n; i++)
		if (!section || !strcasecmp(table[i].section, section))
			cands[m++] = table[i].name;
	if ((best = suggest_closest(name, cands, m))) {
		snprintf(out, size, "; did you mean '%s'?", best);
		return out;
	}
	if (find_in(relay_keys, NRKEYS, NULL, name) >= 0)
		secs[n_secs++] = "smtp";
	for (i = 0; i < NKEYS && n_secs < sizeof secs / sizeof secs[0]; i++)
		if (!strcasecmp(keys[i].name, name)) {
			for (j = 0; j < n_secs && strcmp(secs[j], keys[i].section); j++)
				;
			if (j == n_secs)
				secs[n_secs++] = keys[i].section;
		}
	for (j = 0; j < n_secs; j++) {
		len = strlen(out);
		snprintf(out + len, size - len, "%s[%s]",
		         j == 0 ? "; it belongs in " : j + 1 == n_secs ? " or " : ", ", secs[j]);
	}
	return out;
}

/* "; did you mean [smtp]?" for the known section closest to `section`
 * ("[smtp.NAME]" for a misspelt "smpt.NAME"), or "".  Into `out`. */
static const char *
section_hint(char *out, size_t size, const char *section)
{
	const char *cands[NKEYS + 1], *best, *dot = strchr(section, '.');
	static const char *const smtp[] = { "smtp" };
	char head[SUGGEST_MAX_LEN + 1];
	size_t i, j, m = 0;

	out[0] = '\0';
	if (dot) {
		/* [smpt.backup]: the part before the dot can only mean smtp */
		snprintf(head, sizeof head, "%.*s", (int)(dot - section), section);
		if (dot[1] && suggest_closest(head, smtp, 1))
			snprintf(out, size, "; did you mean [smtp.%s]?", dot + 1);
		return out;
	}
	cands[m++] = "smtp";
	for (i = 0; i < NKEYS; i++) {
		for (j = 0; j < m && strcmp(cands[j], keys[i].section); j++)
			;
		if (j == m)
			cands[m++] = keys[i].section;
	}
	if ((best = suggest_closest(section, cands, m)))
		snprintf(out, size, "; did you mean [%s]?", best);
	return out;
}

/* Record one raw value; `slot`/`slot_line` are where it goes. */
static int
set_raw(struct parse *p, char **slot, unsigned long *slot_line, enum key_type type,
        const char *section, const char *name, const char *value)
{
	char *joined;

	if (p->continuation && p->last_value == slot && *slot) {
		if (type != KEY_MULTILINE) {
			problem(p->c, p->line, "'%s' does not take continuation lines", name);
			return 1;
		}
		joined = malloc(strlen(*slot) + strlen(value) + 2);
		if (!joined)
			return 0;
		sprintf(joined, "%s\n%s", *slot, value);
		free(*slot);
		*slot = joined;
		return 1;
	}
	if (*slot) {
		problem(p->c, p->line, "'%s' in [%s] is already set on line %lu",
		        name, section, *slot_line);
		return 1;
	}
	if (!(*slot = strdup(value)))
		return 0;
	*slot_line = p->line;
	p->last_value = slot;
	p->last_type = type;
	return 1;
}

static int
handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;
	struct relay_raw *r;
	char hint[160];
	int k;

	if (p->too_long) {
		problem(p->c, p->line, "line is longer than %d characters", 198);
		return 1;
	}
	if (!strncasecmp(section, "smtp", 4) && (!section[4] || section[4] == '.')) {
		if (!(r = relay_section(p, section)))
			return 1;
		k = find_in(relay_keys, NRKEYS, NULL, name);
		if (k < 0) {
			problem(p->c, p->line, "unknown key '%s' in [%s]%s", name, section,
			        key_hint(hint, sizeof hint, relay_keys, NRKEYS, NULL, name));
			return 1;
		}
		return set_raw(p, &r->raw[k], &r->raw_line[k], relay_keys[k].type, section,
		               name, value);
	}
	if (!known_section(section)) {
		problem(p->c, p->line, "unknown section [%s]%s", section,
		        section_hint(hint, sizeof hint, section));
		return 1;
	}
	k = find_key(section, name);
	if (k < 0) {
		problem(p->c, p->line, "unknown key '%s' in [%s]%s", name, section,
		        key_hint(hint, sizeof hint, keys, NKEYS, section, name));
		return 1;
	}
	return set_raw(p, &p->raw[k], &p->raw_line[k], keys[k].type, section, name, value);
}

char *
config_resolve_path(const struct config *c, const char *path)
{
	char *s;

	if (path[0] == '/' || !c->dir || strcmp(c->dir, ".") == 0)
		return strdup(path);
	if (!(s = malloc(strlen(c->dir) + strlen(path) + 2)))
		return NULL;
	sprintf(s, "%s/%s", c->dir, path);
	return s;
}

static int
parse_bool(const char *v, int *out)
{
	if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1") ||
	    !strcasecmp(v, "on"))
		*out = 1;
	else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcmp(v, "0") ||
	         !strcasecmp(v, "off"))
		*out = 0;
	else
		return -1;
	return 0;
}

static int
has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 && *s != '\n')
			return 1;
		else if (*s == 0x7f)
			return 1;
	return 0;
}

/* Store one raw value (or the default) into `base` per the key's type. */
static void
store(struct config *c, void *base, const struct key *key, const char *v,
      unsigned long line)
{
	void *field = (char *)base + key->offset;
	char *end;
	long n;
	double d;

	if (has_control(v)) {
		problem(c, line, "'%s' contains a control character", key->name);
		return;
	}
	switch (key->type) {
	case KEY_STRING:
	case KEY_MULTILINE:
		if (!*v)
			return; /* empty means unset */
		*(char **)field = strdup(v);
		break;
	case KEY_PATH:
		if (!*v)
			return;
		*(char **)field = config_resolve_path(c, v);
		break;
	case KEY_LONG:
		errno = 0;
		n = strtol(v, &end, 10);
		if (errno || end == v || *end || n < key->min || n > key->max) {
			problem(c, line, "'%s' must be a whole number from %ld to %ld, not '%s'",
			        key->name, key->min, key->max, v);
			return;
		}
		*(long *)field = n;
		break;
	case KEY_DOUBLE:
		errno = 0;
		d = strtod(v, &end);
		if (errno || end == v || *end || d < (double)key->min || d > (double)key->max) {
			problem(c, line, "'%s' must be a number from %ld to %ld, not '%s'",
			        key->name, key->min, key->max, v);
			return;
		}
		*(double *)field = d;
		break;
	case KEY_BOOL:
		if (parse_bool(v, (int *)field) < 0)
			problem(c, line, "'%s' must be yes or no, not '%s'", key->name, v);
		break;
	case KEY_SYNC:
		if (!strcasecmp(v, "normal"))
			*(int *)field = 0;
		else if (!strcasecmp(v, "full"))
			*(int *)field = 1;
		else
			problem(c, line, "'synchronous' must be normal or full, not '%s'", v);
		break;
	case KEY_STARTTLS:
		if (!strcasecmp(v, "required"))
			*(enum config_starttls *)field = CONFIG_STARTTLS_REQUIRED;
		else if (!strcasecmp(v, "optional"))
			*(enum config_starttls *)field = CONFIG_STARTTLS_OPTIONAL;
		else if (!strcasecmp(v, "never"))
			*(enum config_starttls *)field = CONFIG_STARTTLS_NEVER;
		else
			problem(c, line, "'starttls' must be required, optional or never, not '%s'", v);
		break;
	}
}

int
config_parse_cidr(const char *s, struct config_cidr *out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	long bits;
	char *end;
	int max, i;

	if (n == 0 || n >= sizeof host)
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	memset(out, 0, sizeof *out);
	if (inet_pton(AF_INET, host, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else
		return -1;
	out->bits = max;
	if (slash) {
		errno = 0;
		bits = strtol(slash + 1, &end, 10);
		if (!slash[1] || *end || errno || bits < 0 || bits > max)
			return -1;
		out->bits = (int)bits;
	}
	/* the host bits of "10.1.2.3/8" do not matter: clear them */
	for (i = out->bits; i < max; i++)
		out->addr[i / 8] &= (unsigned char)~(0x80u >> (i % 8));
	return 0;
}

int
config_cidr_match(const struct config_cidr *c, int family, const unsigned char *addr)
{
	int i;

	if (family != c->family)
		return 0;
	for (i = 0; i < c->bits / 8; i++)
		if (addr[i] != c->addr[i])
			return 0;
	if (c->bits % 8) {
		unsigned char mask = (unsigned char)(0xff00u >> (c->bits % 8));

		if ((addr[i] & mask) != c->addr[i])
			return 0;
	}
	return 1;
}

/* A list of addresses or networks, separated by spaces or commas, into a
 * new array: [web] trusted_proxies, [metrics] allow. */
static void
parse_cidr_list(struct config *c, unsigned long line, const char *key, const char *text,
                struct config_cidr **out, size_t *n_out)
{
	char item[INET6_ADDRSTRLEN + 8];
	const char *p = text;
	size_t n;

	free(*out);
	*n_out = 0;
	if (!(*out = calloc(CONFIG_PROXIES_MAX, sizeof **out))) {
		problem(c, line, "out of memory");
		return;
	}
	for (;;) {
		p += strspn(p, " \t,");
		if (!*p)
			break;
		n = strcspn(p, " \t,");
		snprintf(item, sizeof item, "%.*s", (int)(n < sizeof item ? n : sizeof item - 1), p);
		if (n >= sizeof item || config_parse_cidr(item, &(*out)[*n_out]) < 0) {
			problem(c, line, "'%s' wants addresses or networks such as "
			        "127.0.0.1 or 10.0.0.0/8, not '%.*s'", key, (int)(n > 60 ? 60 : n), p);
			return;
		}
		if (++*n_out == CONFIG_PROXIES_MAX) {
			problem(c, line, "'%s' takes at most %d entries", key, CONFIG_PROXIES_MAX);
			return;
		}
		p += n;
	}
}

long
config_parse_duration(const char *s)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (errno || end == s || n < 0)
		return -1;
	switch (*end) {
	case '\0': case 's': break;
	case 'm': n *= 60; break;
	case 'h': n *= 3600; break;
	case 'd': n *= 86400; break;
	default: return -1;
	}
	if (*end && end[1])
		return -1;
	return n;
}

long long
config_parse_period(const char *s)
{
	static const struct {
		const char *unit;
		long long   secs;
	} units[] = {
		{ "d", 86400 }, { "day", 86400 }, { "days", 86400 },
		{ "w", 604800 }, { "week", 604800 }, { "weeks", 604800 },
		{ "month", 2629746 }, { "months", 2629746 },
		{ "y", 31556952 }, { "year", 31556952 }, { "years", 31556952 },
	};
	char *end;
	long long n;
	size_t i;

	if (!strcasecmp(s, "off"))
		return 0;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno || end == s || n <= 0 || n > 1000)
		return -1;
	while (*end == ' ')
		end++;
	for (i = 0; i < sizeof units / sizeof units[0]; i++)
		if (!strcasecmp(end, units[i].unit))
			return n * units[i].secs;
	return -1;
}

int
config_url_is_loopback(const char *url)
{
	const char *h = strstr(url, "://");

	if (!h)
		return 0;
	h += 3;
	return !strncmp(h, "127.", 4) || !strncasecmp(h, "localhost", 9) ||
	       !strncmp(h, "[::1]", 5);
}

static void
check_mailbox(struct config *c, unsigned long line, const char *key, const char *v,
              char *name, size_t name_size, struct address *a)
{
	struct herr e;

	herr_clear(&e);
	if (address_parse_mailbox(v, name, name_size, a, &e) < 0)
		problem(c, line, "'%s': %s", key, e.msg);
}

static void
validate_relay(struct config *c, struct config_relay *r, const struct relay_raw *raw)
{
	const char *sec = r->name;
	char section[80];
	struct stat st;

#define RLINE(name) (raw->raw_line[find_in(relay_keys, NRKEYS, NULL, name)] ? \
                     raw->raw_line[find_in(relay_keys, NRKEYS, NULL, name)] : raw->line)
	snprintf(section, sizeof section, strcmp(sec, "smtp") ? "[smtp.%s]" : "[%s]", sec);
	if (!r->url)
		problem(c, raw->line, "%s url is required", section);
	else if (strncasecmp(r->url, "smtp://", 7) && strncasecmp(r->url, "smtps://", 8))
		problem(c, RLINE("url"), "'url' must start with smtp:// or smtps://, not '%s'",
		        r->url);
	else if (!strncasecmp(r->url, "smtp://", 7) &&
	         r->starttls == CONFIG_STARTTLS_NEVER && !config_url_is_loopback(r->url))
		warning(c, RLINE("starttls"),
		        "starttls = never sends mail and passwords in clear text to a remote relay");
	if (r->password_env && r->password_file)
		problem(c, RLINE("password_file"),
		        "set either password_env or password_file, not both");
	if ((r->password_env || r->password_file) && !r->username)
		problem(c, raw->line, "%s a password source is set but username is not", section);
	if (r->username && !r->password_env && !r->password_file)
		problem(c, RLINE("username"), "'username' needs password_env or password_file");
	/* Only a warning: `herald init` or `list ls` must not need the
	 * password; the send itself fails clearly when it is missing. */
	if (r->password_env && !getenv(r->password_env))
		warning(c, RLINE("password_env"),
		        "environment variable '%s' named by password_env is not set",
		        r->password_env);
	if (r->password_file) {
		if (stat(r->password_file, &st) < 0)
			problem(c, RLINE("password_file"), "password_file '%s': %s",
			        r->password_file, strerror(errno));
		else if (access(r->password_file, R_OK) < 0)
			problem(c, RLINE("password_file"), "password_file '%s' is not readable",
			        r->password_file);
		else if (st.st_mode & (S_IRWXG | S_IRWXO))
			warning(c, RLINE("password_file"),
			        "password_file '%s' is readable by others (chmod 600 it)",
			        r->password_file);
	}
	if (r->max_per_day && r->max_per_hour > r->max_per_day)
		warning(c, RLINE("max_per_hour"),
		        "max_per_hour is above max_per_day; the day's cap will rule");
#undef RLINE
}

/* A list of durations ("5m 15m 1h") into out; 0, or -1 when one is not a
 * duration or there are more than CONFIG_RETRY_MAX. */
static int
parse_steps(const char *text, long *out, size_t *n)
{
	char *copy, *tok, *save;
	long v;
	int rc = 0;

	*n = 0;
	if (!text || !(copy = strdup(text)))
		return 0;
	for (tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		v = config_parse_duration(tok);
		if (v <= 0 || *n == CONFIG_RETRY_MAX) {
			*n = 0;
			rc = -1;
			break;
		}
		out[(*n)++] = v;
	}
	free(copy);
	return rc;
}

static void
validate_retry(struct parse *p)
{
	struct config *c = p->c;

	if (parse_steps(c->retry_text, c->retry, &c->n_retry) < 0)
		problem(c, p->raw_line[find_key("send", "retry")],
		        "'retry' must be up to %d durations such as 5m 15m 1h 4h 12h, "
		        "not '%s'", CONFIG_RETRY_MAX, c->retry_text);
	c->retry_window = c->retry_window_text ? config_parse_duration(c->retry_window_text) : -1;
	if (c->retry_window <= 0)
		problem(c, p->raw_line[find_key("send", "retry_window")],
		        "'retry_window' must be a duration such as 3d or 72h, not '%s'",
		        c->retry_window_text ? c->retry_window_text : "");
	if (parse_steps(c->webhook_retry_text, c->webhook_retry, &c->n_webhook_retry) < 0 ||
	    !c->n_webhook_retry)
		problem(c, p->raw_line[find_key("webhooks", "retry")],
		        "'retry' must be up to %d durations such as 10s 1m 5m 15m 1h, "
		        "not '%s'", CONFIG_RETRY_MAX, c->webhook_retry_text ? c->webhook_retry_text
		                                                              : "");
	c->webhook_give_up = c->webhook_give_up_text
	                     ? config_parse_duration(c->webhook_give_up_text) : -1;
	if (c->webhook_give_up <= 0)
		problem(c, p->raw_line[find_key("webhooks", "give_up")],
		        "'give_up' must be a duration such as 24h, not '%s'",
		        c->webhook_give_up_text ? c->webhook_give_up_text : "");
}

static void
validate_dkim(struct parse *p)
{
	struct config *c = p->c;
	const char *id;

#define DLINE(name) p->raw_line[find_key("dkim", name)]
	if (c->dkim_key && !c->dkim_selector)
		problem(c, DLINE("private_key"), "[dkim] private_key needs a selector");
	if (c->dkim_selector && !c->dkim_key)
		problem(c, DLINE("selector"), "[dkim] selector needs a private_key");
	if (c->dkim_ed_key && !c->dkim_ed_selector)
		problem(c, DLINE("ed25519_private_key"),
		        "[dkim] ed25519_private_key needs an ed25519_selector");
	if (c->dkim_ed_selector && !c->dkim_ed_key)
		problem(c, DLINE("ed25519_selector"),
		        "[dkim] ed25519_selector needs an ed25519_private_key");
	if (c->dkim_ed_key && !c->dkim_key)
		problem(c, DLINE("ed25519_private_key"),
		        "[dkim] an Ed25519 key is only used beside an RSA key (private_key): "
		        "receivers that do not know Ed25519 need the RSA signature");
	c->dkim_expire = 0;
	if (c->dkim_expire_text &&
	    (c->dkim_expire = config_parse_duration(c->dkim_expire_text)) <= 0)
		problem(c, DLINE("expire"), "'expire' must be a duration such as 7d, not '%s'",
		        c->dkim_expire_text);
	for (id = c->feedback_id; id && *id; id++)
		if (*id == ':' || *id == ' ' || (unsigned char)*id > 0x7e) {
			problem(c, p->raw_line[find_key("sender", "feedback_id")],
			        "'feedback_id' must be printable ASCII without ':' or spaces");
			break;
		}
#undef DLINE
}

static void
validate(struct parse *p)
{
	struct config *c = p->c;
	int k;

#define LINE(sec, name) p->raw_line[find_key(sec, name)]
	if (!c->db_path)
		problem(c, 0, "[database] path is required");
	if (!p->n_relays)
		problem(c, 0, "[smtp] url is required");
	for (k = 0; k < (int)c->n_relays; k++)
		validate_relay(c, &c->relays[k], &p->relays[k]);
	validate_retry(p);
	validate_dkim(p);
	if (!c->sender_from)
		problem(c, 0, "[sender] from is required");
	else
		check_mailbox(c, LINE("sender", "from"), "from", c->sender_from,
		              c->from_name, sizeof c->from_name, &c->from);
	if (c->sender_reply_to)
		check_mailbox(c, LINE("sender", "reply_to"), "reply_to", c->sender_reply_to,
		              c->reply_to_name, sizeof c->reply_to_name, &c->reply_to);
	if (c->return_path) {
		char ignored[256];
		check_mailbox(c, LINE("sender", "return_path"), "return_path", c->return_path,
		              ignored, sizeof ignored, &c->return_addr);
	}
	if (!c->postal_address)
		problem(c, 0, "[sender] postal_address is required: bulk mail must carry the "
		        "sender's postal address (CAN-SPAM, PECR)");
	if (c->message_id_domain) {
		struct address a;
		struct herr e;
		char probe[300];

		snprintf(probe, sizeof probe, "x@%s", c->message_id_domain);
		if (address_parse(probe, &a, &e) < 0)
			problem(c, LINE("sender", "message_id_domain"),
			        "'message_id_domain' is not a valid domain: '%s'", c->message_id_domain);
	}
	if (!c->base_url)
		problem(c, 0, "[web] base_url is required (unsubscribe links point there)");
	else {
		size_t n = strlen(c->base_url);

		if (strncmp(c->base_url, "https://", 8) && strncmp(c->base_url, "http://", 7))
			problem(c, LINE("web", "base_url"),
			        "'base_url' must start with https:// or http://, not '%s'", c->base_url);
		else if (!strncmp(c->base_url, "http://", 7) && !config_url_is_loopback(c->base_url))
			warning(c, LINE("web", "base_url"),
			        "base_url is not https: mail clients will warn about its links");
		while (n > 0 && c->base_url[n - 1] == '/')
			c->base_url[--n] = '\0';
	}
	if ((c->confirm_ttl = config_parse_duration(c->confirm_ttl_text)) <= 0)
		problem(c, LINE("web", "confirm_ttl"),
		        "'confirm_ttl' must be a duration such as 7d or 48h, not '%s'",
		        c->confirm_ttl_text);
	if (c->trusted_proxies)
		parse_cidr_list(c, LINE("web", "trusted_proxies"), "trusted_proxies",
		                c->trusted_proxies, &c->proxies, &c->n_proxies);
	parse_cidr_list(c, LINE("metrics", "allow"), "allow", c->metrics_allow_text,
	                &c->metrics_allow, &c->n_metrics_allow);
	if (!strcmp(c->log_format_text, "text"))
		c->log_format = CONFIG_LOG_TEXT;
	else if (!strcmp(c->log_format_text, "json"))
		c->log_format = CONFIG_LOG_JSON;
	else
		problem(c, LINE("log", "format"), "'format' is text or json, not '%s'",
		        c->log_format_text);
	if (!strcmp(c->log_target_text, "stderr"))
		c->log_syslog = 0;
	else if (!strcmp(c->log_target_text, "syslog"))
		c->log_syslog = 1;
	else
		problem(c, LINE("log", "target"), "'target' is stderr or syslog, not '%s'",
		        c->log_target_text);
	if ((c->bounce_soft_window = config_parse_duration(c->bounce_soft_window_text)) <= 0)
		problem(c, LINE("bounce", "soft_window"),
		        "'soft_window' must be a duration such as 30d, not '%s'",
		        c->bounce_soft_window_text);
	/* off by default: leaving readers out is the sender's decision */
	if (!strcasecmp(c->sunset_after_text, "off") || !strcmp(c->sunset_after_text, "0"))
		c->sunset_after = 0;
	else if ((c->sunset_after = config_parse_duration(c->sunset_after_text)) < 86400)
		problem(c, LINE("audience", "sunset_after"),
		        "'sunset_after' must be off or a duration of a day or more such as "
		        "365d, not '%s'", c->sunset_after_text);
	if (!sequence_zone_valid(c->sequence_timezone))
		problem(c, LINE("sequences", "timezone"),
		        "'timezone' must name a zone of the tz database such as Europe/London, "
		        "not '%s'", c->sequence_timezone);
	if (!strcasecmp(c->store_ip_text, "yes"))
		c->store_ip = CONFIG_STORE_IP_YES;
	else if (!strcasecmp(c->store_ip_text, "truncated"))
		c->store_ip = CONFIG_STORE_IP_TRUNCATED;
	else if (!strcasecmp(c->store_ip_text, "no"))
		c->store_ip = CONFIG_STORE_IP_NO;
	else
		problem(c, LINE("privacy", "store_ip"),
		        "'store_ip' must be yes, truncated or no, not '%s'", c->store_ip_text);
	if (!strcasecmp(c->tracking_mode_text, "on"))
		c->tracking_mode = CONFIG_TRACKING_ON;
	else if (!strcasecmp(c->tracking_mode_text, "consent"))
		c->tracking_mode = CONFIG_TRACKING_CONSENT;
	else if (!strcasecmp(c->tracking_mode_text, "anonymous"))
		c->tracking_mode = CONFIG_TRACKING_ANONYMOUS;
	else if (!strcasecmp(c->tracking_mode_text, "off"))
		c->tracking_mode = CONFIG_TRACKING_OFF;
	else
		problem(c, LINE("tracking", "mode"),
		        "'mode' must be on, consent, anonymous or off, not '%s'",
		        c->tracking_mode_text);
	/* a day at least: retention is about months, and a typo such as
	 * "25" (seconds) must not empty the events table */
	if ((c->retention_events = config_parse_period(c->retention_events_text)) < 0 ||
	    (c->retention_events > 0 && c->retention_events < 86400))
		problem(c, LINE("retention", "events"),
		        "'events' must be off or a period of a day or more such as 25 months, "
		        "not '%s'", c->retention_events_text);
	if ((c->retention_deliveries = config_parse_period(c->retention_deliveries_text)) < 0 ||
	    (c->retention_deliveries > 0 && c->retention_deliveries < 86400))
		problem(c, LINE("retention", "deliveries"),
		        "'deliveries' must be off or a period of a day or more such as 25 months, "
		        "not '%s'", c->retention_deliveries_text);
	if ((c->retention_inbound = config_parse_period(c->retention_inbound_text)) < 0 ||
	    (c->retention_inbound > 0 && c->retention_inbound < 86400))
		problem(c, LINE("retention", "inbound"),
		        "'inbound' must be off or a period of a day or more such as 90 days, "
		        "not '%s'", c->retention_inbound_text);
	if (c->bounce_mailbox) {
		const char *u = c->bounce_mailbox;

		if (strncmp(u, "imaps://", 8) && strncmp(u, "pop3s://", 8) &&
		    strncmp(u, "imap://", 7) && strncmp(u, "pop3://", 7))
			problem(c, LINE("bounce", "mailbox"),
			        "'mailbox' must be an imaps://, pop3s://, imap:// or pop3:// URL, not '%s'",
			        u);
		else if (!strncmp(u, "imap://", 7) || !strncmp(u, "pop3://", 7))
			warning(c, LINE("bounce", "mailbox"),
			        "mailbox is not imaps:// or pop3s://: the password needs STARTTLS");
		if (!c->bounce_username || !c->bounce_password_file)
			problem(c, LINE("bounce", "mailbox"),
			        "'mailbox' needs 'username' and 'password_file' in [bounce]");
	}
	if (c->bounce_password_file) {
		struct stat st;

		if (stat(c->bounce_password_file, &st) < 0)
			problem(c, LINE("bounce", "password_file"), "password_file '%s': %s",
			        c->bounce_password_file, strerror(errno));
		else if (st.st_mode & 077)
			warning(c, LINE("bounce", "password_file"),
			        "password_file '%s' is readable by others (chmod 600 it)",
			        c->bounce_password_file);
	}
	if (c->bounce_ca_file && access(c->bounce_ca_file, R_OK) < 0)
		problem(c, LINE("bounce", "ca_file"), "ca_file '%s': %s", c->bounce_ca_file,
		        strerror(errno));
	if (c->html_template && access(c->html_template, R_OK) < 0)
		problem(c, LINE("render", "html_template"), "html_template '%s': %s",
		        c->html_template, strerror(errno));
	if (c->text_template && access(c->text_template, R_OK) < 0)
		problem(c, LINE("render", "text_template"), "text_template '%s': %s",
		        c->text_template, strerror(errno));
#undef LINE
}

static void
apply_derived_defaults(struct config *c)
{
	if (!c->secret_file && c->db_path) {
		c->secret_file = malloc(strlen(c->db_path) + sizeof ".secret");
		if (c->secret_file)
			sprintf(c->secret_file, "%s.secret", c->db_path);
	}
	if (!c->message_id_domain && c->from.domain[0])
		c->message_id_domain = strdup(c->from.domain);
	if (c->dkim_key && !c->dkim_domain && c->from.domain[0])
		c->dkim_domain = strdup(c->from.domain);
	if (!c->return_path && c->from.ascii[0])
		c->return_addr = c->from;
}

int
config_locate(const char *explicit_path, char *out, size_t out_size, struct herr *err)
{
	const char *p = explicit_path;

	if (!p || !*p)
		p = getenv(CONFIG_ENV);
	if (!p || !*p) {
		if (access(CONFIG_DEFAULT_NAME, F_OK) < 0)
			return herr_set(err, EX_CONFIG, NULL,
			                "no configuration: pass --config FILE, set %s, or create ./%s "
			                "(see config/herald.conf.example)", CONFIG_ENV, CONFIG_DEFAULT_NAME);
		p = CONFIG_DEFAULT_NAME;
	}
	if (strlen(p) >= out_size)
		return herr_set(err, EX_CONFIG, NULL, "config path is too long");
	strcpy(out, p);
	return 0;
}

int
config_load(const char *path, struct config *c, struct herr *err)
{
	struct parse p;
	const char *slash;
	size_t k, r;
	int rc;

	memset(c, 0, sizeof *c);
	memset(&p, 0, sizeof p);
	p.c = c;
	if (!(c->path = strdup(path)))
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	slash = strrchr(path, '/');
	c->dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path))
	               : strdup(".");
	if (!c->dir)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	if (!(p.fp = fopen(path, "r")))
		return herr_set(err, EX_NOINPUT, path, "cannot read config: %s", strerror(errno));
	rc = ini_parse_stream(reader, &p, handler, &p);
	fclose(p.fp);
	if (rc > 0 && !c->n_problems)
		problem(c, (unsigned long)rc, "syntax error (expected [section] or key = value)");
	else if (rc < 0)
		problem(c, 0, "cannot parse (out of memory)");

	for (k = 0; k < NKEYS; k++) {
		if (p.raw[k])
			store(c, c, &keys[k], p.raw[k], p.raw_line[k]);
		else if (keys[k].dflt)
			store(c, c, &keys[k], keys[k].dflt, 0);
	}
	if (p.n_relays && !(c->relays = calloc(p.n_relays, sizeof *c->relays)))
		problem(c, 0, "out of memory");
	for (r = 0; c->relays && r < p.n_relays; r++) {
		c->relays[r].name = p.relays[r].name;
		p.relays[r].name = NULL;
		c->relays[r].line = p.relays[r].line;
		for (k = 0; k < NRKEYS; k++) {
			if (p.relays[r].raw[k])
				store(c, &c->relays[r], &relay_keys[k], p.relays[r].raw[k],
				      p.relays[r].raw_line[k]);
			else if (relay_keys[k].dflt)
				store(c, &c->relays[r], &relay_keys[k], relay_keys[k].dflt, 0);
		}
		c->n_relays++;
	}
	validate(&p);
	apply_derived_defaults(c);
	for (k = 0; k < NKEYS; k++)
		free(p.raw[k]);
	for (r = 0; r < p.n_relays; r++) {
		free(p.relays[r].name);
		for (k = 0; k < NRKEYS; k++)
			free(p.relays[r].raw[k]);
	}
	if (c->n_problems)
		return herr_set(err, EX_CONFIG, NULL, "%s%s", c->problems[0],
		                c->n_problems > 1 ? " (and more: run 'herald config check')" : "");
	return 0;
}

void
config_free(struct config *c)
{
	size_t k;

	for (k = 0; k < NKEYS; k++) {
		if (keys[k].type == KEY_STRING || keys[k].type == KEY_PATH ||
		    keys[k].type == KEY_MULTILINE) {
			char **field = (char **)((char *)c + keys[k].offset);
			free(*field);
			*field = NULL;
		}
	}
	/* derived defaults own their memory too (secret_file, message_id_domain
	 * are freed above through the key table) */
	for (k = 0; k < c->n_relays; k++) {
		size_t j;

		for (j = 0; j < NRKEYS; j++)
			if (relay_keys[j].type == KEY_STRING || relay_keys[j].type == KEY_PATH)
				free(*(char **)((char *)&c->relays[k] + relay_keys[j].offset));
		free(c->relays[k].name);
	}
	free(c->relays);
	free(c->proxies);
	c->proxies = NULL;
	c->n_proxies = 0;
	free(c->metrics_allow);
	c->metrics_allow = NULL;
	c->n_metrics_allow = 0;
	for (k = 0; k < c->n_problems; k++)
		free(c->problems[k]);
	for (k = 0; k < c->n_warnings; k++)
		free(c->warnings[k]);
	free(c->problems);
	free(c->warnings);
	free(c->path);
	free(c->dir);
	memset(c, 0, sizeof *c);
}

int
config_smtp_password(const struct config_relay *c, char *out, size_t out_size,
                     struct herr *err)
{
	const char *v;

	if (c->password_env) {
		if (!(v = getenv(c->password_env)))
			return herr_set(err, EX_CONFIG, NULL,
			                "environment variable '%s' (password_env) is not set",
			                c->password_env);
		if (strlen(v) >= out_size)
			return herr_set(err, EX_CONFIG, NULL, "SMTP password is too long");
		strcpy(out, v);
		return 1;
	}
	if (c->password_file)
		return config_read_password_file(c->password_file, out, out_size, err) < 0 ? -1 : 1;
	return 0;
}

int
config_read_password_file(const char *path, char *out, size_t out_size, struct herr *err)
{
	FILE *fp;
	size_t n;

	if (!(fp = fopen(path, "r")))
		return herr_set(err, EX_CONFIG, path, "cannot read password_file: %s",
		                strerror(errno));
	n = fread(out, 1, out_size - 1, fp);
	fclose(fp);
	out[n] = '\0';
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
	return 0;
}
