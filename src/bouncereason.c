/*
 * bouncereason.c - say why one delivery failed: a reason and a class.
 *
 * Owns the phrase tables and the status-code table that turn the three
 * pieces of evidence a failure carries (an RFC 3463 enhanced status code,
 * an RFC 5321 reply code, and the diagnostic text), plus the SMTP command
 * the failure answered, into one reason from the vocabulary of the sisimai
 * project and a class (hard or soft).  bounce.c calls it once per recipient
 * of a returned message; the sender calls it for rejections met during the
 * SMTP transaction, so both land in the same table with the same words.
 *
 * The order of evidence is a decision table, written out above
 * bounce_decide(): what kind of notice it is (Action), an MTA's fixed
 * wording, then the SMTP phase with the status and reply codes, reason by
 * reason, then the generic reasons, then whether a final failure was
 * only a wait condition (an expiry), and only last the bare text.  Each
 * reason's rule carries sisimai's definition beside it, and every
 * decision leaves its path in a why line (`herald bounce --explain
 * --why`, `herald sub show`).
 *
 * Class: hard for userunknown, hostunknown and hasmoved, and for
 * notaccept when the failure is permanent (5.x.x, or a 5yz reply, or no
 * code at all); soft for everything else.  That is sisimai's "hardbounce"
 * flag, so a hard bounce here means what it means there: the address is
 * dead, do not mail it again.
 *
 * Matching is on a folded copy of the text: ASCII lower case, runs of
 * white space as one space, the code that a multi-line reply repeats on
 * each line dropped after its first use.  A phrase may contain '*',
 * meaning "and somewhere after that": "user * was not found" matches
 * "user joe was not found".  The phrases are the words the MTAs named in
 * the comments write; the lists are herald's, checked against the sisimai
 * corpus (bench/bounces.sh).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/bounce.h"

/* The longest diagnostic text examined; longer text is cut (the reason is
 * always near the start of a reply). */
#define REASON_TEXT_MAX 4096

enum rsn {
	R_NONE = 0,
	R_USERUNKNOWN, R_HOSTUNKNOWN, R_MAILBOXFULL, R_MESGTOOBIG,
	R_EXCEEDLIMIT, R_BLOCKED, R_REJECTED, R_FILTERED, R_POLICYVIOLATION,
	R_SPAMDETECTED, R_VIRUSDETECTED, R_EXPIRED, R_NETWORKERROR,
	R_NORELAYING, R_SUSPEND, R_HASMOVED, R_NOTACCEPT, R_SYSTEMERROR,
	R_SYSTEMFULL, R_AUTHFAILURE, R_REQUIREPTR, R_SECURITYERROR,
	R_BADREPUTATION, R_CONTENTERROR, R_TOOMANYCONN, R_SPEEDING,
	R_SYNTAXERROR, R_ONHOLD, R_FEEDBACK, R_VACATION, R_DELIVERED,
	R_DELAYED, R_MAILERERROR, R_UNDEFINED,
	R_COUNT
};

static const char *const rsn_name[R_COUNT] = {
	[R_NONE] = "undefined",
	[R_USERUNKNOWN] = "userunknown", [R_HOSTUNKNOWN] = "hostunknown",
	[R_MAILBOXFULL] = "mailboxfull", [R_MESGTOOBIG] = "mesgtoobig",
	[R_EXCEEDLIMIT] = "exceedlimit", [R_BLOCKED] = "blocked",
	[R_REJECTED] = "rejected", [R_FILTERED] = "filtered",
	[R_POLICYVIOLATION] = "policyviolation",
	[R_SPAMDETECTED] = "spamdetected", [R_VIRUSDETECTED] = "virusdetected",
	[R_EXPIRED] = "expired", [R_NETWORKERROR] = "networkerror",
	[R_NORELAYING] = "norelaying", [R_SUSPEND] = "suspend",
	[R_HASMOVED] = "hasmoved", [R_NOTACCEPT] = "notaccept",
	[R_SYSTEMERROR] = "systemerror", [R_SYSTEMFULL] = "systemfull",
	[R_AUTHFAILURE] = "authfailure", [R_REQUIREPTR] = "requireptr",
	[R_SECURITYERROR] = "securityerror",
	[R_BADREPUTATION] = "badreputation",
	[R_CONTENTERROR] = "contenterror", [R_TOOMANYCONN] = "toomanyconn",
	[R_SPEEDING] = "speeding", [R_SYNTAXERROR] = "syntaxerror",
	[R_ONHOLD] = "onhold", [R_FEEDBACK] = "feedback",
	[R_VACATION] = "vacation", [R_DELIVERED] = "delivered",
	[R_DELAYED] = "delayed", [R_MAILERERROR] = "mailererror",
	[R_UNDEFINED] = "undefined",
};

/*
 * RFC 3463 enhanced status codes with a reason of their own (the IANA
 * "SMTP Enhanced Status Codes" registry).  Codes missing here, X.0.0 among
 * them, say only permanent or transient and leave the reason to the text.
 * Transient and permanent differ for a few: a 4.2.1 mailbox disabled "for
 * now" is a block, a 5.2.1 a filter; 4.4.1 no answer is an expiry after
 * retries, 5.4.4 unable to route a dead domain.
 */
static const struct {
	const char *code;
	enum rsn    r;
} status_table[] = {
	{ "2.1.5", R_DELIVERED },
	{ "4.1.6", R_HASMOVED },     { "4.1.7", R_REJECTED },
	{ "4.1.8", R_REJECTED },     { "4.1.9", R_SYSTEMERROR },
	{ "4.2.1", R_BLOCKED },      { "4.2.2", R_MAILBOXFULL },
	{ "4.2.3", R_EXCEEDLIMIT },  { "4.2.4", R_FILTERED },
	{ "4.3.1", R_SYSTEMFULL },   { "4.3.2", R_NOTACCEPT },
	{ "4.3.3", R_SYSTEMERROR },  { "4.3.5", R_SYSTEMERROR },
	{ "4.4.1", R_EXPIRED },      { "4.4.2", R_NETWORKERROR },
	{ "4.4.3", R_SYSTEMERROR },  { "4.4.4", R_NETWORKERROR },
	{ "4.4.5", R_SYSTEMFULL },   { "4.4.6", R_NETWORKERROR },
	{ "4.4.7", R_EXPIRED },      { "4.5.3", R_SYSTEMERROR },
	{ "4.5.5", R_SYSTEMERROR },  { "4.6.0", R_CONTENTERROR },
	{ "4.6.2", R_CONTENTERROR }, { "4.6.5", R_CONTENTERROR },
	{ "4.7.1", R_BLOCKED },      { "4.7.2", R_BLOCKED },
	{ "4.7.5", R_SECURITYERROR }, { "4.7.6", R_SECURITYERROR },
	{ "4.7.7", R_SECURITYERROR }, { "4.7.12", R_SECURITYERROR },
	{ "4.7.15", R_SECURITYERROR }, { "4.7.16", R_MESGTOOBIG },
	{ "4.7.24", R_AUTHFAILURE }, { "4.7.25", R_REQUIREPTR },
	{ "4.7.26", R_AUTHFAILURE },
	{ "5.1.0", R_USERUNKNOWN },  { "5.1.1", R_USERUNKNOWN },
	{ "5.1.2", R_HOSTUNKNOWN },  { "5.1.3", R_USERUNKNOWN },
	{ "5.1.4", R_FILTERED },     { "5.1.6", R_HASMOVED },
	{ "5.1.7", R_REJECTED },     { "5.1.8", R_REJECTED },
	{ "5.1.9", R_SYSTEMERROR },  { "5.1.10", R_NOTACCEPT },
	{ "5.2.0", R_FILTERED },     { "5.2.1", R_FILTERED },
	{ "5.2.2", R_MAILBOXFULL },  { "5.2.3", R_EXCEEDLIMIT },
	{ "5.2.4", R_FILTERED },
	{ "5.3.0", R_SYSTEMERROR },  { "5.3.1", R_SYSTEMFULL },
	{ "5.3.2", R_NOTACCEPT },    { "5.3.3", R_SYSTEMERROR },
	{ "5.3.4", R_MESGTOOBIG },   { "5.3.5", R_SYSTEMERROR },
	{ "5.4.0", R_NETWORKERROR }, { "5.4.3", R_SYSTEMERROR },
	{ "5.4.4", R_HOSTUNKNOWN },
	{ "5.5.2", R_SYNTAXERROR },  { "5.5.3", R_TOOMANYCONN },
	{ "5.5.4", R_SYSTEMERROR },  { "5.5.5", R_SYSTEMERROR },
	{ "5.5.6", R_SYNTAXERROR },
	{ "5.6.0", R_CONTENTERROR }, { "5.6.1", R_CONTENTERROR },
	{ "5.6.2", R_CONTENTERROR }, { "5.6.3", R_CONTENTERROR },
	{ "5.6.5", R_CONTENTERROR }, { "5.6.6", R_CONTENTERROR },
	{ "5.6.7", R_CONTENTERROR }, { "5.6.8", R_CONTENTERROR },
	{ "5.6.9", R_CONTENTERROR },
	{ "5.7.0", R_SECURITYERROR }, { "5.7.1", R_SECURITYERROR },
	{ "5.7.2", R_SECURITYERROR }, { "5.7.3", R_SECURITYERROR },
	{ "5.7.4", R_SECURITYERROR }, { "5.7.5", R_SECURITYERROR },
	{ "5.7.6", R_SECURITYERROR }, { "5.7.7", R_SECURITYERROR },
	{ "5.7.8", R_SECURITYERROR }, { "5.7.9", R_SECURITYERROR },
	{ "5.7.10", R_SECURITYERROR }, { "5.7.11", R_SECURITYERROR },
	{ "5.7.13", R_SUSPEND },     { "5.7.14", R_SECURITYERROR },
	{ "5.7.15", R_SECURITYERROR }, { "5.7.16", R_MESGTOOBIG },
	{ "5.7.17", R_HASMOVED },    { "5.7.18", R_HASMOVED },
	{ "5.7.19", R_SECURITYERROR }, { "5.7.20", R_AUTHFAILURE },
	{ "5.7.21", R_AUTHFAILURE }, { "5.7.22", R_AUTHFAILURE },
	{ "5.7.23", R_AUTHFAILURE }, { "5.7.24", R_AUTHFAILURE },
	{ "5.7.25", R_REQUIREPTR },  { "5.7.26", R_AUTHFAILURE },
	{ "5.7.27", R_NOTACCEPT },   { "5.7.28", R_SPAMDETECTED },
	{ "5.7.29", R_AUTHFAILURE },
};

/*
 * Phrase lists, one per reason.  Lower case, single spaces; '*' = "then,
 * further on".  Keep each list sorted roughly by how common the phrase is.
 */

/* Decisive phrases: what an MTA writes for exactly one condition. */
static const struct {
	const char *pat;
	enum rsn    r;
} decisive[] = {
	/* qmail (qmail-remote.c, qmail-send.c) and its descendants */
	{ "wasn't able to establish an smtp connection", R_NETWORKERROR },
	{ "couldn't find any host named", R_HOSTUNKNOWN },
	{ "couldn't find any host by that name", R_HOSTUNKNOWN },
	{ "couldn't find a mail exchanger or ip address", R_NOTACCEPT },
	{ "sorry, no mailbox here by that name", R_USERUNKNOWN },
	{ "the recipient's mailbox is full", R_MAILBOXFULL },
	{ "this message is looping", R_NETWORKERROR },
	{ "sorry, i couldn't find a mail exchanger", R_NOTACCEPT },
	{ "message is longer than the", R_MESGTOOBIG },
	/* Exim (deliver.c, retry.c); a full mailbox first: Exim appends
	 * "retry timeout exceeded" to the reason it kept retrying for. */
	{ "mailbox is full", R_MAILBOXFULL },
	{ "retry timeout exceeded", R_EXPIRED },
	{ "retry time not reached for any host after a long failure period", R_EXPIRED },
	{ "have been failing for a long time", R_EXPIRED },
	{ "unrouteable address", R_HOSTUNKNOWN },
	{ "all relevant mx records point to non-existent hosts", R_HOSTUNKNOWN },
	{ "all host address lookups failed permanently", R_HOSTUNKNOWN },
	{ "unroutable address", R_HOSTUNKNOWN },
	/* a loop: a routing failure (X.4.6), whatever the header count says */
	{ "too many \"received\" headers", R_NETWORKERROR },
	/* Sendmail (deliver.c, usersmtp.c, daemon.c) */
	{ "cannot send message for", R_EXPIRED },
	{ "name server: host not found", R_HOSTUNKNOWN },
	{ "host unknown (name server:", R_HOSTUNKNOWN },
	{ "message timed out", R_EXPIRED },
	{ "too many hops", R_NETWORKERROR },
	/* mailererror: the program mail was handed to (a pipe, a local
	 * delivery agent) exited with a failure status.  Postfix pipe(8)
	 * and local(8), Exim's pipe transport, Sendmail's prog mailer. */
	{ "command died with status", R_MAILERERROR },
	{ "command died on signal", R_MAILERERROR },
	{ "transport returned * non-zero", R_MAILERERROR },
	{ "child process of * transport returned", R_MAILERERROR },
	{ "pipe to * terminated by signal", R_MAILERERROR },
	{ "unknown mailer error", R_MAILERERROR },
	/* Lotus Domino / Notes */
	{ "not listed in domino directory", R_USERUNKNOWN },
	{ "not listed in public name & address book", R_USERUNKNOWN },
	{ "\xe3\x83\x87\xe3\x82\xa3\xe3\x83\xac\xe3\x82\xaf\xe3\x83\x88\xe3\x83\xaa"
	  "\xe3\x81\xae\xe3\x83\xaa\xe3\x82\xb9\xe3\x83\x88\xe3\x81\xab\xe3\x81\x82"
	  "\xe3\x82\x8a\xe3\x81\xbe\xe3\x81\x9b\xe3\x82\x93", R_USERUNKNOWN },
	/* Microsoft Exchange / Office 365 */
	{ "resolver.adr.recipnotfound", R_USERUNKNOWN },
	{ "resolver.adr.recipientnotfound", R_USERUNKNOWN },
	{ "resolver.adr.exrecipnotfound", R_USERUNKNOWN },
	{ "recipient address rejected: access denied", R_USERUNKNOWN },
	{ "the email address you entered couldn't be found", R_USERUNKNOWN },
	{ "resolver.rst.authrequired", R_SECURITYERROR },
	{ "resolver.rst.notauthorized", R_REJECTED },
	{ "resolver.rst.recipsizelimit", R_MESGTOOBIG },
	{ "resolver.rst.sendsizelimit", R_MESGTOOBIG },
	{ "resolver.adr.reciplimit", R_TOOMANYCONN },
	/* KDDI, au, ezweb */
	{ "as their mailbox is full", R_MAILBOXFULL },
	/* Gmail */
	{ "the email account that you tried to reach does not exist", R_USERUNKNOWN },
	{ "the email account that you tried to reach is disabled", R_SUSPEND },
	{ "the email account that you tried to reach is over quota", R_MAILBOXFULL },
	{ "the recipient's inbox is out of storage space", R_MAILBOXFULL },
	{ "remote server does not support tls", R_SYSTEMERROR },
	/* RFC 5321 §4.2.3's own text for 550 at RCPT */
	{ "requested action not taken: mailbox unavailable", R_USERUNKNOWN },
	/* A refused client host, whatever else the text says (Orange) */
	{ "client host blocked", R_BLOCKED },
	{ "recipient account is blocked", R_SUSPEND },
	/* Amazon SES: an unverified identity may not send through it */
	{ "email address is not verified", R_NORELAYING },
	/* Zoho */
	{ "host not reachable", R_EXPIRED },
	/* DragonFly Mail Agent */
	{ "could not deliver for the last", R_EXPIRED },
	/* RFC 7505 null MX: the domain says it takes no mail */
	{ "null mx", R_NOTACCEPT },
	{ "nullmx", R_NOTACCEPT },
	/* Yahoo */
	{ "this user doesn't have a * account", R_USERUNKNOWN },
	{ "no mx record found for domain=", R_NOTACCEPT },
};

static const char *const p_userunknown[] = {
	"user unknown", "unknown user", "no such user", "no such recipient",
	"no such mailbox", "no such address", "no such person",
	"unknown recipient", "recipient unknown", "unknown mailbox",
	"mailbox unknown", "address unknown", "unknown address",
	"invalid recipient", "invalid mailbox", "invalid address",
	"not a valid recipient", "not a valid mailbox", "is not a valid user",
	"recipient not found", "recipient does not exist", "recipient not exist",
	"mailbox not found", "mailbox does not exist", "mailbox not present",
	"mailbox is inactive", "mailbox unavailable", "mailbox is unavailable",
	"mailbox not available", "mailbox invalid",
	"address does not exist", "address not present in directory",
	"email address does not exist", "email address could not be found",
	"user does not exist", "user not exist", "user not found",
	"user not known", "user not active", "user doesn't exist",
	"user account doesn't exist", "user missing home directory",
	"user (*) unknown", "user * does not exist", "user * was not found",
	"no account by that name", "no mailbox by that name",
	"no mailbox here by that name", "no mail box available for this user",
	"is not a known user", "not a local address",
	"recipient is not local", "recipient rejected", "recipient not ok",
	"recipient address rejected: unknown user",
	"recipient address rejected: user unknown",
	"recipient address rejected: invalid user",
	"recipient address rejected: undeliverable address",
	"destination addresses were unknown", "bad destination mailbox",
	"bad recipient", "badrcptto", "not in my validrcptto list",
	"there is no one at this address", "this address no longer accepts mail",
	"this user doesn't have a * account", "unknown local part",
	"unknown local-part", "unknown e-mail address", "unknown email address",
	"no existe", "utilisateur inconnu", "nessun utente",
	"requested action not taken: mailbox unavailable",
	"vdeliver: invalid or unknown virtual user",
	"said: 550 5.1.1 ", "#5.1.1 bad address",
	"non-existent user", "nonexistent user", "non existent user",
	"rcpt (*t exist ", "rcpt <* does not exist", "account * does not exist",
	"<*> not found", "mailbox * does not exist",
};

static const char *const p_hostunknown[] = {
	"host unknown", "unknown host", "host not found", "no such domain",
	"domain does not exist", "domain must exist",
	"host or domain name not found", "name or service not known",
	"unrouteable address", "unroutable address", "domain is not reachable",
	"unknown domain",
	"mail domain mentioned in email address is unknown",
	"the account or domain may not exist",
	"553 * does not exist",
};

static const char *const p_mailboxfull[] = {
	"mailbox full", "mailbox is full", "mailbox * full", "full mailbox",
	"mailbox * quota", "over quota", "over * quota", "quota exceeded",
	"quota * exceeded", "exceeded * quota", "disk quota", "disk * quota",
	"exceeded storage allocation", "insufficient disk space",
	"not sufficient disk space", "no space left on device",
	"mailbox size limit exceeded", "mailbox * exceeded * limit",
	"mailbox exceeds allowed size", "mailbox would exceed",
	"mailfolder is full", "maildir * quota", "quota violation",
	"user has exceeded quota", "user has too many messages",
	"user's space has been used up", "out of storage space",
	"not enough * space", "enough space", "boite du destinataire pleine",
	"too much mail data", "account is * quota", "is over quota",
};

static const char *const p_mesgtoobig[] = {
	"message too big", "message is too big", "message file too big",
	"message size exceeds", "message length exceeds",
	"max message size exceeded", "exceeded maximum inbound message size",
	"exceeded the maximum incoming message size", "message too large for",
	"size limit", "line limit exceeded", "message is larger than",
	"taille limite du message",
};

static const char *const p_exceedlimit[] = {
	"message header size exceeds limit", "message too large",
};

static const char *const p_suspend[] = {
	"is currently suspended", "has been suspended", "mailbox disabled",
	"mailbox is disabled", "mailbox currently suspended",
	"account has been disabled", "account is disabled",
	"account has been temporarily suspended", "inactive account",
	"account is inactive", "account inactive", "invalid/inactive user",
	"is a deactivated mailbox", "user is terminated", "user suspended",
	"mailbox is frozen", "temporarily inactive", "temporary locked",
	"recipient suspend the service", "this account has been disabled",
	"mailbox unavailable or access denied", "archived recipient",
	"boite du destinataire archivee", "account is locked",
	"user or domain is disabled",
	"the email account that you tried to reach is inactive",
	"the email account that you tried to reach is disabled",
};

static const char *const p_hasmoved[] = {
	" has been replaced by ", "mailbox has moved", "address has moved",
	"not our customer", "user not local; please try",
};

static const char *const p_norelaying[] = {
	"relay access denied", "relaying denied", "relay denied",
	"relay not permitted", "relaying not allowed", "no relaying",
	"unable to relay", "not permitted to relay", "not allowed to relay",
	"as a relay", "relaying mail to ", "insecure mail relay",
	"not an open relay", "not a gateway", "not local host",
	"that domain isn't in my list of allowed rcpthost",
	"this system is not configured to relay mail",
	"we don't handle mail for", "specified domain is not allowed",
	"requires authentication when attempting to send to a non-local",
};

static const char *const p_authfailure[] = {
	"dmarc policy", "dmarc check", "spf check: fail", "spf fail",
	"spf validation", "sender policy framework", "bad spf records",
	"please inspect your spf settings", "//spf.pobox.com",
	"doesn't meet the required authentication level",
	"authentication requirements defined for the sender",
	"is not allowed to send from <* per it's spf record",
	"dkim signature", "dkim validation",
};

static const char *const p_filtered[] = {
	"message filtered", "user reject", "user refuses to receive",
	"refuse to receive mail", "refused due to recipient preferences",
	"you have been blocked by the recipient",
	"recipient is only accepting mail from specific",
	"account is protected by", "is not accepting any mail",
	"message rejected due to user rules", "not found recipient account",
	"bounced address", "has restricted sms e-mail",
	"user not found",
};

static const char *const p_requireptr[] = {
	"ptr record", "reverse dns", "reverse lookup", "rdns",
	"cannot find your hostname", "cannot resolve your address",
	"ip name lookup failed", "unresolvable relay host name",
	"no reverse dns", "generic dns ptr",
	"domain * mismatches client ip", "dns lookup failure: * try again later",
	"forward dns entry does not point to the sending ip",
	"unverifyable sending ips",
};

static const char *const p_badreputation[] = {
	"poor email reputation", "poor reputation", "bad reputation",
	"ip reputation", "domain reputation", "low reputation",
	"temporarily deferred due to unexpected volume or user complaints",
};

static const char *const p_contenterror[] = {
	"duplicate header", "header size exceeds maximum",
	"improper use of 8-bit data in message header",
	"message header size, or recipient list, exceeds policy limit",
	"mime complexity exceeds", "invalid mime headers",
	"improperly-formatted binary content", "unnecessary base64 encoding",
	"too many received: headers",
};

/* Rejected: the sender (envelope from) was refused. */
static const char *const p_rejected_not[] = {
	"recipient address rejected", "sender ip address rejected",
	"5.1.0 address rejected",
};
static const char *const p_rejected[] = {
	"sender rejected", "sender was rejected", "sender address rejected",
	"please provide a valid from", "from: domain is invalid",
	"sender email address rejected", "sender verify failed",
	"sender is spammer", "sender not pre-approved", "invalid sender",
	"sender domain is empty", "domain of sender address ",
	"sender address has been blacklisted", "sender is in my black list",
	"unroutable sender address", "bogus mail from",
	"null sender is not allowed", "empty envelope senders not allowed",
	"returned mail not accepted here", "address rejected",
	"administrative prohibition", "access denied (in reply to mail from",
	"access denied (sender blacklisted)", "batv failed", "batv validation",
	"rejected by batv", "backscatter protection",
	"not on the recipient's list of senders",
	"this server does not accept mail from", "mail from not owned by user",
	"fully qualified email address required", "emetteur invalide",
	"can't determine purported responsible address",
	"you are not allowed to post to this mailing list",
	"your email address has been blacklisted",
	"has been blacklisted", "envelope blocked",
	"is not a registered gateway user", "no third-party dsns",
	"does not exist e2110",
	"unsigned dsn", "mx records for ",
	"delivery not authorized, message refused",
};

static const char *const p_spamdetected[] = {
	"spam detected", "detected as spam", "as spam", "is spam", "be spam",
	"like spam", "spam-like", "spam message", "spam content", "spam score",
	"spam filter", "spam check", "spam rejected", "spam blocked", "spam refused",
	"spam not accepted", " - spam", "spamassassin", "spam points", "spambouncer",
	"spam complaints", "spamming", "probable spam", "much spam",
	"unsolicited", "bulk e-mail", "bulk email", "bulk mail",
	"blacklisted url", "message content rejected", "content filter rejection",
	"mail content denied", "rejecting banned content", "rejecting mail content",
	"message rejected because of unacceptable content",
	"message filtered", "recurrent pattern detection",
	"uribl", "greylisted* please try again in", "mail score (* over ",
	"mail rejete. mail rejected. *506", "rejected by * (spam)",
	"rule imposed as * is blacklisted on", "sender domain listed at ",
	"554 5.7.0 reject, id=", "message considered as spam or virus",
	"message rejected for policy reasons",
};

static const char *const p_speeding[] = {
	"please try again slower", "temporarily rate limited",
	"rate that prevents additional messages from being delivered",
	"rate limit exceeded", "too fast",
};

static const char *const p_toomanyconn[] = {
	"too many connections", "too many concurrent", "connection rate limit",
	"maximum connection limit", "per-domain connection limit",
	"too many smtp sessions", "too many errors from your ip",
	"too many recipients", "trop de connexions",
	"max emails per hour", "maximum sending rate exceeded",
	"daily message quota exceeded",
	"we have already made numerous attempts to deliver this message",
};

static const char *const p_blocked[] = {
	"blocked using ", "blacklisted by", "blocklisted", "is in a black list",
	"listed in the rbl", "rbl on ", "spamhaus", "spamcop", "barracuda",
	"dnsbl", "blocked - see http", "refused - see http",
	"rejected - multi-blacklist", "was blocked by ", "bad sender ip address",
	"banned sending ip", "client host rejected", "helo command rejected",
	"connection refused by", "connection reset by peer",
	"connection dropped", "connection was dropped by remote host",
	"hosts with dynamic ip", "dynamic ip", "dynamic/zombied",
	"invalid ip for sending mail of domain", "go away",
	"is not allowed to send mail from", "not currently accepting mail from your ip",
	"your ip address is listed", "your network is temporary blacklisted",
	"please use the smtp server of your isp", "rejecting open proxy",
	"sender ip address rejected", "server access forbidden by your ip",
	"service not available, closing transmission channel",
	"smtp error from remote mail server after initial connection",
	"sorry, your remotehost looks suspiciously like spammer",
	"to submit messages to this e-mail system has been rejected",
	"too many spams from your ip", "too many unwanted messages",
	"we do not accept mail from dynamic ips", "you are not allowed to connect",
	"you are sending spam", "your server requires confirmation",
	"confirm this mail server", "extreme bad ip profile",
	"no access from mail server", "host network not allowed",
	"esmtp not accepting connections", "currently sending spam see: ",
	"part of their network is on our block list",
	"access from ip address * blocked", "mail server at * is blocked",
	"your access ip* has been rejected", "is blacklisted",
	"listed as abusive", "blocked by rbl",
	"message from * rejected based on blacklist",
	"temporarily deferred due to user complaints",
	"veuillez essayer plus tard. service refused, please try later. *103",
	"veuillez essayer plus tard. service refused, please try later. *510",
	"mail from * refused:", " said: 550 blocked",
	"has been rejected by the recipient domain",
};

static const char *const p_virusdetected[] = {
	"virus", "malware", "potentially executable attachment",
	"infected",
};

static const char *const p_policyviolation[] = {
	"local policy violation", "violates our policy", "denied by policy",
	"policy reasons", "due to security policies", "organization policy",
	"organizational settings", "due to local policy",
	"an illegal attachment", "closed mailing list", "members-only list",
	"header are not accepted", "header error", "message given low priority",
	"messages with multiple addresses", "protocol violation",
	"not subscribed to this group", "you're using a mass mailer",
	"its content presents a potential",
	"we do not accept messages containing images or other attachments",
	"because the recipient is not accepting mail with ",
	"allowable number of posts without solving a captcha",
};

static const char *const p_systemerror[] = {
	"system error", "internal error", "local error in processing",
	"local configuration error", "server configuration error",
	"mail system configuration error", "system config error",
	"remote server is misconfigured", "temporary local problem",
	"queue file write error", "interrupted system call",
	"can't create user output file", "could not load drd for domain",
	"it encountered an error while being processed",
	"loops back to myself", "loop was found in the mail exchanger",
	"it would create a mail loop", "aliasing/forwarding loop broken",
	"timeout waiting for input", "service currently unavailable",
	"recipient deferred because there is no mdb",
	"unable to connect * daemon", "transaction failed ",
};

static const char *const p_networkerror[] = {
	"mail forwarding loop", "forwarding loop", "routing loop",
	"message looping", "mail loop", "loop detected", "too many hops",
	"hop count exceeded", "host is unreachable", "no route to host",
	"host name lookup failure", "host not found, try again",
	"name server reply", "unable to resolve route ",
	"unrouteable mail domain", "could not connect and send the mail to",
	"dns records for the destination computer could not be found",
	"network is unreachable", "connection refused", "dns error",
};

static const char *const p_systemfull[] = {
	"mail system full", "system is full", "insufficient system storage",
	"requested mail action aborted: exceeded storage allocation",
};

static const char *const p_notaccept[] = {
	"does not accept mail", "host/domain does not accept mail",
	"mail receiving disabled", "nullmx", "null mx",
	"no mx record found", "no route for current request",
	"smtp protocol returned a permanent error",
	"name server: .: host not found",
};

static const char *const p_expired[] = {
	"delivery time expired", "delivery expired", "message expired",
	"has been delayed", "delivery attempts will continue",
	"could not be delivered for * days", "in the queue too long",
	"been in the queue", "could not find a gateway for",
	"giving up on", "failed to deliver to domain ",
	"have been failing for a long time", "it has not been collected after",
	"unable to deliver message after multiple retries",
	"was not reachable within the allowed queue period",
	"your message could not be delivered for more than",
	"connection timed out", "server did not respond", "timed out",
	"retry timeout", "delivery period expired",
};

static const char *const p_securityerror[] = {
	"authentication required", "authentication failure",
	"authentication credentials invalid", "authentication turned on",
	"unauthenticated senders not allowed", "verification failure",
	"authentication is required", "executable files are not allowed",
	"insecure mail relay", "you don't authenticate",
	"authentication failed; server * said: ", "account not subscribed to ses",
	"is a dead domain", "is not authorized to perform ses:",
	"authentification invalide*305", "authentification requise*402",
};

static const char *const p_vacation[] = {
	"i am away on vacation", "i am away until", "i am out of the office",
	"i will be traveling for work", "out of office", "on vacation",
	"auto-reply", "autoreply", "automatic reply",
};

#define PL(a) { a, sizeof(a) / sizeof(a[0]) }
struct plist {
	const char *const *p;
	size_t n;
};
static const struct plist lists[R_COUNT] = {
	[R_USERUNKNOWN] = PL(p_userunknown),
	[R_HOSTUNKNOWN] = PL(p_hostunknown),
	[R_MAILBOXFULL] = PL(p_mailboxfull),
	[R_MESGTOOBIG] = PL(p_mesgtoobig),
	[R_EXCEEDLIMIT] = PL(p_exceedlimit),
	[R_SUSPEND] = PL(p_suspend),
	[R_HASMOVED] = PL(p_hasmoved),
	[R_NORELAYING] = PL(p_norelaying),
	[R_AUTHFAILURE] = PL(p_authfailure),
	[R_FILTERED] = PL(p_filtered),
	[R_REQUIREPTR] = PL(p_requireptr),
	[R_BADREPUTATION] = PL(p_badreputation),
	[R_CONTENTERROR] = PL(p_contenterror),
	[R_REJECTED] = PL(p_rejected),
	[R_SPAMDETECTED] = PL(p_spamdetected),
	[R_SPEEDING] = PL(p_speeding),
	[R_TOOMANYCONN] = PL(p_toomanyconn),
	[R_BLOCKED] = PL(p_blocked),
	[R_VIRUSDETECTED] = PL(p_virusdetected),
	[R_POLICYVIOLATION] = PL(p_policyviolation),
	[R_SYSTEMERROR] = PL(p_systemerror),
	[R_NETWORKERROR] = PL(p_networkerror),
	[R_SYSTEMFULL] = PL(p_systemfull),
	[R_NOTACCEPT] = PL(p_notaccept),
	[R_EXPIRED] = PL(p_expired),
	[R_SECURITYERROR] = PL(p_securityerror),
	[R_VACATION] = PL(p_vacation),
};

/* One phrase against folded text: '*' separates pieces that must appear
 * in this order. */
static int
phrase_in(const char *text, const char *pat)
{
	char piece[160];
	const char *p = pat, *t = text;

	while (*p != '\0') {
		const char *star = strchr(p, '*');
		size_t n = star != NULL ? (size_t)(star - p) : strlen(p);
		const char *hit;

		if (n >= sizeof(piece))
			n = sizeof(piece) - 1;
		memcpy(piece, p, n);
		piece[n] = '\0';
		if (n > 0) {
			if ((hit = strstr(t, piece)) == NULL)
				return 0;
			t = hit + n;
		}
		if (star == NULL)
			break;
		p = star + 1;
	}
	return 1;
}

static int
text_has(const char *text, enum rsn r)
{
	const struct plist *l = &lists[r];
	size_t i;

	if (text[0] == '\0' || l->p == NULL)
		return 0;
	for (i = 0; i < l->n; i++)
		if (phrase_in(text, l->p[i]))
			return 1;
	return 0;
}

static int
text_has_any(const char *text, const char *const *pats, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (phrase_in(text, pats[i]))
			return 1;
	return 0;
}

/* Lower-case ASCII, one space for any run of white space, at most
 * REASON_TEXT_MAX bytes. */
static void
fold(const char *in, char *out, size_t size)
{
	size_t o = 0;
	int sp = 0;

	for (; in != NULL && *in != '\0' && o + 1 < size; in++) {
		unsigned char c = (unsigned char)*in;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			sp = o > 0;
			continue;
		}
		if (sp && o + 2 < size)
			out[o++] = ' ';
		sp = 0;
		out[o++] = (char)(c < 0x80 ? tolower(c) : c);
	}
	out[o] = '\0';
}

/* Length of the RFC 3463 code at the start of `s` ("4.2.2" -> 5), or 0. */
static size_t
status_len(const char *s)
{
	size_t i = 2, d;

	if ((s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	for (d = 0; isdigit((unsigned char)s[i]); d++)
		i++;
	if (d == 0 || d > 3 || s[i] != '.')
		return 0;
	i++;
	for (d = 0; isdigit((unsigned char)s[i]); d++)
		i++;
	if (d == 0 || d > 3)
		return 0;
	return i;
}

/*
 * A multi-line reply quoted as one line repeats its code on every line:
 * "550-5.2.1 The user you are trying to contact is receiving mail at a
 * rate that 550-5.2.1 prevents additional messages ...".  Keep the first
 * code, drop the repeats, so that phrases read across the line breaks.
 */
static void
drop_repeated_codes(const char *in, char *out)
{
	const char *r = in;
	char *w = out;
	int first = 1;

	while (*r != '\0') {
		if ((r == in || r[-1] == ' ') && r[0] >= '2' && r[0] <= '5' &&
		    isdigit((unsigned char)r[1]) && isdigit((unsigned char)r[2]) &&
		    (r[3] == '-' || r[3] == ' ')) {
			size_t sl = status_len(r + 4);

			if (r[3] == '-' || sl > 0) {
				if (!first) {
					r += 4 + sl;
					while (*r == ' ')
						r++;
					continue;
				}
				first = 0;
			}
		}
		*w++ = *r++;
	}
	*w = '\0';
}

/* "5.1.1" when `s` starts with a well-formed RFC 3463 code (class 2, 4
 * or 5, subject and detail of 1 to 3 digits), else "". */
static void
norm_status(const char *s, char *out, size_t size)
{
	size_t i = 0, digits;
	int part;

	out[0] = '\0';
	if (s == NULL)
		return;
	while (*s == ' ' || *s == '\t')
		s++;
	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return;
	if (s[1] != '.')
		return;
	for (part = 0, i = 2; part < 2; part++) {
		digits = 0;
		while (isdigit((unsigned char)s[i]) && digits < 4) {
			i++;
			digits++;
		}
		if (digits == 0 || digits > 3)
			return;
		if (part == 0) {
			if (s[i] != '.')
				return;
			i++;
		}
	}
	if (isdigit((unsigned char)s[i]) || i >= size)
		return;
	memcpy(out, s, i);
	out[i] = '\0';
}

static enum rsn
status_reason(const char *st)
{
	size_t i;

	if (st[0] == '\0')
		return R_NONE;
	for (i = 0; i < sizeof(status_table) / sizeof(status_table[0]); i++)
		if (strcmp(status_table[i].code, st) == 0)
			return status_table[i].r;
	return R_NONE;
}

/* Reasons a code names only loosely: the text may say better. */
static int
weak_reason(enum rsn r)
{
	switch (r) {
	case R_NONE: case R_UNDEFINED: case R_ONHOLD: case R_SYSTEMERROR:
	case R_SECURITYERROR: case R_EXPIRED: case R_NETWORKERROR:
	case R_HOSTUNKNOWN: case R_USERUNKNOWN:
		return 1;
	default:
		return 0;
	}
}

/*
 * The SMTP phase a failure happened in.  Each MTA says it its own way
 * (Postfix "in reply to RCPT TO command", Exim "after RCPT TO:<a>",
 * Sendmail's ">>> RCPT To:<a>" transcript, ...); bounce.c finds the words
 * and passes the command, the sender passes its own stage name.  LOCAL is
 * a failure the reporting MTA met itself, delivering to its own mailbox
 * store or router: no remote server was asked, so no content filter spoke.
 */
enum cmd { C_NONE, C_CONN, C_EHLO, C_MAIL, C_RCPT, C_DATA, C_LOCAL };

static const char *const cmd_name[] = {
	[C_NONE] = "", [C_CONN] = "connection", [C_EHLO] = "EHLO", [C_MAIL] = "MAIL FROM",
	[C_RCPT] = "RCPT TO", [C_DATA] = "DATA", [C_LOCAL] = "local delivery",
};

/* Command words (bounce.c) and smtp_stage_name()s (the sender) alike. */
static enum cmd
parse_cmd(const char *s)
{
	static const struct { const char *prefix; enum cmd c; } tab[] = {
		{ "CONN", C_CONN }, { "greeting", C_CONN }, { "EHLO", C_EHLO },
		{ "HELO", C_EHLO }, { "STARTTLS", C_EHLO }, { "AUTH", C_EHLO },
		{ "MAIL", C_MAIL }, { "RCPT", C_RCPT }, { "DATA", C_DATA },
		{ "BDAT", C_DATA }, { "end of data", C_DATA }, { "EOD", C_DATA },
		{ "LOCAL", C_LOCAL },
	};
	size_t i;

	if (s == NULL)
		return C_NONE;
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strncasecmp(s, tab[i].prefix, strlen(tab[i].prefix)) == 0)
			return tab[i].c;
	return C_NONE;
}

/* Before DATA nothing of the message has been seen: a refusal there is
 * about the hosts or the addresses, never the content.  A local delivery
 * failure is about the mailbox. */
static int
before_data(enum cmd c)
{
	return c == C_CONN || c == C_EHLO || c == C_MAIL || c == C_RCPT || c == C_LOCAL;
}

/* The text says the sender was refused (and not the recipient). */
static int
sender_refused(const char *t)
{
	return text_has(t, R_REJECTED) &&
	    !text_has_any(t, p_rejected_not, sizeof(p_rejected_not) / sizeof(p_rejected_not[0]));
}

/* 500-507 and 400-407: the command itself was not understood (RFC 5321
 * §4.2.2), whatever it carried. */
static int
syntax_reply(int reply)
{
	return (reply > 500 && reply < 508) || (reply > 400 && reply < 408);
}

/* Each probe says which rule decided: the why line's last words. */
#define WIN(r_, rule_) do { *rule = (rule_); return (r_); } while (0)

/*
 * Step 5: the specific reasons, in order, each by its code or its text.
 * Beside each, sisimai's definition (libsisimai.org, "bounce reason list").
 */
static enum rsn
probe_specific(const char *st, enum rsn sr, int reply, const char *t, enum cmd c,
    const char **rule)
{
	/* mailboxfull: the recipient's mailbox is full (X.2.2).  First: a
	 * full mailbox is often sent with 5.1.1 or 5.2.0. */
	if (sr == R_MAILBOXFULL)
		WIN(R_MAILBOXFULL, "status X.2.2 mailbox full");
	if (text_has(t, R_MAILBOXFULL))
		WIN(R_MAILBOXFULL, "the text says the mailbox is full");
	/* mesgtoobig: the message is bigger than the server takes (X.3.4);
	 * exceedlimit: bigger than the recipient's own limit (X.2.3). */
	if (sr == R_MESGTOOBIG)
		WIN(R_MESGTOOBIG, "status X.3.4 message too big");
	if (sr != R_EXCEEDLIMIT && strcmp(st, "5.2.3") != 0 && text_has(t, R_MESGTOOBIG))
		WIN(R_MESGTOOBIG, "the text says the message is too big");
	if (sr == R_EXCEEDLIMIT)
		WIN(R_EXCEEDLIMIT, "status X.2.3 over the recipient's size limit");
	if (text_has(t, R_EXCEEDLIMIT))
		WIN(R_EXCEEDLIMIT, "the text says the recipient's limit was exceeded");
	/* suspend: the account exists but is disabled or suspended. */
	if (reply == 525)
		WIN(R_SUSPEND, "reply 525 account disabled");
	if (text_has(t, R_SUSPEND))
		WIN(R_SUSPEND, "the text says the account is suspended");
	/* hasmoved: the address moved, the server names the new one. */
	if (text_has(t, R_HASMOVED))
		WIN(R_HASMOVED, "the text says the address has moved");
	/* norelaying: the server refused to relay for us (not at connect). */
	if (c != C_CONN && c != C_EHLO && text_has(t, R_NORELAYING))
		WIN(R_NORELAYING, "the text says relaying was denied");
	/* authfailure: SPF, DKIM or DMARC checks of our mail failed. */
	if (sr == R_AUTHFAILURE)
		WIN(R_AUTHFAILURE, "status X.7.2x authentication (SPF/DKIM/DMARC) failed");
	if (text_has(t, R_AUTHFAILURE))
		WIN(R_AUTHFAILURE, "the text says SPF/DKIM/DMARC failed");
	/* rejected: refused because of the envelope sender.  A refusal of
	 * MAIL FROM is one, whatever the reputation talk around it, unless
	 * the text blames the sending host or asks for authentication. */
	if (c == C_MAIL && !text_has(t, R_BLOCKED) && !text_has(t, R_REQUIREPTR) &&
	    !text_has(t, R_SECURITYERROR) && !syntax_reply(reply))
		WIN(R_REJECTED, "refused in reply to MAIL FROM: the sender");
	/* userunknown: the address does not exist, said at RCPT (or by the
	 * final MTA itself).  The code X.1.1 says so in any phase (sisimai:
	 * a 5.1.1 after DATA is still userunknown; only the words are the
	 * filter's there).  A 5.1.1 whose text speaks of something else (a
	 * relay refusal, a block, the sender) is that something else. */
	if (sr == R_USERUNKNOWN) {
		if (!text_has(t, R_NORELAYING) && !text_has(t, R_BLOCKED) &&
		    !text_has(t, R_MAILBOXFULL) && !text_has(t, R_HASMOVED) &&
		    !sender_refused(t) && !text_has(t, R_NOTACCEPT))
			WIN(R_USERUNKNOWN, "status X.1.1 bad mailbox");
	} else if ((c == C_RCPT || c == C_LOCAL) && text_has(t, R_USERUNKNOWN)) {
		if (c == C_LOCAL)
			WIN(R_USERUNKNOWN, "the final MTA itself says no such user");
		WIN(R_USERUNKNOWN, "no such user, in reply to RCPT TO");
	}
	/* filtered: refused after DATA, by a content filter - even when it
	 * says "user unknown": before DATA the address was accepted. */
	if (sr == R_FILTERED) {
		if (text_has(t, R_USERUNKNOWN) || text_has(t, R_FILTERED))
			WIN(R_FILTERED, "status X.2.x with filter or unknown-user words");
	} else if (!before_data(c)) {
		if (text_has(t, R_FILTERED) || text_has(t, R_USERUNKNOWN))
			WIN(R_FILTERED, c == C_DATA ? "unknown user or filter words after DATA" :
			    "unknown user or filter words, SMTP phase unknown (a filter)");
	}
	/* requireptr: our IP has no PTR record. */
	if (sr == R_REQUIREPTR || text_has(t, R_REQUIREPTR))
		WIN(R_REQUIREPTR, "the sending IP has no reverse DNS");
	/* badreputation: the sending IP's reputation is bad (not a list). */
	if (text_has(t, R_BADREPUTATION))
		WIN(R_BADREPUTATION, "the text blames the sender's reputation");
	/* contenterror: the message is malformed (X.6.x, header syntax). */
	if (sr == R_CONTENTERROR || text_has(t, R_CONTENTERROR)) {
		if (!(st[0] != '\0' && !before_data(c) && text_has(t, R_SPAMDETECTED)))
			WIN(R_CONTENTERROR, "status X.6.x or malformed-message words");
	}
	if (sr == R_REJECTED)
		WIN(R_REJECTED, "status X.1.7/X.1.8 bad sender address");
	if (sender_refused(t)) {
		if (c == C_MAIL || (c == C_DATA && sr != R_USERUNKNOWN) ||
		    sr == R_NONE || sr == R_SECURITYERROR || sr == R_SYSTEMERROR)
			WIN(R_REJECTED, "the text says the sender was refused");
	}
	/* hostunknown: the recipient's domain does not exist (X.1.2). */
	if (sr == R_HOSTUNKNOWN) {
		if (!text_has(t, R_NETWORKERROR))
			WIN(R_HOSTUNKNOWN, "status X.1.2 / 5.4.4 no such domain");
	} else if (text_has(t, R_HOSTUNKNOWN))
		WIN(R_HOSTUNKNOWN, "the text says the host is unknown");
	/* spamdetected: the content was judged spam (only after DATA). */
	if (st[0] != '\0' && sr == R_SPAMDETECTED)
		WIN(R_SPAMDETECTED, "status X.7.28 spam");
	if (st[0] != '\0' && !before_data(c) && text_has(t, R_SPAMDETECTED))
		WIN(R_SPAMDETECTED, "spam words after DATA");
	/* speeding / toomanyconn: rate or connection limits. */
	if (text_has(t, R_SPEEDING))
		WIN(R_SPEEDING, "the text says we sent too fast");
	if (sr == R_TOOMANYCONN || text_has(t, R_TOOMANYCONN))
		WIN(R_TOOMANYCONN, "too many connections or recipients");
	/* blocked: refused because of the client's IP or host name. */
	if (sr == R_BLOCKED)
		WIN(R_BLOCKED, "status X.7.1/X.2.1 transient: the client host");
	if (text_has(t, R_BLOCKED))
		WIN(R_BLOCKED, "the text blames the client IP or host");
	*rule = NULL;
	return R_NONE;
}

/*
 * Step 6: the generic reasons: only when the code names nothing specific
 * (or a weak reason the text may refine).
 */
static enum rsn
probe_generic(const char *st, enum rsn sr, int reply, const char *t, enum cmd c,
    const char **rule)
{
	static const enum rsn order[] = {
		R_MAILBOXFULL, R_AUTHFAILURE, R_BADREPUTATION, R_SPEEDING,
		R_SPAMDETECTED, R_VIRUSDETECTED, R_POLICYVIOLATION,
		R_NORELAYING, R_SYSTEMERROR, R_NETWORKERROR, R_SUSPEND,
		R_CONTENTERROR, R_SYSTEMFULL, R_NOTACCEPT, R_EXPIRED,
		R_SECURITYERROR,
	};
	size_t i;

	if (!weak_reason(sr))
		WIN(sr, "the status code's own reason");
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if (order[i] == R_SPAMDETECTED && before_data(c))
			continue;
		if (text_has(t, order[i]))
			WIN(order[i], "the text's words");
	}
	if (sr != R_NONE)
		WIN(sr, "the status code's own reason");
	/* hasmoved: 551 "user not local; please try <forward-path>". */
	if (reply == 551)
		WIN(R_HASMOVED, "reply 551 user not local (RFC 5321)");
	/* contenterror: a bare X.6.Y is about the content; securityerror: a
	 * bare X.7.Y is security or policy. */
	if (st[0] != '\0' && st[2] == '6')
		WIN(R_CONTENTERROR, "status X.6.x media/content");
	if (st[0] != '\0' && st[2] == '7')
		WIN(R_SECURITYERROR, "status X.7.x security or policy");
	/* syntaxerror: the command was not understood (500-507). */
	if (syntax_reply(reply))
		WIN(R_SYNTAXERROR, "reply 50x/40x command syntax");
	/* blocked: refused before any mail was offered: the sending host. */
	if (c == C_EHLO || c == C_CONN)
		WIN(R_BLOCKED, "refused at connection or EHLO: the client host");
	/* notaccept: the domain takes no mail at all (521/556, RFC 7504). */
	if (reply == 521 || reply == 556)
		WIN(R_NOTACCEPT, "reply 521/556 domain accepts no mail");
	*rule = NULL;
	return R_NONE;
}

#undef WIN

/*
 * Wait conditions: transient states that say nothing about the address,
 * the sender or the content, only "not now" - greylisting, a refused or
 * timed-out connection, a full connection table.  A final failure (the
 * MTA gave up) on one of these is an expiry, not the condition itself:
 * sisimai's "expired", delivery time expired after retrying.  A transient
 * verdict (a blocked IP, a full mailbox) keeps its own reason.
 */
static const char *const p_greylist[] = {
	"greylist", "graylist", "grey list", "gray list", "grey-list", "gray-list",
	"greylisted", "try again later",
};
static const char *const p_connection[] = {
	"connection refused", "connection timed out", "timed out", "no route to host",
	"lost connection", "connection reset", "did not accept our requests to connect",
	"connection closed", "server did not respond", "not responding",
};

/* A notice that the message's time in the queue ran out. */
static const char *const p_expiry[] = {
	"envelope expired", "message expired", "delivery time expired",
	"message has been in the queue too long", "retry timeout exceeded",
};

static const char *
wait_condition(enum rsn r, enum rsn sr, const char *t)
{
	if (text_has_any(t, p_greylist, sizeof(p_greylist) / sizeof(p_greylist[0])) &&
	    (r == R_BLOCKED || r == R_SECURITYERROR || r == R_SYSTEMERROR || r == R_ONHOLD ||
	     r == R_UNDEFINED || r == R_NONE || r == R_POLICYVIOLATION))
		return "greylisting";
	if (r == R_TOOMANYCONN)
		return "too many connections";
	if (r == R_NETWORKERROR &&
	    (sr == R_EXPIRED ||
	     text_has_any(t, p_connection, sizeof(p_connection) / sizeof(p_connection[0]))))
		return "no connection";
	if (r == R_SYSTEMERROR && sr == R_EXPIRED)
		return "no answer";
	return NULL;
}

static enum bounce_class
class_of(enum rsn r, const char *st, int reply, const char **why)
{
	switch (r) {
	case R_USERUNKNOWN: case R_HOSTUNKNOWN: case R_HASMOVED:
		*why = "the address is dead";
		return BOUNCE_HARD;
	case R_NOTACCEPT:
		/* A domain that accepts no mail (null MX, RFC 7505) is dead;
		 * a server that refuses "for now" is not. */
		if (st[0] == '5' || (st[0] == '\0' && (reply == 0 || reply >= 500))) {
			*why = "the domain accepts no mail, permanently";
			return BOUNCE_HARD;
		}
		*why = "refused for now";
		return BOUNCE_SOFT;
	case R_DELAYED:
		*why = "still being tried";
		return BOUNCE_DELAYED;
	case R_DELIVERED:
		*why = "a success";
		return BOUNCE_DELIVERED;
	default:
		*why = "the address may work later";
		return BOUNCE_SOFT;
	}
}

/* Append "; text" (or "text" at the start) to `why`, cut to fit. */
static void
why_add(char *why, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
why_add(char *why, size_t size, const char *fmt, ...)
{
	size_t n;
	va_list ap;

	if (why == NULL || size == 0)
		return;
	n = strlen(why);
	if (n > 0 && n + 2 < size) {
		memcpy(why + n, "; ", 3);
		n += 2;
	}
	if (n + 1 >= size)
		return;
	va_start(ap, fmt);
	vsnprintf(why + n, size - n, fmt, ap);
	va_end(ap);
}

/*
 * The decision table.  Each step runs only when the ones above it decided
 * nothing; the first to decide wins.  Why this order: a field that
 * describes the notice itself (Action) outranks anything inside it; an
 * MTA's fixed sentence outranks the code it attaches, because some MTAs
 * attach the wrong code (qmail's 5.1.1 for a full mailbox); a specific
 * code or phase outranks free text; free text decides only what the
 * structure left open.
 *
 *   step  field(s)                          outcome
 *   1     Status 2.X.Y, Action delivered/   delivered (class delivered)
 *         relayed/expanded
 *   2     Action delayed                    delayed (class delayed): the
 *                                           MTA is still trying; never a
 *                                           bounce, never counted
 *   3     an MTA's fixed wording (table     that reason
 *         `decisive`)
 *   4     the SMTP phase + status + reply   probe_specific(): mailbox full,
 *         + text, reason by reason          size, suspend, moved, relaying,
 *                                           auth, MAIL FROM -> rejected,
 *                                           RCPT/local + unknown -> user-
 *                                           unknown, after DATA -> filtered,
 *                                           ..., blocked last
 *   5     generic: status code's reason,    systemerror, networkerror,
 *         then text, then status class      securityerror, contenterror,
 *         (X.6 content, X.7 security),      syntaxerror, blocked (refused
 *         reply code, phase                 at connect), notaccept
 *   6     a final failure (4.X.Y status or  expired, when what went wrong
 *         4yz reply, Action failed) on a    was only "not now": greylisting,
 *         wait condition                    no connection, too many
 *                                           connections, no answer
 *   7     nothing decided                   vacation words -> vacation;
 *                                           onhold (text, but no rule) or
 *                                           undefined (no text)
 * Generic codes (X.0.0) carry no reason of their own and fall to the text.
 * Class (class_of): hard for userunknown, hostunknown, hasmoved and a
 * permanent notaccept - sisimai's "hardbounce": the address is dead;
 * soft for everything else.
 */
enum bounce_class
bounce_decide(const struct bounce_evidence *e, const char **reason, char *why, size_t why_size)
{
	char st[16], *t, *raw, rulebuf[96];
	enum rsn sr, r = R_NONE;
	enum cmd c = parse_cmd(e->phase);
	const char *action = e->action != NULL ? e->action : "";
	const char *rule = NULL, *cls_why, *wait;
	int reply = e->reply_code, final_transient;
	enum bounce_class cls;
	size_t i;

	if (why != NULL && why_size > 0)
		why[0] = '\0';
	norm_status(e->status, st, sizeof(st));
	if (reply < 200 || reply > 599)
		reply = 0;
	sr = status_reason(st);
	/* The evidence, as read. */
	if (action[0] != '\0')
		why_add(why, why_size, "Action: %s", action);
	if (st[0] != '\0')
		why_add(why, why_size, "status %s", st);
	if (reply != 0)
		why_add(why, why_size, "reply %d", reply);
	if (c != C_NONE)
		why_add(why, why_size, "at %s", cmd_name[c]);

	t = malloc(REASON_TEXT_MAX);
	raw = malloc(REASON_TEXT_MAX);
	if (t == NULL || raw == NULL) {
		free(t);
		free(raw);
		/* Out of memory: the code alone still says something. */
		r = sr == R_NONE ? R_UNDEFINED : sr;
		why_add(why, why_size, "out of memory: the status code alone -> %s", rsn_name[r]);
		*reason = rsn_name[r];
		return class_of(r, st, reply, &cls_why);
	}
	fold(e->diagnostic, raw, REASON_TEXT_MAX);
	drop_repeated_codes(raw, t);
	free(raw);

	/* 1, 2: what kind of notice this is. */
	if (st[0] == '2' || strcmp(action, "delivered") == 0 || strcmp(action, "relayed") == 0 ||
	    strcmp(action, "expanded") == 0) {
		r = R_DELIVERED;
		rule = "a success notice";
		goto done;
	}
	/* A "delayed" notice that says the time ran out (X.4.7, OpenSMTPD's
	 * "Envelope expired") is the last word: the message was dropped. */
	if (strcmp(action, "delayed") == 0 && strcmp(st + (st[0] ? 1 : 0), ".4.7") != 0 &&
	    !text_has_any(t, p_expiry, sizeof(p_expiry) / sizeof(p_expiry[0]))) {
		r = R_DELAYED;
		rule = "a delay warning: still queued, not a failure";
		goto done;
	}
	/* 3: an MTA's fixed wording. */
	for (i = 0; i < sizeof(decisive) / sizeof(decisive[0]); i++) {
		if (phrase_in(t, decisive[i].pat)) {
			r = decisive[i].r;
			snprintf(rulebuf, sizeof rulebuf, "an MTA's fixed wording \"%.60s\"",
			         decisive[i].pat);
			rule = rulebuf;
			goto done;
		}
	}
	/* 4, 5: the specific reasons, then the generic ones. */
	r = probe_specific(st, sr, reply, t, c, &rule);
	if (r == R_NONE)
		r = probe_generic(st, sr, reply, t, c, &rule);
	/* 6: the MTA gave up on something that was only "not now". */
	final_transient = e->returned &&
	    (action[0] == '\0' || strcmp(action, "failed") == 0 ||
	     strcmp(action, "delayed") == 0) &&  /* an expiry notice: see step 2 */
	    (st[0] == '4' || (st[0] == '\0' && reply >= 400 && reply < 500));
	if (final_transient && (wait = wait_condition(r, sr, t)) != NULL) {
		why_add(why, why_size, "%s: %s", rule != NULL ? rule : "no rule", rsn_name[r]);
		why_add(why, why_size, "a final failure of a transient condition (%s)", wait);
		r = R_EXPIRED;
		rule = "gave up retrying";
		goto done;
	}
	/* 7: nothing decided. */
	if (r == R_NONE) {
		if (text_has(t, R_VACATION)) {
			r = R_VACATION;
			rule = "auto-reply words";
		} else if (t[0] != '\0') {
			r = R_ONHOLD;
			rule = "no rule matched the text";
		} else {
			r = R_UNDEFINED;
			rule = "no status, reply or text to go on";
		}
	}
done:
	free(t);
	*reason = rsn_name[r];
	cls = class_of(r, st, reply, &cls_why);
	why_add(why, why_size, "%s -> %s", rule != NULL ? rule : "?", rsn_name[r]);
	why_add(why, why_size, "%s: %s", cls_why, bounce_class_name(cls));
	return cls;
}

enum bounce_class
bounce_classify(const char *status, int reply_code, const char *diagnostic,
    const char *smtp_command, const char **reason)
{
	struct bounce_evidence e = {
		.action = NULL, .status = status, .reply_code = reply_code,
		.diagnostic = diagnostic, .phase = smtp_command,
	};

	return bounce_decide(&e, reason, NULL, 0);
}

const char *
bounce_class_name(enum bounce_class c)
{
	switch (c) {
	case BOUNCE_HARD:
		return "hard";
	case BOUNCE_SOFT:
		return "soft";
	case BOUNCE_COMPLAINT:
		return "complaint";
	case BOUNCE_AUTOREPLY:
		return "autoreply";
	case BOUNCE_DELAYED:
		return "delayed";
	case BOUNCE_DELIVERED:
		return "delivered";
	}
	return "soft";
}
