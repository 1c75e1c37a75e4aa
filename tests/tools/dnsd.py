#!/usr/bin/python3
"""dnsd.py - an authoritative DNS server on 127.0.0.1 for herald's tests.

Built on Debian's python3-dnspython.  Serves every zone file in --zones
(NAME.zone is the zone NAME, in master-file format), over UDP and TCP on
one free loopback port (written to --port-file once both listen).  A name
inside a zone with no node is NXDOMAIN; a node without the asked type is
an empty NOERROR answer; a name outside every zone is REFUSED.  Answers
over UDP larger than the client's EDNS size (512 without EDNS) are sent
truncated (TC), so the client asks again over TCP, as a real server would.
Stop it by PID (SIGTERM).
"""
import argparse
import os
import signal
import socket
import socketserver
import struct
import sys
import threading

import dns.flags
import dns.message
import dns.name
import dns.exception
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone


def load_zones(folder):
    zones = {}
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".zone"):
            continue
        origin = dns.name.from_text(f[:-5])
        with open(os.path.join(folder, f)) as fh:
            zones[origin] = dns.zone.from_text(fh.read(), origin=origin, relativize=False,
                                               check_origin=False)
    return zones


def answer(zones, wire, max_size):
    q = dns.message.from_wire(wire)
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA
    question = q.question[0]
    zone = None
    for origin, z in zones.items():
        if question.name.is_subdomain(origin) and (zone is None or
                                                   len(origin) > len(zone.origin)):
            zone = z
    if zone is None:
        r.set_rcode(dns.rcode.REFUSED)
        r.flags &= ~dns.flags.AA
    else:
        node = zone.get_node(question.name)
        if node is None:
            r.set_rcode(dns.rcode.NXDOMAIN)
        else:
            rds = node.get_rdataset(dns.rdataclass.IN, question.rdtype)
            if rds is not None:
                r.answer.append(dns.rrset.from_rdata_list(question.name, rds.ttl, list(rds)))
    out = r.to_wire()
    if max_size and len(out) > max_size:
        r.answer = []
        r.flags |= dns.flags.TC
        out = r.to_wire()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zones", required=True)
    ap.add_argument("--port-file", required=True)
    args = ap.parse_args()
    zones = load_zones(args.zones)

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    port = udp.getsockname()[1]

    class TCPHandler(socketserver.BaseRequestHandler):
        def handle(self):
            try:
                while True:
                    head = self.request.recv(2)
                    if len(head) < 2:
                        return
                    (n,) = struct.unpack("!H", head)
                    wire = b""
                    while len(wire) < n:
                        chunk = self.request.recv(n - len(wire))
                        if not chunk:
                            return
                        wire += chunk
                    out = answer(zones, wire, 0)
                    self.request.sendall(struct.pack("!H", len(out)) + out)
            except (OSError, dns.exception.DNSException):
                return

    socketserver.TCPServer.allow_reuse_address = True
    tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), TCPHandler)
    tcp.daemon_threads = True
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.rename(tmp, args.port_file)
    while True:
        wire, peer = udp.recvfrom(65535)
        try:
            q = dns.message.from_wire(wire)
            size = max(512, q.payload) if q.edns >= 0 else 512
            udp.sendto(answer(zones, wire, size), peer)
        except dns.exception.DNSException:
            continue


if __name__ == "__main__":
    main()
