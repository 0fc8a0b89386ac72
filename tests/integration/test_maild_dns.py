#!/usr/bin/env python3
"""The MX resolver against a real DNS server (unbound on 127.0.0.1 at a
free port, refusing every name outside its test zones): TESTPLAN N1 (MX
by preference, random among equals, implicit MX, null MX), N2 (failures
are temporary; a truncated answer is asked again over TCP), N3 (an MX that
names this host is a loop), CNAMEs, and that no packet leaves loopback
(strace sees only 127.0.0.1). Then maild delivering by MX with no route:
to the first host that answers (the better one refuses connections), and
bounces for a null MX, a domain that does not exist and a loop, while a
SERVFAIL defers; a route that names its smarthost by host name; and
examples/send_one.c sending one message with the resolver and the client
engine alone."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from maildtest import (BUILD, Maild, Results, Sink, Unbound,  # noqa: E402
                       free_port, have, submit_as, wait_until)

r = Results()
SEND_ONE = os.path.join(BUILD, "examples", "send_one")
if not have("unbound"):
    print("SKIP: unbound not installed")
    r.check("unbound (skipped)", True)
    sys.exit(r.finish())

big = ["big.test. 300 IN MX %d mx%02d.a-rather-long-mail-host-name-for-"
       "the-test.big.test." % (10 + i, i) for i in range(30)]
big += ["mx%02d.a-rather-long-mail-host-name-for-the-test.big.test. 300 IN A "
        "127.0.1.%d" % (i, i + 1) for i in range(30)]
records = [
    "pref.test. 300 IN MX 20 b.pref.test.",
    "pref.test. 300 IN MX 10 a.pref.test.",
    "pref.test. 300 IN MX 30 c.pref.test.",
    "a.pref.test. 300 IN A 127.0.0.11",
    "b.pref.test. 300 IN A 127.0.0.12",
    "b.pref.test. 300 IN AAAA ::1",
    "c.pref.test. 300 IN A 127.0.0.13",
    "eq.test. 300 IN MX 10 one.eq.test.",
    "eq.test. 300 IN MX 10 two.eq.test.",
    "one.eq.test. 300 IN A 127.0.0.21",
    "two.eq.test. 300 IN A 127.0.0.22",
    "nomx.test. 300 IN A 127.0.0.31",
    "nullmx.test. 300 IN MX 0 .",
    "alias.test. 300 IN CNAME pref.test.",
    "loop.test. 300 IN MX 10 mx.example.test.",
    "loop.test. 300 IN MX 20 backup.loop.test.",
    "loop.test. 300 IN MX 5 better.loop.test.",
    "better.loop.test. 300 IN A 127.0.0.42",
    "backup.loop.test. 300 IN A 127.0.0.41",
    "selfonly.test. 300 IN MX 10 mx.example.test.",
    "noaddr.test. 300 IN MX 10 nothing.noaddr.test.",
] + big
dns = Unbound(records, ["pref.test", "eq.test", "nomx.test", "nullmx.test",
                        "alias.test", "loop.test", "selfonly.test",
                        "noaddr.test", "big.test"],
              refuse_zones=["refused.test"], forward_dead=["servfail.test"])


def mx(domain, *extra):
    p = subprocess.run([SEND_ONE, "-s", dns.address()] + list(extra) +
                       ["-m", domain], capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout.strip().splitlines()


rc, out = mx("pref.test")
r.check("N1: MX hosts in preference order, IPv6 before IPv4 per host",
        rc == 0 and out == ["10 a.pref.test 127.0.0.11", "20 b.pref.test ::1",
                            "20 b.pref.test 127.0.0.12",
                            "30 c.pref.test 127.0.0.13"], out)
firsts = set()
for _ in range(30):
    rc, out = mx("eq.test")
    if rc == 0 and len(out) == 2:
        firsts.add(out[0].split()[1])
r.check("N1: equal preferences come in both orders",
        firsts == {"one.eq.test", "two.eq.test"}, firsts)
rc, out = mx("nomx.test")
r.check("N1: no MX: the domain itself (implicit MX)",
        rc == 0 and out == ["0 nomx.test 127.0.0.31"], out)
rc, out = mx("nullmx.test")
r.check("N1: null MX is a permanent failure, 5.1.10",
        rc == 1 and out and out[0].startswith("permanent 5.1.10"), out)
rc, out = mx("nxdomain.pref.test")
r.check("NXDOMAIN is a permanent failure, 5.1.2",
        rc == 1 and out and out[0].startswith("permanent 5.1.2"), out)
rc, out = mx("alias.test")
r.check("a CNAME to a domain with MX records is followed",
        rc == 0 and out and out[0] == "10 a.pref.test 127.0.0.11", out)
rc, out = mx("refused.test")
r.check("N2: REFUSED is temporary", rc == 2 and out and
        out[0].startswith("temporary 4.4.3"), out)
rc, out = mx("servfail.test")
r.check("N2: SERVFAIL is temporary", rc == 2 and out and
        out[0].startswith("temporary 4.4.3"), out)
rc, out = mx("noaddr.test")
r.check("an MX host without any address: permanent 5.1.2",
        rc == 1 and out and out[0].startswith("permanent 5.1.2"), out)
rc, out = mx("loop.test", "-S", "mx.example.test")
r.check("N3: only the MX hosts better than this one stay",
        rc == 0 and out == ["5 better.loop.test 127.0.0.42"], out)
rc, out = mx("selfonly.test", "-S", "mx.example.test")
r.check("N3: mail for a domain whose only MX is this host loops: 5.4.6",
        rc == 1 and out and out[0].startswith("permanent 5.4.6"), out)
rc, out = mx("big.test")
r.check("N2: a truncated answer is asked again over TCP (16 hosts kept)",
        rc == 0 and len(out) == 16 and out[0].startswith("10 mx00."), out[:3])

if have("strace"):
    # LeakSanitizer cannot run under ptrace.
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    for dom in ("pref.test", "big.test"):
        p = subprocess.run(["strace", "-f", "-e", "trace=connect,sendto,"
                            "sendmsg,sendmmsg", SEND_ONE, "-s", dns.address(),
                            "-m", dom], capture_output=True, text=True,
                           timeout=60, env=env)
        addrs = set(re.findall(r'inet_addr\("([0-9.]+)"\)', p.stderr))
        addrs |= set(re.findall(r'inet_pton\(AF_INET6, "([^"]+)"', p.stderr))
        r.check("%s: no packet leaves loopback (every destination is "
                "127.0.0.1)" % dom,
                p.returncode == 0 and addrs == {"127.0.0.1"},
                (p.returncode, addrs))
        if dom == "big.test":
            r.check("big.test: the TCP retry connected to the server",
                    re.search(r"connect\(\d+, \{sa_family=AF_INET, "
                              r"sin_port=htons\(%d\)" % dns.port, p.stderr)
                    is not None, p.stderr[-300:])
else:
    r.check("strace (skipped)", True)

# ---- maild delivering by MX, no route ----
if not have("smtp-sink"):
    r.check("smtp-sink (skipped)", True)
    dns.stop()
    sys.exit(r.finish())
port = free_port()
sink = Sink(port)
dns.stop()
records2 = [
    "elsewhere.test. 300 IN MX 10 down.elsewhere.test.",
    "elsewhere.test. 300 IN MX 20 up.elsewhere.test.",
    "down.elsewhere.test. 300 IN A 127.0.0.2",  # nothing listens there
    "up.elsewhere.test. 300 IN A 127.0.0.1",
    "nullmx.test. 300 IN MX 0 .",
    "selfonly.test. 300 IN MX 10 mx.example.test.",
    "smarthost.test. 300 IN MX 10 wrong.smarthost.test.",
    "smarthost.test. 300 IN A 127.0.0.1",
]
dns = Unbound(records2, ["elsewhere.test", "nullmx.test", "selfonly.test",
                         "smarthost.test"],
              forward_dead=["servfail.test"])
# examples/send_one.c, the way an embedder would send: resolver and client
# engine only. The better MX host refuses connections; the next one takes
# the message.
msg_file = os.path.join(dns.dir, "message.eml")
with open(msg_file, "wb") as f:
    f.write(b"Subject: from send_one\n\n.a dotted line\nend\n")
p = subprocess.run([SEND_ONE, "-s", dns.address(), "-p", str(port),
                    "me@example.test", "bob@elsewhere.test", msg_file],
                   capture_output=True, text=True, timeout=60)
wait_until(lambda: sink.messages(), 20)
got = sink.messages()
r.check("send_one: accepted after trying the refusing host first",
        p.returncode == 0 and "trying 127.0.0.2" in p.stderr and
        "trying 127.0.0.1" in p.stderr and len(got) == 1 and
        b"\n.a dotted line\nend\n" in got[0], (p.returncode, p.stderr))
p = subprocess.run([SEND_ONE, "-s", dns.address(), "-p", str(port),
                    "me@example.test", "x@nullmx.test", msg_file],
                   capture_output=True, text=True, timeout=60)
r.check("send_one: a null MX is a permanent failure (exit 1)",
        p.returncode == 1 and "5.1.10" in p.stderr, p.stderr)
for f in os.listdir(sink.dir):
    os.unlink(os.path.join(sink.dir, f))

ALICE = "alice@example.test"


def submit(m, rcpts):
    submit_as(m, ALICE, "pw", rcpts, b"Subject: by MX\r\n\r\nhello\r\n")


A = Maild(users={ALICE: "pw"}, listen=("smtp", "submission"),
          extra="dns-servers %s\noutbound-port %d\nretry-first 1h\n"
          % (dns.address(), port))
submit(A, ["bob@elsewhere.test"])
wait_until(lambda: sink.messages(), 20)
r.check("by MX: delivered to the second host when the first refuses",
        len(sink.messages()) == 1, A.log()[-600:])
r.check("by MX: the log names the host that took it",
        "relay=[127.0.0.1]:%d" % port in A.log() and "status=sent" in A.log(),
        A.log()[-300:])
for dom, enh in (("nullmx.test", "5.1.10"), ("nx.elsewhere.test", "5.1.2"),
                 ("selfonly.test", "5.4.6")):
    submit(A, ["x@" + dom])
    ok = A.wait_log(r"to=<x@%s>.*status=bounced \(550 %s" % (
        re.escape(dom), re.escape(enh)), timeout=15)
    r.check("by MX: %s bounces with %s" % (dom, enh), ok, A.log()[-400:])
submit(A, ["x@servfail.test"])
r.check("by MX: SERVFAIL defers",
        A.wait_log(r"to=<x@servfail.test>.*status=deferred \(451 4.4.3",
                   timeout=30), A.log()[-400:])
r.check("by MX: the bounces reached the sender",
        len(A.mailbox(ALICE, wait=15, count=3)) == 3,
        len(A.mailbox(ALICE)))
A.stop()

# A route may name its host: looked up by address records, not MX.
A.extra = ("dns-servers %s\nroute * smarthost.test:%d\nretry-first 1h\n"
           % (dns.address(), port))
A.write_config()
A.start()
submit(A, ["y@anywhere.test"])
r.check("route by host name: delivered to its A record, not its MX",
        A.wait_log(r"to=<y@anywhere.test>, relay=\[127.0.0.1\]:%d, .*"
                   r"status=sent" % port, timeout=20), A.log()[-600:])
A.stop()
sink.stop()
dns.stop()
sys.exit(r.finish())
