#!/usr/bin/python3
"""report.py - print the send benchmark's figures from send.sh's results file.

send.sh writes KEY=VALUE lines as it measures; this turns them into the
table a person reads and, as the very last line, one JSON object for scripts
(keys documented in bench/README.md).  Targets: herald with DKIM off >= 0.6
x smtp-source (issue 19; issue 3 asked 0.5), with DKIM on >= 1,000 msg/s,
peak RSS < 64 MB at 1,000,000 subscribers (issue 3).

    bench/report.py RESULTS_FILE
"""
import json
import sys


def load(path):
    r = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                r[k] = v
    return r


def num(r, k, default=None):
    try:
        v = float(r[k])
    except (KeyError, ValueError):
        return default
    return int(v) if v.is_integer() and "." not in r[k] else v


def send_figures(r, tag, msgs):
    if tag + "_wall" not in r:
        return None
    wall = num(r, tag + "_wall")
    cpu = num(r, tag + "_user") + num(r, tag + "_sys")
    sent = num(r, tag + "_sent", 0)
    return {
        "messages": msgs,
        "sent": sent,
        "sink_received": num(r, tag + "_sink"),
        "wall_s": wall,
        "msgs_per_s": round(sent / wall, 1) if wall > 0 else None,
        "cpu_s": round(cpu, 2),
        "cpu_s_per_1000": round(cpu / sent * 1000, 3) if sent else None,
        "peak_rss_mb": round(num(r, tag + "_rss_kb") / 1024, 1),
        "connections": num(r, tag + "_conns_used", r.get(tag + "_conns_used")),
        "summary": r.get(tag + "_summary", ""),
    }


def main():
    r = load(sys.argv[1])
    n = num(r, "subscribers")
    ncpu = num(r, "ncpu")
    size = num(r, "msg_size")
    sessions = num(r, "sessions")
    off = send_figures(r, "herald", n)
    on = send_figures(r, "dkim", n)
    full = send_figures(r, "syncfull", n)
    src_wall = num(r, "source_wall")
    src = {
        "sessions": sessions,
        "messages": n,
        "payload_bytes": size,
        "sink_received": num(r, "source_sink"),
        "wall_s": src_wall,
        "msgs_per_s": round(n / src_wall, 1) if src_wall else None,
        "cpu_s": round(num(r, "source_user") + num(r, "source_sys"), 2),
    }
    signs = num(r, "rsa2048_signs")
    ratio = (round(off["msgs_per_s"] / src["msgs_per_s"], 3)
             if off and off["msgs_per_s"] and src["msgs_per_s"] else None)
    dkim_ratio = (round(on["msgs_per_s"] / signs, 3)
                  if on and on["msgs_per_s"] and signs else None)
    dkim_src_ratio = (round(on["msgs_per_s"] / src["msgs_per_s"], 3)
                      if on and on["msgs_per_s"] and src["msgs_per_s"] else None)

    conns_note = ("connections %s" % off["connections"]
                  if r.get("connections_key") == "1" else
                  "connections %s: this herald has no [smtp] connections key"
                  % off["connections"])

    def herald_line(label, f, note):
        return ("%-21s %7d msgs %7.1f s %7.0f msg/s   CPU %.2f s/1000 msgs"
                "   peak RSS %.1f MB   (%s)"
                % (label, f["sent"], f["wall_s"], f["msgs_per_s"],
                   f["cpu_s_per_1000"], f["peak_rss_mb"], note))

    def verdict(ok):
        return "meets target" if ok else "BELOW target"

    out = []
    out.append("")
    out.append("herald send benchmark: %d subscribers, sample issue "
               "newsletter-16, average message %d bytes, %d CPUs, sink and "
               "senders on 127.0.0.1" % (n, size, ncpu))
    out.append("  %s; load average %s at the start, %s at the end (other "
               "work on the machine skews every figure)"
               % (r.get("herald_version", ""), r.get("load_start"),
                  r.get("load_end")))
    out.append(herald_line("herald send", off, conns_note + ", DKIM off"))
    if full:
        out.append(herald_line("herald sync=FULL", full,
                               "synchronous = full: %.2f x normal"
                               % (full["msgs_per_s"] / off["msgs_per_s"])))
    if on:
        out.append(herald_line("herald send +DKIM", on,
                               conns_note + ", DKIM rsa-sha256 2048, "
                               "message %s bytes" % r.get("msg_size_dkim")))
    out.append("%-21s %7d msgs %7.1f s %7.0f msg/s   CPU %.2f s/1000 msgs"
               % ("smtp-source -d -s %d" % sessions, n, src["wall_s"],
                  src["msgs_per_s"], src["cpu_s"] / n * 1000))
    if ratio is not None:
        out.append("ratio herald/smtp-source %.2f   (target >= 0.60: %s)"
                   % (ratio, verdict(ratio >= 0.6)))
    out.append("openssl rsa2048 sign (%d cores)  %.0f/s   (%s, %s s)"
               % (ncpu, signs, r.get("openssl_version", "openssl"),
                  r.get("openssl_seconds")))
    dk = r.get("dkim", "off")
    if dk == "measured":
        out.append("ratio herald-DKIM/signs %.2f   herald-DKIM/smtp-source %.2f"
                   "   (target >= 1000 msg/s: %s)"
                   % (dkim_ratio, dkim_src_ratio,
                      verdict(on["msgs_per_s"] >= 1000)))
    elif dk == "unsupported":
        out.append("DKIM: not supported by this herald yet")
    elif dk == "failed":
        out.append("DKIM: the send with [dkim] FAILED (see the kept directory)")
    if n >= 1000000:
        out.append("peak RSS at %d subscribers %.1f MB   (target < 64 MB: %s)"
                   % (n, off["peak_rss_mb"], verdict(off["peak_rss_mb"] < 64)))
    warn = []
    for label, f in (("herald", off), ("herald+DKIM", on)):
        if f and (f["sent"] != n or f["sink_received"] != n):
            warn.append("%s: %s sent of %d, sink counted %s"
                        % (label, f["sent"], n, f["sink_received"]))
    if on and r.get("dkim_preview_signed") != "yes":
        warn.append("herald+DKIM: `issue preview --format eml` shows no "
                    "DKIM-Signature; check that the sent mail is signed")
    if src["sink_received"] != n:
        warn.append("smtp-source: sink counted %s of %d"
                    % (src["sink_received"], n))
    imp = num(r, "import_s")
    out.append("setup: CSV generated in %s s, imported in %s s (%.0f rows/s); "
               "whole run %s s" % (r.get("gen_s"), imp,
                                   n / imp if imp else 0, r.get("total_s")))
    for w in warn:
        out.append("WARNING " + w)
    print("\n".join(out))

    doc = {
        "benchmark": "herald-send",
        "herald_version": r.get("herald_version"),
        "subscribers": n,
        "cpus": ncpu,
        "msg_size_avg": size,
        "msg_size_avg_dkim": num(r, "msg_size_dkim"),
        "dkim_preview_signed": r.get("dkim_preview_signed"),
        "connections_asked": num(r, "connections_asked"),
        "connections_key_supported": r.get("connections_key") == "1",
        "herald": off,
        "herald_dkim": on,
        "herald_sync_full": full,
        "dkim": dk,
        "smtp_source": src,
        "ratio_herald_smtp_source": ratio,
        "rsa2048_signs_per_s": signs,
        "ratio_herald_dkim_signs": dkim_ratio,
        "ratio_herald_dkim_smtp_source": dkim_src_ratio,
        "import_s": imp,
        "load_start": r.get("load_start"),
        "load_end": r.get("load_end"),
        "total_s": num(r, "total_s"),
        "warnings": warn,
    }
    print(json.dumps(doc, ensure_ascii=False, sort_keys=False))


if __name__ == "__main__":
    main()
