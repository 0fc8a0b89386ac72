#!/usr/bin/env python3
"""Submission policy: on submission (587) and smtps (465) a client must
log in before MAIL (530 5.7.0, RFC 4954 6), and a logged-in user may send
only as their own address, an alias that reaches them, or the null
sender (553 5.7.1). On port 25 strangers may deliver to local users only:
the relay tricks of TESTPLAN S11 (%, !, source routes, quoted @, address
literals) are refused and never routed."""
import os
import smtplib
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from maildtest import MAILD, Maild, Results  # noqa: E402

r = Results()
ALICE, BOB, PW = "alice@example.test", "bob@example.test", "sub pass"

with Maild(users={ALICE: PW, BOB: PW},
           listen=("smtp", "submission", "smtps"),
           extra="alias info@example.test alice@example.test "
                 "bob@example.test") as m:
    ctx = ssl.create_default_context(
        cafile=os.path.join(m.data, "tls", "cert.pem"))

    s = smtplib.SMTP("127.0.0.1", m.ports["submission"][0], timeout=30)
    s.starttls(context=ctx)
    s.ehlo("client.example")
    code, text = s.mail(ALICE)
    r.check("submission: MAIL before AUTH gets 530 5.7.0",
            code == 530 and text.startswith(b"5.7.0"), (code, text))
    s.login(ALICE, PW)
    code, text = s.mail(BOB)
    r.check("submission: another user's address refused 553 5.7.1",
            code == 553 and text.startswith(b"5.7.1"), (code, text))
    s.rset()
    for sender in (ALICE, "Alice@Example.TEST", "info@example.test", ""):
        code, text = s.mail(sender)
        r.check("submission: may send as <%s>" % sender, code == 250,
                (code, text))
        s.rset()
    s.sendmail(ALICE, [BOB], b"Subject: sub\r\n\r\nfrom alice\r\n")
    s.quit()
    r.check("submission: delivered to a local user",
            len(m.mailbox(BOB, wait=10)) == 1)

    s = smtplib.SMTP_SSL("127.0.0.1", m.ports["smtps"][0], context=ctx,
                         timeout=30)
    s.ehlo("client.example")
    code, _ = s.mail(ALICE)
    r.check("smtps: MAIL before AUTH gets 530", code == 530, code)
    s.login(BOB, PW)
    code, _ = s.mail(BOB)
    r.check("smtps: own address accepted after AUTH", code == 250, code)
    s.quit()

    # Port 25: no login needed to reach local users; no relaying at all.
    s = smtplib.SMTP("127.0.0.1", m.ports["smtp"][0], timeout=30)
    s.ehlo("mx.remote.example")
    code, _ = s.mail("someone@remote.example")
    r.check("port 25: a stranger may start a transaction", code == 250, code)
    code, _ = s.rcpt(ALICE)
    r.check("port 25: a stranger may deliver to a local user", code == 250,
            code)
    tricks = ["victim%elsewhere.example@example.test",
              "elsewhere.example!victim@example.test",
              "@example.test:victim@elsewhere.example",
              '"victim@elsewhere.example"@example.test',
              "victim@[192.0.2.1]",
              "victim@elsewhere.example"]
    for rcpt in tricks:
        code, text = s.docmd("RCPT TO:<%s>" % rcpt)
        r.check("S11: <%s> refused" % rcpt, code in (550, 554, 501, 553),
                (code, text))
    s.quit()
    queued = [f for f in m.spool_files() if f.endswith(".env")]
    r.check("S11: nothing queued for relaying", queued == [], queued)
    r.check("nothing reached alice from the port-25 session",
            len(m.mailbox(ALICE)) == 0)

# Relaying for logged-in users: the mail for other domains is accepted and
# waits in the spool for outbound delivery; the local copy is delivered.
with Maild(users={ALICE: PW, BOB: PW},
           listen=("smtp", "submission")) as m:
    ctx = ssl.create_default_context(
        cafile=os.path.join(m.data, "tls", "cert.pem"))
    s = smtplib.SMTP("127.0.0.1", m.ports["submission"][0], timeout=30)
    s.starttls(context=ctx)
    s.login(ALICE, PW)
    refused = s.sendmail(ALICE, ["friend@elsewhere.example", BOB],
                         b"Subject: relayed\r\n\r\nfor a friend\r\n")
    s.quit()
    r.check("relay after AUTH: accepted", refused == {}, refused)
    r.check("relay after AUTH: the local copy is delivered",
            len(m.mailbox(BOB, wait=10)) == 1)
    # No name server answers for elsewhere.example: deferred, queued.
    r.check("relay after AUTH: no MX answer, so deferred",
            m.wait_log(r"to=<friend@elsewhere.example>, relay=none, .*"
                       r"status=deferred \(451 4.4.3 DNS", timeout=20),
            m.log()[-400:])
    queued = [f for f in m.spool_files()
              if f.startswith("queue/") and f.endswith(".env")]
    r.check("relay after AUTH: one message waits in the spool", len(queued) == 1,
            m.spool_files())
    out = m.ctl("queue", "list").stdout
    r.check("maildctl queue list shows the sender and only the pending "
            "recipient", "<%s>" % ALICE in out and
            "<friend@elsewhere.example>" in out and "<%s>" % BOB not in out
            and "1 message in the queue" in out, out)
    r.check("the log says it waits for outbound delivery",
            "queued (waiting for outbound delivery)" in m.log(),
            m.log()[-400:])
    # A restart keeps it queued, and does not deliver Bob's copy again.
    m.stop()
    m.start()
    r.check("after a restart: still queued, nothing set aside",
            m.wait_log(r"spool: 1 message\(s\) found, 0 set aside",
                       timeout=30) and
            len([f for f in m.spool_files()
                 if f.startswith("queue/") and f.endswith(".env")]) == 1,
            m.log()[-400:])
    r.check("after a restart: Bob still has one copy",
            len(m.mailbox(BOB, wait=2)) == 1)

# trusted-networks: clients there may relay without logging in.
with Maild(users={ALICE: PW}, extra="trusted-networks 10.0.0.0/8 "
           "127.0.0.0/8") as m:
    s = smtplib.SMTP("127.0.0.1", m.port, timeout=30)
    s.ehlo("app.internal")
    refused = s.sendmail("app@internal.example", ["ops@elsewhere.example"],
                         b"Subject: from a trusted network\r\n\r\nx\r\n")
    s.quit()
    r.check("trusted network: relaying accepted without AUTH", refused == {},
            refused)
    m.wait_log("to=<ops@elsewhere.example>.*status=deferred", timeout=20)
    r.check("trusted network: the message waits in the spool",
            len([f for f in m.spool_files()
                 if f.startswith("queue/") and f.endswith(".env")]) == 1)
with Maild(users={ALICE: PW}, extra="trusted-networks 10.0.0.0/8") as m:
    s = smtplib.SMTP("127.0.0.1", m.port, timeout=30)
    s.ehlo("app.internal")
    s.mail("app@internal.example")
    code, _ = s.rcpt("ops@elsewhere.example")
    s.quit()
    r.check("outside the trusted networks: still 554", code == 554, code)
    bad = os.path.join(m.dir, "bad.conf")
    with open(bad, "w") as f:
        f.write("trusted-networks 192.0.2.1/24\n")
    out = subprocess.run([MAILD, "-n", "-f", bad], capture_output=True,
                         text=True, timeout=30)
    r.check("maild -n: a network with host bits set names file and line",
            out.returncode != 0 and "bad.conf:1:" in out.stderr and
            "host bits" in out.stderr, out.stderr)

# any-sender yes: a logged-in user may send as a shared address.
with Maild(users={ALICE: PW, BOB: PW}, listen=("smtp", "submission"),
           extra="any-sender yes") as m:
    ctx = ssl.create_default_context(
        cafile=os.path.join(m.data, "tls", "cert.pem"))
    s = smtplib.SMTP("127.0.0.1", m.ports["submission"][0], timeout=30)
    s.starttls(context=ctx)
    s.login(ALICE, PW)
    code, _ = s.mail("noreply@example.test")
    s.quit()
    r.check("any-sender yes: another sender accepted after AUTH",
            code == 250, code)
sys.exit(r.finish())
