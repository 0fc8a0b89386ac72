#!/usr/bin/env python3
"""maild listens on IPv6 loopback as well as IPv4 (the runtime's
listeners take both families) and records an IPv6 client as an
[IPv6:...] literal in the Received header."""
import os
import re
import smtplib
import socket
import sys

sys.path.insert(0, os.path.dirname(__file__))
from maildtest import Maild, Results  # noqa: E402

r = Results()


def has_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


if not has_ipv6_loopback():
    print("SKIP: no IPv6 loopback on this machine")
    r.check("IPv6 loopback present (skipped)", True)
    sys.exit(r.finish())

with Maild(users={"alice@example.test": "pw"},
           extra="listen smtp [::1]:0") as m:
    line = m.proc.stdout.readline().decode()
    found = re.search(r"listening on \[::1\]:(\d+)", line)
    r.check("second listener reported on [::1]", found is not None, line)
    if found:
        port6 = int(found.group(1))
        body = b"Subject: v6\r\n\r\nover IPv6\r\n"
        s = smtplib.SMTP(timeout=30)
        s._host = "::1"
        s.connect("::1", port6)
        s.ehlo("v6.example")
        s.sendmail("sender@remote.example", ["alice@example.test"], body)
        s.quit()
        msgs = m.mailbox("alice@example.test", wait=10)
        r.check("delivered over IPv6", len(msgs) == 1, len(msgs))
        if msgs:
            r.check("Received shows the IPv6 literal",
                    b"from v6.example ([IPv6:::1])" in msgs[0], msgs[0][:200])
    # IPv4 still works beside it.
    with smtplib.SMTP("127.0.0.1", m.port, timeout=30) as s:
        s.sendmail("sender@remote.example", ["alice@example.test"],
                   b"Subject: v4\r\n\r\nover IPv4\r\n")
    r.check("IPv4 listener serves too",
            len(m.mailbox("alice@example.test", wait=10, count=2)) == 2)
sys.exit(r.finish())
