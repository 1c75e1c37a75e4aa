/*
 * config.c - reading and checking herald.conf (see config.h).
 *
 * Every key is one row of `keys[]` below: section, name, type, where it is
 * stored, and its default.  Parsing (inih) only records raw strings and line
 * numbers; validate() then checks each value and the keys that depend on each
 * other, collecting every problem with its line rather than stopping at the
 * first, so `herald config check` shows the whole picture in one run.
 */
#include "herald/config.h"

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
	KEY_BOOL,
	KEY_STARTTLS,
	KEY_MULTILINE, /* continuation lines are joined with "\n" */
};

struct key {
	const char   *section;
	const char   *name;
	enum key_type type;
	size_t        offset;  /* of the field in struct config */
	const char   *dflt;    /* NULL: no default */
	long          min, max;/* KEY_LONG range */
};

#define F(field) offsetof(struct config, field)
static const struct key keys[] = {
	{ "database", "path",            KEY_PATH,      F(db_path),            NULL, 0, 0 },
	{ "database", "busy_timeout",    KEY_LONG,      F(db_busy_timeout_ms), "5000", 0, 600000 },
	{ "smtp",     "url",             KEY_STRING,    F(smtp_url),           NULL, 0, 0 },
	{ "smtp",     "username",        KEY_STRING,    F(smtp_username),      NULL, 0, 0 },
	{ "smtp",     "password_env",    KEY_STRING,    F(smtp_password_env),  NULL, 0, 0 },
	{ "smtp",     "password_file",   KEY_PATH,      F(smtp_password_file), NULL, 0, 0 },
	{ "smtp",     "starttls",        KEY_STARTTLS,  F(smtp_starttls),      "required", 0, 0 },
	{ "smtp",     "tls_verify",      KEY_BOOL,      F(smtp_tls_verify),    "yes", 0, 0 },
	{ "smtp",     "ca_file",         KEY_PATH,      F(smtp_ca_file),       NULL, 0, 0 },
	{ "smtp",     "helo",            KEY_STRING,    F(smtp_helo),          NULL, 0, 0 },
	{ "smtp",     "timeout",         KEY_LONG,      F(smtp_timeout),       "60", 1, 3600 },
	{ "smtp",     "connect_timeout", KEY_LONG,      F(smtp_connect_timeout), "15", 1, 600 },
	{ "sender",   "from",            KEY_STRING,    F(sender_from),        NULL, 0, 0 },
	{ "sender",   "reply_to",        KEY_STRING,    F(sender_reply_to),    NULL, 0, 0 },
	{ "sender",   "postal_address",  KEY_MULTILINE, F(postal_address),     NULL, 0, 0 },
	{ "sender",   "message_id_domain", KEY_STRING,  F(message_id_domain),  NULL, 0, 0 },
	{ "sender",   "return_path",     KEY_STRING,    F(return_path),        NULL, 0, 0 },
	{ "web",      "base_url",        KEY_STRING,    F(base_url),           NULL, 0, 0 },
	{ "web",      "secret_file",     KEY_PATH,      F(secret_file),        NULL, 0, 0 },
	{ "render",   "html_template",   KEY_PATH,      F(html_template),      NULL, 0, 0 },
	{ "render",   "text_template",   KEY_PATH,      F(text_template),      NULL, 0, 0 },
	{ "render",   "lang",            KEY_STRING,    F(lang),               "en", 0, 0 },
};
#undef F
#define NKEYS (sizeof keys / sizeof keys[0])

/* Parser state: raw values and where they were set. */
struct parse {
	struct config *c;
	FILE          *fp;
	unsigned long  line;          /* physical line being parsed */
	int            continuation;  /* current line starts with whitespace */
	int            too_long;      /* current line exceeded inih's buffer */
	char          *raw[NKEYS];
	unsigned long  raw_line[NKEYS];
	int            last_key;      /* index of the key set by the previous line */
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
find_key(const char *section, const char *name)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (strcasecmp(keys[i].section, section) == 0 &&
		    strcasecmp(keys[i].name, name) == 0)
			return (int)i;
	return -1;
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

static int
handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;
	int k;
	char *joined;

	if (p->too_long) {
		problem(p->c, p->line, "line is longer than %d characters", 198);
		return 1;
	}
	if (!known_section(section)) {
		problem(p->c, p->line, "unknown section [%s]", section);
		return 1;
	}
	k = find_key(section, name);
	if (k < 0) {
		problem(p->c, p->line, "unknown key '%s' in [%s]", name, section);
		return 1;
	}
	if (p->continuation && k == p->last_key && p->raw[k]) {
		if (keys[k].type != KEY_MULTILINE) {
			problem(p->c, p->line, "'%s' does not take continuation lines", name);
			return 1;
		}
		joined = malloc(strlen(p->raw[k]) + strlen(value) + 2);
		if (!joined)
			return 0;
		sprintf(joined, "%s\n%s", p->raw[k], value);
		free(p->raw[k]);
		p->raw[k] = joined;
		return 1;
	}
	if (p->raw[k]) {
		problem(p->c, p->line, "'%s' in [%s] is already set on line %lu",
		        name, section, p->raw_line[k]);
		return 1;
	}
	if (!(p->raw[k] = strdup(value)))
		return 0;
	p->raw_line[k] = p->line;
	p->last_key = k;
	return 1;
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

/* Store one raw value (or the default) into the struct per its type. */
static void
store(struct parse *p, size_t k, const char *v, unsigned long line)
{
	struct config *c = p->c;
	void *field = (char *)c + keys[k].offset;
	char *end;
	long n;

	if (has_control(v)) {
		problem(c, line, "'%s' contains a control character", keys[k].name);
		return;
	}
	switch (keys[k].type) {
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
		if (errno || end == v || *end || n < keys[k].min || n > keys[k].max) {
			problem(c, line, "'%s' must be a whole number from %ld to %ld, not '%s'",
			        keys[k].name, keys[k].min, keys[k].max, v);
			return;
		}
		*(long *)field = n;
		break;
	case KEY_BOOL:
		if (parse_bool(v, (int *)field) < 0)
			problem(c, line, "'%s' must be yes or no, not '%s'", keys[k].name, v);
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

static int
is_loopback_url(const char *url)
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
validate(struct parse *p)
{
	struct config *c = p->c;
	struct stat st;
	int k;

#define LINE(sec, name) p->raw_line[find_key(sec, name)]
	if (!c->db_path)
		problem(c, 0, "[database] path is required");
	if (!c->smtp_url)
		problem(c, 0, "[smtp] url is required");
	else if (strncasecmp(c->smtp_url, "smtp://", 7) && strncasecmp(c->smtp_url, "smtps://", 8))
		problem(c, LINE("smtp", "url"), "'url' must start with smtp:// or smtps://, not '%s'",
		        c->smtp_url);
	else if (!strncasecmp(c->smtp_url, "smtp://", 7) &&
	         c->smtp_starttls == CONFIG_STARTTLS_NEVER && !is_loopback_url(c->smtp_url))
		warning(c, LINE("smtp", "starttls"),
		        "starttls = never sends mail and passwords in clear text to a remote relay");
	if (c->smtp_password_env && c->smtp_password_file)
		problem(c, LINE("smtp", "password_file"),
		        "set either password_env or password_file, not both");
	if ((c->smtp_password_env || c->smtp_password_file) && !c->smtp_username)
		problem(c, 0, "[smtp] a password source is set but username is not");
	if (c->smtp_username && !c->smtp_password_env && !c->smtp_password_file)
		problem(c, LINE("smtp", "username"),
		        "'username' needs password_env or password_file");
	/* Only a warning: `herald init` or `list ls` must not need the
	 * password; the send itself fails clearly when it is missing. */
	if (c->smtp_password_env && !getenv(c->smtp_password_env))
		warning(c, LINE("smtp", "password_env"),
		        "environment variable '%s' named by password_env is not set",
		        c->smtp_password_env);
	if (c->smtp_password_file) {
		k = find_key("smtp", "password_file");
		if (stat(c->smtp_password_file, &st) < 0)
			problem(c, p->raw_line[k], "password_file '%s': %s",
			        c->smtp_password_file, strerror(errno));
		else if (access(c->smtp_password_file, R_OK) < 0)
			problem(c, p->raw_line[k], "password_file '%s' is not readable",
			        c->smtp_password_file);
		else if (st.st_mode & (S_IRWXG | S_IRWXO))
			warning(c, p->raw_line[k],
			        "password_file '%s' is readable by others (chmod 600 it)",
			        c->smtp_password_file);
	}
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
		else if (!strncmp(c->base_url, "http://", 7) && !is_loopback_url(c->base_url))
			warning(c, LINE("web", "base_url"),
			        "base_url is not https: mail clients will warn about its links");
		while (n > 0 && c->base_url[n - 1] == '/')
			c->base_url[--n] = '\0';
	}
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
	size_t k;
	int rc;

	memset(c, 0, sizeof *c);
	memset(&p, 0, sizeof p);
	p.c = c;
	p.last_key = -1;
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
			store(&p, k, p.raw[k], p.raw_line[k]);
		else if (keys[k].dflt)
			store(&p, k, keys[k].dflt, 0);
	}
	validate(&p);
	apply_derived_defaults(c);
	for (k = 0; k < NKEYS; k++)
		free(p.raw[k]);
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
config_smtp_password(const struct config *c, char *out, size_t out_size, struct herr *err)
{
	const char *v;
	FILE *fp;
	size_t n;

	if (c->smtp_password_env) {
		if (!(v = getenv(c->smtp_password_env)))
			return herr_set(err, EX_CONFIG, NULL,
			                "environment variable '%s' (password_env) is not set",
			                c->smtp_password_env);
		if (strlen(v) >= out_size)
			return herr_set(err, EX_CONFIG, NULL, "SMTP password is too long");
		strcpy(out, v);
		return 1;
	}
	if (c->smtp_password_file) {
		if (!(fp = fopen(c->smtp_password_file, "r")))
			return herr_set(err, EX_CONFIG, c->smtp_password_file,
			                "cannot read password_file: %s", strerror(errno));
		n = fread(out, 1, out_size - 1, fp);
		fclose(fp);
		out[n] = '\0';
		while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
			out[--n] = '\0';
		return 1;
	}
	return 0;
}
