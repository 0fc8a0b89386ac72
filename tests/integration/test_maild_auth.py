#!/usr/bin/env python3
"""SMTP AUTH on maild (RFC 4954): offered only after STARTTLS (TESTPLAN
T4), PLAIN and LOGIN against the users file, the same answer for an
unknown user and a wrong password with growing delays and a disconnect
after three failures (A2), the RFC 4954 errors for malformed exchanges
(A1), a log line per failure with the client address, and ESMTPSA in the
Received header."""
import base64
import os
import smtplib
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from maildtest import Maild, RawSMTP, Results  # noqa: E402

r = Results()
PW = "s3cret pass"
USER = "alice@example.test"


def b64(s):
    return base64.b64encode(s.encode()).decode()


def tls_client(m, ctx):
    s = smtplib.SMTP("127.0.0.1", m.port, timeout=30)
    s.ehlo("client.example")
    s.starttls(context=ctx)
    s.ehlo("client.example")
    return s


with Maild(users={USER: PW}) as m:
    ctx = ssl.create_default_context(
        cafile=os.path.join(m.data, "tls", "cert.pem"))

    # T4: no AUTH in the clear.
    plain = smtplib.SMTP("127.0.0.1", m.port, timeout=30)
    plain.ehlo("client.example")
    r.check("T4: AUTH not offered before TLS", not plain.has_extn("auth") and
            plain.has_extn("starttls"), plain.esmtp_features)
    plain.quit()
    c = RawSMTP(m.port)
    c.reply()
    c.cmd(b"EHLO client.example")
    code, text = c.cmd(b"AUTH PLAIN " + b64("\0%s\0%s" % (USER, PW)).encode())
    r.check("T4: AUTH before TLS refused 538 5.7.11",
            code == 538 and text.startswith(b"5.7.11"), (code, text))
    c.close()

    # PLAIN and LOGIN after STARTTLS.
    s = tls_client(m, ctx)
    r.check("AUTH offered after TLS",
            "PLAIN" in s.esmtp_features.get("auth", "") and
            "LOGIN" in s.esmtp_features.get("auth", ""),
            s.esmtp_features)
    code, text = s.docmd("AUTH", "PLAIN " + b64("\0%s\0%s" % (USER, PW)))
    r.check("AUTH PLAIN with the right password: 235", code == 235,
            (code, text))
    code, text = s.docmd("AUTH", "PLAIN " + b64("\0%s\0%s" % (USER, PW)))
    r.check("A1: AUTH twice: 503", code == 503, (code, text))
    s.sendmail(USER, [USER], b"Subject: auth\r\n\r\nsent after AUTH\r\n")
    s.quit()
    msgs = m.mailbox(USER, wait=10)
    r.check("Received says ESMTPSA",
            len(msgs) == 1 and b"with ESMTPSA" in msgs[0], msgs[:1])

    s = tls_client(m, ctx)
    code, text = s.docmd("AUTH", "LOGIN")
    ok = code == 334 and base64.b64decode(text) == b"Username:"
    code, text = s.docmd(b64(USER))
    ok = ok and code == 334 and base64.b64decode(text) == b"Password:"
    code, text = s.docmd(b64(PW))
    r.check("AUTH LOGIN in two steps: 235", ok and code == 235, (code, text))
    s.quit()

    # A1: the RFC 4954 errors.
    s = tls_client(m, ctx)
    code, text = s.docmd("AUTH", "PLAIN")
    r.check("PLAIN without initial response: empty 334", code == 334 and
            text == b"", (code, text))
    code, text = s.docmd("*")
    r.check("A1: '*' cancels with 501 5.0.0",
            code == 501 and text.startswith(b"5.0.0"), (code, text))
    code, text = s.docmd("AUTH", "CRAM-MD5")
    r.check("A1: unknown mechanism: 504", code == 504, (code, text))
    s.mail("x@remote.example")
    code, text = s.docmd("AUTH", "PLAIN " + b64("\0%s\0%s" % (USER, PW)))
    r.check("A1: AUTH inside a transaction: 503", code == 503, (code, text))
    s.rset()
    code, text = s.docmd("AUTH", "PLAIN !!!notbase64")
    r.check("A1: undecodable response: 501 5.5.2",
            code == 501 and text.startswith(b"5.5.2"), (code, text))
    code, text = s.docmd("AUTH", "PLAIN " + "QUFB" * 4000)
    r.check("A1: oversize response refused", code in (500, 501), (code, text))
    s.close()

    # A2: the same answer, growing delays, then the session ends.
    s = tls_client(m, ctx)
    answers, times = [], []
    for user, pw in ((USER, "wrong"), ("nobody@example.test", PW),
                     (USER, "wrong again")):
        t = time.time()
        try:
            answers.append(s.docmd("AUTH", "PLAIN " +
                                   b64("\0%s\0%s" % (user, pw))))
        except smtplib.SMTPServerDisconnected:
            answers.append((None, b""))
        times.append(time.time() - t)
    r.check("A2: unknown user and wrong password get the same answer",
            answers[0] == answers[1] == (535, b"5.7.8 Error: authentication "
                                         b"failed"), answers)
    r.check("A2: delays grow (about 1 s, then 2 s)",
            0.8 <= times[0] < 1.8 and 1.8 <= times[1] < 3.5, times)
    r.check("A2: third failure closes the session with 421",
            answers[2][0] == 421, answers[2])
    s.close()
    r.check("A2: one log line per failure, with the client address",
            m.log().count("auth failed: client=[127.0.0.1]") >= 4,
            m.log()[-600:])
    # Another client is not held up by that session's delays.
    t = time.time()
    s = tls_client(m, ctx)
    code, _ = s.docmd("AUTH", "PLAIN " + b64("\0%s\0%s" % (USER, PW)))
    s.quit()
    r.check("others log in meanwhile", code == 235 and time.time() - t < 5,
            (code, time.time() - t))
sys.exit(r.finish())
