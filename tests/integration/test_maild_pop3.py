#!/usr/bin/env python3
"""POP3 on maild with real clients: Python poplib (USER/PASS after STLS,
AUTH PLAIN over POP3S) and curl pop3:// and pop3s://, verifying the
certificate. A message sent by one user through submission to another is
fetched and deleted by that user with the bytes compared end to end.
TESTPLAN P1 (deletions only at QUIT), P2 ([IN-USE]), P3 (LIST sizes equal
what RETR sends; dot-stuffing), P4 (UIDLs stable across a restart), P5
(commands after STLS in the same packet are not executed), T4 (no login
before TLS). A pipelined burst of RETR and TOP over many messages of mixed
sizes (read ahead in batches by the server) comes back byte for byte."""
import base64
import os
import poplib
import re
import smtplib
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from maildtest import Maild, RawSMTP, Results, have  # noqa: E402

r = Results()
ALICE, BOB, PW = "alice@example.test", "bob@example.test", "pop pass"
CAROL = "carol@example.test"
DAVE = "dave@example.test"
LISTEN = ("smtp", "submission", "pop3", "pop3s")


def pop(m, ctx):
    p = poplib.POP3("127.0.0.1", m.ports["pop3"][0], timeout=30)
    p.stls(context=ctx)
    return p


def plant(m, address, messages):
    """Writes messages straight into the mailbox's new/, as another
    delivery agent would: some names carry the size tags, some do not."""
    d = m.mailbox_dir(address)
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    for i, data in enumerate(messages):
        crlf = len(data) + data.count(b"\n") - data.count(b"\r\n")
        tags = ",S=%d,W=%d" % (len(data), crlf) if i % 3 else ""
        name = "17642%05d.M%dP1.planted%s" % (i, i, tags)
        with open(os.path.join(d, "new", name), "wb") as f:
            f.write(data)


def read_multiline(f):
    """One multi-line answer from a file-like socket: (status, body)."""
    status = f.readline()
    if not status.startswith(b"+OK"):
        return status, None
    out = []
    while True:
        line = f.readline()
        if line in (b".\r\n", b""):
            break
        out.append(line[1:] if line.startswith(b"..") else line)
    return status, b"".join(out)


def pipelined_burst(m, ca):
    sizes = [0, 1, 70, 4096, 4097, 200000, 131072, 131071, 12, 65536,
             300, 5000, 9, 131073, 40000, 1]
    msgs = []
    for i, n in enumerate(sizes):
        head = b"Subject: planted %d\r\n\r\n" % i
        line = b".dot line %d and some text to fill the line\r\n" % i
        body = (line * (n // len(line) + 1))[:max(n - 2, 0)] + b"\r\n"
        msgs.append(head + body)
    msgs.append(b"Subject: bare LF\n\nline one\n.line two\n")
    plant(m, CAROL, msgs)
    # The server lists in delivery order, which here is the name order.
    want = [x.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            for x in msgs]
    ctx = ssl.create_default_context(cafile=ca)
    raw = socket.create_connection(("127.0.0.1", m.ports["pop3s"][0]),
                                   timeout=30)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    f = s.makefile("rb")
    f.readline()
    cmds = [b"USER " + CAROL.encode(), b"PASS " + PW.encode(), b"LIST"]
    n = len(msgs)
    order = list(range(1, n + 1)) + [n - 1, 3, 1]  # and some again
    cmds += [b"RETR %d" % i for i in order]
    cmds += [b"TOP %d 0" % i for i in (6, 2)] + [b"QUIT"]
    s.sendall(b"".join(c + b"\r\n" for c in cmds))
    ok = f.readline().startswith(b"+OK") and f.readline().startswith(b"+OK")
    r.check("burst: USER and PASS pipelined", ok)
    _, listing = read_multiline(f)
    sizes_listed = [int(x.split()[1]) for x in listing.splitlines()]
    r.check("burst: LIST sizes are what RETR will send",
            sizes_listed == [len(w) for w in want],
            (sizes_listed, [len(w) for w in want]))
    bad = []
    for i in order:
        status, got = read_multiline(f)
        if got != want[i - 1]:
            bad.append((i, status, len(got or b""), len(want[i - 1])))
    r.check("burst: %d pipelined RETRs return every message byte for byte"
            % len(order), not bad, bad[:5])
    tops = [read_multiline(f)[1] for _ in (6, 2)]
    r.check("burst: TOP n 0 after RETRs gives the headers",
            tops == [want[5].split(b"\r\n\r\n")[0] + b"\r\n\r\n",
                     want[1].split(b"\r\n\r\n")[0] + b"\r\n\r\n"],
            tops)
    r.check("burst: QUIT answered", f.readline().startswith(b"+OK"))
    s.close()


def close_then_reconnect(m, ca, count=10000):
    """A login moves nothing; the moves to cur/ come after QUIT's answer,
    and a client that logs in again at once waits for them instead of
    getting [IN-USE]."""
    plant(m, DAVE, [b"Subject: %d\r\n\r\nbody\r\n" % i
                    for i in range(count)])
    d = m.mailbox_dir(DAVE)
    ctx = ssl.create_default_context(cafile=ca)
    p = pop(m, ctx)
    p.user(DAVE)
    p.pass_(PW)
    r.check("reconnect: STAT lists every message", p.stat()[0] == count)
    r.check("reconnect: the login moved nothing",
            len(os.listdir(os.path.join(d, "new"))) == count)
    p.retr(1)
    q = pop(m, ctx)  # connected and in TLS before the first one quits
    q.user(DAVE)
    p.quit()
    try:
        resp = q.pass_(PW)
    except poplib.error_proto as e:
        resp = e.args[0]
    r.check("reconnect: a login right after QUIT is not [IN-USE]",
            resp.startswith(b"+OK"), resp)
    r.check("reconnect: it lists the same messages", q.stat()[0] == count)
    r.check("reconnect: the first session's moves were done by then",
            len(os.listdir(os.path.join(d, "cur"))) == count)
    q.quit()
    r.check("reconnect: new/ is empty",
            os.listdir(os.path.join(d, "new")) == [])


with Maild(users={ALICE: PW, BOB: PW, CAROL: PW, DAVE: PW},
           listen=LISTEN) as m:
    ca = os.path.join(m.data, "tls", "cert.pem")
    ctx = ssl.create_default_context(cafile=ca)

    # Alice sends to Bob through submission, after STARTTLS and AUTH.
    body = (b"Subject: for bob\r\n\r\nhello bob\r\n.starts with a dot\r\n"
            b"..two dots\r\n\r\nlast line\r\n")
    with smtplib.SMTP("127.0.0.1", m.ports["submission"][0],
                      timeout=30) as s:
        s.starttls(context=ctx)
        s.login(ALICE, PW)
        s.sendmail(ALICE, [BOB], body)
        s.sendmail(ALICE, [BOB], b"Subject: second\r\n\r\nsecond\r\n")
    r.check("two messages delivered", len(m.mailbox(BOB, wait=10, count=2))
            == 2)

    # T4: nothing in the clear.
    p = poplib.POP3("127.0.0.1", m.ports["pop3"][0], timeout=30)
    caps = p.capa()
    r.check("T4: USER not offered before STLS, STLS offered",
            "USER" not in caps and "STLS" in caps, caps)
    try:
        p.user(BOB)
        r.check("T4: USER before TLS refused", False)
    except poplib.error_proto as e:
        r.check("T4: USER before TLS refused", b"-ERR" in e.args[0], e)
    p.quit()

    # USER/PASS after STLS; sizes, RETR bytes, UIDL.
    tls_logged = r"TLS from \[127\.0\.0\.1\]: TLSv1\.2 with cipher ECDHE-"
    before = len(re.findall(tls_logged, m.log()))
    p = pop(m, ctx)
    p.user(BOB)
    r.check("login after STLS", p.pass_(PW).startswith(b"+OK"))
    r.check("the STLS handshake is logged with its protocol and cipher",
            len(re.findall(tls_logged, m.log())) == before + 1,
            m.log()[-400:])
    count, total = p.stat()
    listing = [tuple(map(int, x.split())) for x in p.list()[1]]
    uidls = [x.split()[1] for x in p.uidl()[1]]
    resp, lines, octets = p.retr(1)
    got = b"\r\n".join(lines) + b"\r\n"
    new = os.path.join(m.mailbox_dir(BOB), "new")
    # Served from new/ (the login moves none); the file of message 1 is the
    # one whose name starts with its UIDL.
    names = [n for n in os.listdir(new)
             if re.split(r"[,:]", n)[0] == uidls[0].decode()]
    stored = open(os.path.join(new, names[0]), "rb").read() if names else b""
    r.check("STAT counts both", count == 2, (count, total))
    r.check("P3: LIST size equals the octets RETR sent",
            listing[0][1] == octets == len(stored), (listing, octets,
                                                     len(stored)))
    r.check("end to end: the bytes Bob fetched are the stored message, "
            "whose body is what Alice sent",
            got == stored and stored.endswith(body), got[-120:])
    resp, top, _ = p.top(1, 1)
    r.check("TOP 1 1: headers, blank line, one body line",
            top[-2:] == [b"", b"hello bob"], top[-3:])
    r.check("UIDLs unique and RFC 1939 shaped",
            len(set(uidls)) == 2 and all(0 < len(u) <= 70 for u in uidls),
            uidls)

    # P2: a second session on the same mailbox.
    q = pop(m, ctx)
    q.user(BOB)
    try:
        q.pass_(PW)
        r.check("P2: second session gets [IN-USE]", False)
    except poplib.error_proto as e:
        r.check("P2: second session gets [IN-USE]", b"[IN-USE]" in e.args[0],
                e)
    q.close()

    # P1: DELE then disconnect keeps everything.
    p.dele(1)
    p.sock.close()
    p = pop(m, ctx)
    p.user(BOB)
    p.pass_(PW)
    r.check("P1: DELE then disconnect: nothing removed", p.stat()[0] == 2)
    p.dele(1)
    p.quit()
    r.check("P1: DELE then QUIT removes it", len(m.mailbox(BOB)) +
            len(os.listdir(os.path.join(m.mailbox_dir(BOB), "cur"))) == 1)

    # AUTH PLAIN over POP3S, and P4 across a restart.
    m.stop()
    m.start()
    ctx2 = ssl.create_default_context(cafile=ca)
    p = poplib.POP3_SSL("127.0.0.1", m.ports["pop3s"][0], context=ctx2,
                        timeout=30)
    resp = p._shortcmd("AUTH PLAIN " + base64.b64encode(
        ("\0%s\0%s" % (BOB, PW)).encode()).decode())
    r.check("AUTH PLAIN over POP3S", resp.startswith(b"+OK"), resp)
    after = [x.split()[1] for x in p.uidl()[1]]
    r.check("P4: the remaining UIDL is unchanged after a restart",
            after == uidls[1:], (after, uidls))
    p.quit()

    # P5: USER/PASS pipelined behind STLS are never executed.
    c = RawSMTP(m.ports["pop3"][0])
    c.s.recv(200)  # the greeting
    c.send(b"STLS\r\nUSER " + BOB.encode() + b"\r\nPASS " + PW.encode() +
           b"\r\nDELE 1\r\nQUIT\r\n")
    code_line = c.s.recv(100)
    r.check("P5: only the STLS answer comes back in the clear",
            code_line.startswith(b"+OK") and code_line.count(b"\r\n") == 1,
            code_line)
    c.close()
    p = pop(m, ctx2)
    p.user(BOB)
    p.pass_(PW)
    r.check("P5: nothing was deleted", p.stat()[0] == 1)
    p.quit()

    pipelined_burst(m, ca)
    close_then_reconnect(m, ca)

    # curl, verifying the certificate.
    if have("curl"):
        for url in ("pop3://127.0.0.1:%d/1" % m.ports["pop3"][0],
                    "pop3s://127.0.0.1:%d/1" % m.ports["pop3s"][0]):
            out = subprocess.run(
                ["curl", "-s", "--ssl-reqd", "--cacert", ca, "--user",
                 "%s:%s" % (BOB, PW), url], capture_output=True, timeout=60)
            r.check("curl " + url.split(":")[0] + " fetches the message",
                    out.returncode == 0 and b"second" in out.stdout,
                    (out.returncode, out.stderr[-200:]))
    else:
        print("SKIP curl: not installed")
        r.check("curl (skipped)", True)
    r.check("no login failures were logged",
            "pop3 auth failed" not in m.log())

    # A client that speaks plaintext on pop3s: logged with the reason.
    raw = socket.create_connection(("127.0.0.1", m.ports["pop3s"][0]),
                                   timeout=10)
    raw.sendall(b"USER not-tls\r\n")
    raw.shutdown(socket.SHUT_WR)
    try:
        raw.recv(100)
    except OSError:
        pass
    raw.close()
    ok = m.wait_log(r"TLS handshake failed from \[127.0.0.1\]: \S", 10)
    r.check("pop3s: a failed handshake is logged with its reason",
            ok and "(null)" not in m.log(),
            [x for x in m.log().splitlines() if "TLS handshake" in x])
sys.exit(r.finish())
