/*
 * dkim.c - `herald dkim keygen`: a new DKIM key and the DNS record for it.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "herald/address.h"
#include "herald/cmd.h"
#include "herald/dkim.h"

const char cmd_dkim_usage[] =
	"usage: herald dkim keygen --domain D --selector S [--type rsa|ed25519] [--out FILE]\n"
	"\n"
	"Write a new private key (RSA 2048 bits, or Ed25519) as PEM to FILE (default\n"
	"S.D.TYPE.pem), readable only by its owner, and print the TXT record to\n"
	"publish at S._domainkey.D and the [dkim] lines for herald.conf.  An existing\n"
	"file is never overwritten.  Ed25519 keys are used as a second signature\n"
	"beside an RSA one (RFC 8463): receivers that do not know Ed25519 still\n"
	"check the RSA signature.\n";

/* Print the TXT value as zone-file strings of at most 250 characters
 * (a DNS character-string holds 255). */
static void
print_record(const char *selector, const char *domain, const char *txt)
{
	size_t n = strlen(txt), off;

	printf("%s._domainkey.%s. IN TXT (", selector, domain);
	for (off = 0; off < n; off += 250)
		printf("\n    \"%.250s\"", txt + off);
	printf(" )\n");
}

static int
keygen(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "domain", required_argument, NULL, 'd' },
		{ "selector", required_argument, NULL, 's' },
		{ "type", required_argument, NULL, 't' },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	const char *domain = NULL, *selector = NULL, *type = "rsa", *out = NULL, *p;
	char path[600], probe[320];
	struct buf txt = BUF_INIT(8192);
	enum dkim_alg alg;
	struct address a;
	int ch;

	while ((ch = getopt_long(argc, argv, "d:s:t:o:", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': domain = optarg; break;
		case 's': selector = optarg; break;
		case 't': type = optarg; break;
		case 'o': out = optarg; break;
		default: return cmd_usage(cmd_dkim_usage, 1);
		}
	}
	if (optind != argc || !domain || !selector)
		return cmd_usage_error(cmd_dkim_usage, "dkim keygen needs --domain and --selector");
	if (!strcasecmp(type, "rsa"))
		alg = DKIM_RSA_SHA256;
	else if (!strcasecmp(type, "ed25519"))
		alg = DKIM_ED25519_SHA256;
	else
		return cmd_usage_error(cmd_dkim_usage, "--type is rsa or ed25519, not '%s'", type);
	snprintf(probe, sizeof probe, "x@%s", domain);
	if (address_parse(probe, &a, &env->err) < 0)
		return herr_set(&env->err, EX_USAGE, NULL, "'%s' is not a domain name", domain);
	for (p = selector; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return herr_set(&env->err, EX_USAGE, NULL,
			                "selector '%s' may hold only letters, digits, '-' and '.'",
			                selector);
	if (!out) {
		snprintf(path, sizeof path, "%s.%s.%s.pem", selector, a.domain,
		         alg == DKIM_RSA_SHA256 ? "rsa" : "ed25519");
		out = path;
	}
	if (dkim_keygen(alg, 0, out, &txt, &env->err) < 0) {
		buf_free(&txt);
		return -1;
	}
	printf("wrote the private key to %s (mode 0600); keep it secret\n\n", out);
	printf("publish this DNS record:\n\n");
	print_record(selector, a.domain, buf_str(&txt));
	printf("\nand put in herald.conf:\n\n[dkim]\ndomain = %s\n", a.domain);
	if (alg == DKIM_RSA_SHA256)
		printf("selector = %s\nprivate_key = %s\n", selector, out);
	else
		printf("ed25519_selector = %s\ned25519_private_key = %s\n", selector, out);
	buf_free(&txt);
	return 0;
}

int
cmd_dkim(int argc, char **argv, struct cmd_env *env)
{
	if (argc < 2)
		return cmd_usage_error(cmd_dkim_usage, "dkim needs a verb");
	if (!strcmp(argv[1], "keygen"))
		return keygen(argc - 1, argv + 1, env);
	return cmd_usage_error(cmd_dkim_usage, "unknown verb 'dkim %s'", argv[1]);
}
