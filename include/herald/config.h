/*
 * config.h - herald.conf, the INI file every command reads.
 *
 * Found by `--config FILE`, else $HERALD_CONFIG, else ./herald.conf.  Parsed
 * with inih; every key is declared once in a table in config.c with its type
 * and default, and config/herald.conf.example documents the same keys.
 * Unknown sections and keys are errors (a typo must not silently fall back
 * to a default), each naming the key or section likely meant.  Relative
 * paths are taken relative to the directory of the config file, so cron can
 * run herald from any working directory.
 *
 * The SMTP password never lives in this struct: only the name of the
 * environment variable or file that holds it.  config_smtp_password() reads
 * it at the moment of use into a caller buffer that the caller wipes.
 */
#ifndef HERALD_CONFIG_H
#define HERALD_CONFIG_H

#include <stddef.h>

#include "herald/address.h"
#include "herald/herr.h"

#define CONFIG_DEFAULT_NAME "herald.conf"
#define CONFIG_ENV          "HERALD_CONFIG"

enum config_starttls {
	CONFIG_STARTTLS_REQUIRED, /* smtp:// must upgrade with STARTTLS or fail */
	CONFIG_STARTTLS_OPTIONAL, /* upgrade when offered, else plain text */
	CONFIG_STARTTLS_NEVER,    /* plain text: loopback relays and tests only */
};

/* One SMTP relay: [smtp] is the first, [smtp.NAME] sections add more, tried
 * in the order they appear in the file. */
struct config_relay {
	char *name;              /* "smtp" for [smtp], NAME for [smtp.NAME] */
	unsigned long line;      /* where its section starts */
	char *url;               /* url: smtp://host:port or smtps://... */
	char *username;          /* username, or NULL for no AUTH */
	char *password_env;      /* password_env: variable holding the password */
	char *password_file;     /* password_file: file holding it */
	enum config_starttls starttls; /* starttls */
	int   tls_verify;        /* tls_verify: check the relay's certificate */
	char *ca_file;           /* ca_file, or NULL for the system store */
	char *helo;              /* helo: name sent in EHLO, or NULL */
	long  timeout;           /* timeout: seconds for one message */
	long  connect_timeout;   /* connect_timeout: seconds */
	long  connections;       /* connections: concurrent connections */
	double rate;             /* rate: messages per second, 0 = no limit */
	long  max_per_hour;      /* max_per_hour: sliding-window cap, 0 = none */
	long  max_per_day;       /* max_per_day: sliding-window cap, 0 = none */
};

/* An address or a network, "127.0.0.1" or "10.0.0.0/8" or "::1". */
struct config_cidr {
	int           family;    /* AF_INET or AF_INET6 */
	unsigned char addr[16];  /* network byte order; 4 used for AF_INET */
	int           bits;      /* prefix length */
};
#define CONFIG_PROXIES_MAX 32

/* Parse "ADDRESS[/BITS]" (IPv4 or IPv6); -1 when it is not one. */
int config_parse_cidr(const char *s, struct config_cidr *out);
/* 1 when `addr` (4 or 16 bytes of `family`) is inside `c`. */
int config_cidr_match(const struct config_cidr *c, int family, const unsigned char *addr);

#define CONFIG_RETRY_MAX 16

enum config_log_format {
	CONFIG_LOG_TEXT, /* "herald run: issue 3: ..." (log.h) */
	CONFIG_LOG_JSON, /* one JSON object a line */
};

/* [privacy] store_ip: how much of a web client's address a consent record
 * keeps (consent.h). */
enum config_store_ip {
	CONFIG_STORE_IP_YES,        /* as the server saw it (default) */
	CONFIG_STORE_IP_TRUNCATED,  /* its /24 (IPv4) or /48 (IPv6) */
	CONFIG_STORE_IP_NO,         /* none */
};

/* [tracking] mode: who is tracked, and how (tracking.h).  In order of
 * strictness: a later one never tracks more than an earlier one. */
enum config_tracking {
	CONFIG_TRACKING_ON,         /* per person, as always (default) */
	CONFIG_TRACKING_CONSENT,    /* per person, only with tracking_consent = yes */
	CONFIG_TRACKING_ANONYMOUS,  /* per issue and link, never per person */
	CONFIG_TRACKING_OFF,        /* no pixel, no redirects */
};

struct config {
	char *path;              /* the file read, as given */
	char *dir;               /* its directory, for relative paths */

	char *db_path;           /* [database] path */
	long  db_busy_timeout_ms;/* [database] busy_timeout */
	int   db_sync_full;      /* [database] synchronous = full (default normal) */

	struct config_relay *relays; /* [smtp] first, then [smtp.NAME] in file order */
	size_t n_relays;

	long  workers;           /* [send] workers: message builders, 0 = CPUs */
	char *retry_text;        /* [send] retry, as written */
	long  retry[CONFIG_RETRY_MAX]; /*   parsed: seconds after attempt 1, 2, ... */
	size_t n_retry;
	char *webhook_retry_text; /* [webhooks] retry, as written (webhook.h) */
	long  webhook_retry[CONFIG_RETRY_MAX]; /*   parsed: seconds after attempt 1, 2, ... */
	size_t n_webhook_retry;
	char *webhook_give_up_text; /* [webhooks] give_up, as written */
	long  webhook_give_up;    /*   parsed: seconds after the event */
	char *retry_window_text; /* [send] retry_window, as written */
	long  retry_window;      /*   parsed: seconds */

	char *sender_from;       /* [sender] from, as written */
	char  from_name[256];    /*   its display name ("" if none) */
	struct address from;     /*   its address */
	char *sender_reply_to;   /* [sender] reply_to, or NULL */
	char  reply_to_name[256];
	struct address reply_to;
	char *postal_address;    /* [sender] postal_address; continuation lines joined with \n */
	char *message_id_domain; /* [sender] message_id_domain, default: From's domain */
	char *return_path;       /* [sender] return_path: envelope sender, default From */
	struct address return_addr;

	int   verp;              /* [sender] verp: envelope sender local+TOKEN@domain */
	char *feedback_id;       /* [sender] feedback_id: sender id in Feedback-ID */

	char *dkim_domain;       /* [dkim] domain: d=, default the From domain */
	char *dkim_selector;     /* [dkim] selector */
	char *dkim_key;          /* [dkim] private_key: PEM path, NULL = no DKIM */
	char *dkim_ed_selector;  /* [dkim] ed25519_selector */
	char *dkim_ed_key;       /* [dkim] ed25519_private_key */
	char *dkim_expire_text;  /* [dkim] expire, as written */
	long  dkim_expire;       /*   parsed: seconds, 0 = no x= */

	char *base_url;          /* [web] base_url, no trailing slash */
	char *secret_file;       /* [web] secret_file: HMAC key for tokens */
	int   tracking;          /* [web] tracking: default for new issues */
	char *confirm_ttl_text;  /* [web] confirm_ttl: how long a confirmation link works */
	long  confirm_ttl;       /*   parsed: seconds */
	long  web_per_client;    /* [web] max_connections_per_client (proxies exempt) */
	long  api_rate;          /* [api] rate: requests per second per key (api.h) */
	long  api_max_body;      /* [api] max_body: bytes of one request body */
	char *trusted_proxies;   /* [web] trusted_proxies: as written, NULL = none */
	struct config_cidr *proxies; /*   parsed: whose X-Real-IP is believed */
	size_t n_proxies;

	char *bounce_mailbox;    /* [bounce] mailbox: imaps://host/INBOX or pop3s://host */
	char *bounce_username;   /* [bounce] username */
	char *bounce_password_file; /* [bounce] password_file (mode 0600) */
	char *bounce_ca_file;    /* [bounce] ca_file: PEM to verify the mail server */
	long  bounce_soft_limit; /* [bounce] soft_limit: soft bounces that make ... */
	char *bounce_soft_window_text; /* [bounce] soft_window: ... within this long */
	long  bounce_soft_window;/*   parsed: seconds */

	char *sunset_after_text; /* [audience] sunset_after, as written ("off") */
	long  sunset_after;      /*   parsed: seconds, 0 = off (audience.h) */

	char *sequence_timezone; /* [sequences] timezone: the zone of --at-local for
	                            subscribers without a valid timezone attribute
	                            (an IANA name, "UTC" by default; sequence.h) */

	char *store_ip_text;     /* [privacy] store_ip, as written ("yes") */
	enum config_store_ip store_ip; /*   parsed */

	char *tracking_mode_text; /* [tracking] mode, as written ("on") */
	enum config_tracking tracking_mode; /*   parsed */

	char *retention_events_text;     /* [retention] events, as written ("off") */
	long long retention_events;      /*   parsed: seconds, 0 = kept for ever */
	char *retention_deliveries_text; /* [retention] deliveries */
	long long retention_deliveries;
	char *retention_inbound_text;    /* [retention] inbound */
	long long retention_inbound;

	char *metrics_listen;    /* [metrics] listen: serve's /metrics address, NULL = none */
	char *metrics_allow_text;/* [metrics] allow, as written */
	struct config_cidr *metrics_allow; /* parsed: who may fetch /metrics */
	size_t n_metrics_allow;

	char *log_format_text;   /* [log] format, as written ("text") */
	enum config_log_format log_format; /* parsed (log.h) */
	char *log_target_text;   /* [log] target, as written ("stderr") */
	int   log_syslog;        /*   parsed: 1 = syslog(3) */

	char *html_template;     /* [render] html_template, or NULL for the built-in one */
	char *text_template;     /* [render] text_template, or NULL */
	char *lang;              /* [render] lang, default "en" */

	/* Everything wrong with the file, one "file:line: message" each, so that
	 * `herald config check` can list all of it at once. */
	char **problems;
	size_t n_problems;
	/* Things that work but deserve attention (plain-text SMTP to a remote
	 * host, a world-readable password file, ...). */
	char **warnings;
	size_t n_warnings;
};

/*
 * Find the config file: `explicit_path` if not NULL, else $HERALD_CONFIG,
 * else ./herald.conf.  Copies the choice into `out`.  Returns 0, or -1 with
 * EX_CONFIG when none was given and ./herald.conf does not exist.
 */
int config_locate(const char *explicit_path, char *out, size_t out_size,
                  struct herr *err);

/*
 * Read and validate `path`.  On return `c` is always initialised and must be
 * freed with config_free(), even on failure.  Returns 0 when the file has no
 * problems; -1 with EX_CONFIG (EX_NOINPUT when it cannot be read) and the
 * first problem in `err`, all of them in c->problems.
 */
int config_load(const char *path, struct config *c, struct herr *err);
void config_free(struct config *c);

/*
 * Read the SMTP password from the environment variable or file the config
 * names, into `out` (NUL-terminated, trailing newline removed).  Returns 1
 * when a password was found, 0 when the config names no password source,
 * -1 with EX_CONFIG when the named variable is unset or the file is
 * unreadable.  The caller wipes `out` after use (explicit_bzero).
 */
int config_smtp_password(const struct config_relay *r, char *out, size_t out_size,
                         struct herr *err);

/* Read a password file (its first line, trailing CR/LF removed) into `out`.
 * EX_CONFIG naming the file when it cannot be read.  Shared by the SMTP
 * relays' and the bounce mailbox's password_file.  The caller wipes `out`. */
int config_read_password_file(const char *path, char *out, size_t out_size,
                              struct herr *err);

/* Parse a duration: "90", "90s", "5m", "1h", "3d" -> seconds; -1 if bad. */
long config_parse_duration(const char *s);

/* Parse a retention period: "off" (0), or a number and a unit, with or
 * without a space: d, day(s), w, week(s), month(s), y, year(s); a month is
 * 30.436875 days (a twelfth of a Gregorian year), a year 365.2425 days.
 * Seconds, or -1 if bad.  ([retention], retention.h) */
long long config_parse_period(const char *s);

/* 1 when the host of `url` ("scheme://host...") is 127.x.y.z, localhost or
 * [::1]: a relay or a web server on this machine only. */
int config_url_is_loopback(const char *url);

/* Resolve `p` against the config's directory into a new string (free it),
 * or NULL when out of memory. */
char *config_resolve_path(const struct config *c, const char *p);

#endif
