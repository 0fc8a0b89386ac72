#!/usr/bin/env python3
"""maild end to end, the thin path: a message to a local user through
smtplib lands in that user's Maildir with Return-Path and Received added
and the body intact; unknown users get 550 5.1.1 and other domains 554
5.7.1 at RCPT; SIGTERM stops the daemon cleanly."""
import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(__file__))
from maildtest import Maild, Results, body_of  # noqa: E402

r = Results()
with Maild(users={"alice@example.test": "pw"}) as m:
    body = b"Subject: smoke\r\n\r\nline one\r\n.leading dot\r\n..two dots\r\n"
    with smtplib.SMTP("127.0.0.1", m.port, timeout=30) as s:
        s.ehlo("client.example")
        s.sendmail("sender@remote.example", ["alice@example.test"], body)
        s.mail("sender@remote.example")
        code, _ = s.rcpt("nobody@example.test")
        r.check("unknown local user refused with 550", code == 550, code)
        code, msg = s.rcpt("someone@elsewhere.example")
        r.check("relay refused with 554 5.7.1",
                code == 554 and msg.startswith(b"5.7.1"), (code, msg))
    msgs = m.mailbox("alice@example.test", wait=10)
    r.check("one message delivered", len(msgs) == 1, len(msgs))
    if msgs:
        msg = msgs[0]
        r.check("Return-Path first",
                msg.startswith(b"Return-Path: <sender@remote.example>\r\n"),
                msg[:60])
        r.check("Received added", b"\r\nReceived: from client.example "
                b"([127.0.0.1])\r\n\tby mx.example.test (maild) with ESMTP"
                in msg, msg[:300])
        r.check("body intact, dots unstuffed", body_of(msg) == body,
                body_of(msg))
    r.check("spool empty after delivery", m.spool_files() == [],
            m.spool_files())
    r.check("SIGTERM exits 0", m.stop() == 0, m.log()[-500:])
sys.exit(r.finish())
