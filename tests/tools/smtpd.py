#!/usr/bin/python3
"""smtpd.py - a real SMTP server on 127.0.0.1 for herald's tests and demo.

Built on Debian's python3-aiosmtpd.  It listens on a free loopback port
(written to --port-file once it accepts connections), stores every accepted
message in a Maildir (tmp/ then new/, as Maildir requires) with a .eml name,
and appends one JSON line per event to --log: accepted messages with their
envelope, and every refusal it made.  Faults are injected by --rules, a JSON
list of objects tried in order, the first match winning:

  {"stage": "connect", "reply": "421 4.3.2 busy", "times": 2}
  {"stage": "rcpt", "match": "^bad-", "reply": "550 5.1.1 user unknown"}
  {"stage": "rcpt", "match": "later@", "reply": "451 4.7.1 try later", "times": 1}
  {"stage": "rcpt", "match": "slow@", "delay": 2.5}
  {"stage": "data", "match": "drop@", "action": "drop"}       (close at DATA)
  {"stage": "eod",  "match": "lost@", "action": "drop"}       (close after the dot)
  {"stage": "eod",  "match": "spam@", "reply": "554 5.7.1 rejected as spam"}
  {"stage": "eod",  "match": "dup@", "action": "accept_drop"}  (keep, then close)
  {"stage": "eod",  "match": "one@", "action": "accept_close"} (250, then close)
  {"stage": "mail", "match": "^bounces", "reply": "550 5.7.1 sender refused"}

EHLO offers PIPELINING (RFC 2920), as Postfix and Exim do, so clients send
MAIL, RCPT and DATA in one write; --no-pipelining leaves it out, for the
client's one-command-at-a-time path.  --tls-cert/--tls-key offer STARTTLS
and require it before MAIL (RFC 3207); with --implicit-tls the whole
connection is TLS from the start (smtps, RFC 8314).  Accepted messages are
logged with "tls": whether they came under TLS.

"match" is a regular expression searched in the recipient address (the
sender's at stage "mail"); "times"
limits how often a rule fires (then it is spent).  "accept_drop" (stage eod
only) stores and logs the message as accepted, then closes the connection
without answering the final dot: the reply is lost, so the client must
assume nothing and send it again later (a duplicate the receiver can
recognise by its Message-ID).  "accept_close" answers the final dot with
250 and then closes the connection, as a relay ending an idle or used-up
session does: the client must notice before its next message.  Stop it by
PID (SIGTERM).
"""
import argparse
import asyncio
import json
import os
import re
import signal
import socket
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Rules:
    def __init__(self, rules):
        self.rules = rules
        for r in self.rules:
            r.setdefault("fired", 0)

    def find(self, stage, rcpt=""):
        for r in self.rules:
            if r.get("stage") != stage:
                continue
            if "match" in r and not re.search(r["match"], rcpt):
                continue
            if "times" in r and r["fired"] >= r["times"]:
                continue
            r["fired"] += 1
            return r
        return None


class Handler:
    def __init__(self, maildir, log, rules, pipelining=True):
        self.pipelining = pipelining
        self.maildir = maildir
        self.log = log
        self.rules = rules
        self.seq = 0
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)

    def record(self, **event):
        event["time"] = time.time()
        self.log.write(json.dumps(event) + "\n")
        self.log.flush()

    async def apply(self, server, stage, rcpt):
        rule = self.rules.find(stage, rcpt)
        if not rule:
            return None
        if rule.get("delay"):
            await asyncio.sleep(rule["delay"])
        if rule.get("action") in ("accept_drop", "accept_close") and stage == "eod":
            return rule["action"]  # handle_DATA stores, logs and closes
        if rule.get("action") == "drop":
            self.record(event="drop", stage=stage, rcpt=rcpt)
            server.transport.close()
            return "drop"
        if rule.get("reply"):
            self.record(event="refuse", stage=stage, rcpt=rcpt, reply=rule["reply"])
            return rule["reply"]
        return None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd reads commands a line at a time, so a pipelined group is
        # answered in order; it only does not say so on its own
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    def note_pipelining(self, server, stage):
        """Log a command that came with more behind it, unanswered: a
        pipelined group (RFC 2920), unasked when EHLO did not offer it."""
        buffered = getattr(server._reader, "_buffer", b"")
        if buffered:
            self.record(event="pipelined" if self.pipelining else "pipelined_unasked",
                        stage=stage, behind=bytes(buffered[:40]).decode("ascii", "replace"))

    async def handle_QUIT(self, server, session, envelope):
        self.record(event="quit")
        return "221 Bye"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.note_pipelining(server, "mail")
        reply = await self.apply(server, "mail", address)
        if reply == "drop":
            return "421 4.4.2 closing"  # not seen: the transport is closed
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.note_pipelining(server, "rcpt")
        reply = await self.apply(server, "rcpt", address)
        if reply == "drop":
            return "421 4.4.2 closing"  # not seen: the transport is closed
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        # commands already behind the final dot: the next envelope, sent
        # with this message's end (RFC 2920 §3.1)
        self.note_pipelining(server, "eod")
        self.tls = (session.ssl is not None or
                    server.transport.get_extra_info("ssl_object") is not None)
        rcpt = ",".join(envelope.rcpt_tos)
        for stage in ("data", "eod"):
            reply = await self.apply(server, stage, rcpt)
            if reply == "drop":
                return "421 4.4.2 closing"
            if reply == "accept_close":
                # the 250, then the close, before any command the client
                # pipelined behind the dot is read
                qid = self.store(envelope)
                self.record(event="close", stage=stage, rcpt=rcpt)
                server.transport.write(("250 2.0.0 Ok: queued as %s\r\n" % qid).encode())
                server.transport.close()
                return "421 4.4.2 closing"  # not seen: the transport is closed
            if reply == "accept_drop":
                self.store(envelope)
                self.record(event="drop", stage=stage, rcpt=rcpt)
                server.transport.close()
                return "421 4.4.2 closing"  # not seen: the transport is closed
            if reply:
                return reply
        qid = self.store(envelope)
        return "250 2.0.0 Ok: queued as %s" % qid

    def store(self, envelope):
        """Deliver to the Maildir and log the accept; return the queue id."""
        self.seq += 1
        qid = "%d%06d" % (os.getpid(), self.seq)
        name = "%d.%d_%d.herald-test.eml" % (int(time.time()), os.getpid(), self.seq)
        tmp = os.path.join(self.maildir, "tmp", name)
        data = envelope.original_content or envelope.content
        with open(tmp, "wb") as f:
            f.write(data)
        final = os.path.join(self.maildir, "new", name)
        os.rename(tmp, final)
        self.record(event="accept", mail_from=envelope.mail_from,
                    rcpt_tos=envelope.rcpt_tos, file=final, size=len(data),
                    queue_id=qid, tls=getattr(self, "tls", False))
        return qid


class Refuse(asyncio.Protocol):
    """Answers the greeting with a 4xx/5xx and closes (stage "connect")."""

    def __init__(self, reply, handler):
        self.reply = reply
        self.handler = handler

    def connection_made(self, transport):
        self.handler.record(event="refuse", stage="connect", rcpt="", reply=self.reply)
        transport.write((self.reply + "\r\n").encode())
        transport.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--rules", help="JSON file with fault rules")
    ap.add_argument("--auth", help="USER:PASSWORD required before MAIL")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--no-pipelining", action="store_true",
                    help="leave PIPELINING out of the EHLO reply")
    ap.add_argument("--tls-cert", help="PEM certificate: offer and require STARTTLS")
    ap.add_argument("--tls-key", help="its PEM key")
    ap.add_argument("--implicit-tls", action="store_true",
                    help="TLS from the first byte (smtps) instead of STARTTLS")
    args = ap.parse_args()

    rules = Rules(json.load(open(args.rules)) if args.rules else [])
    log = open(args.log, "a", buffering=1)
    handler = Handler(args.maildir, log, rules, pipelining=not args.no_pipelining)

    auth_kwargs = {}
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword)
                  and auth_data.login.decode() == user
                  and auth_data.password.decode() == password)
            handler.record(event="auth", ok=ok)
            # handled=False: aiosmtpd itself answers 235, or 535 on failure
            return AuthResult(success=ok, handled=False)

        auth_kwargs = dict(authenticator=authenticator, auth_require_tls=False,
                           auth_required=True)

    tls_context = None
    if args.tls_cert:
        import ssl
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.tls_cert, args.tls_key)
        if not args.implicit_tls:
            auth_kwargs.update(tls_context=tls_context, require_starttls=True)

    def factory():
        rule = rules.find("connect")
        if rule:
            return Refuse(rule.get("reply", "421 4.3.2 Service not available"), handler)
        return SMTP(handler, hostname="herald-test.localhost", data_size_limit=64 << 20,
                    **auth_kwargs)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(factory, host="127.0.0.1", port=args.port,
                           family=socket.AF_INET, reuse_address=True,
                           ssl=tls_context if args.implicit_tls else None))
    port = server.sockets[0].getsockname()[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, args.port_file)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    try:
        loop.run_forever()
    finally:
        server.close()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
