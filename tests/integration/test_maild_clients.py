#!/usr/bin/env python3
"""maild driven by real SMTP clients: Python's smtplib, curl, swaks and a
raw socket. Every check looks at the exact bytes that land in the Maildir.

Covers: trace headers (RFC 5321 4.4: Return-Path and Received added), dot
transparency (lines starting with one or two dots), 8BITMIME, a 100 KiB
body, SMTPUTF8 addresses, several recipients in one transaction (hard
links), aliases, a catch-all, postmaster, S7 (size limits through the
daemon), S9 (hostile HELO names give one well-formed Received field), S12
(unknown local user), relay refused, M1 (Maildir names and placement), M2
(1,000 fast deliveries give 1,000 distinct files), M3 (local parts that
look like paths), M4 (quota, with both configured answers).

Runs on 127.0.0.1 with ephemeral ports; every socket, process and wait is
bounded. Needs MAILD_BUILD_DIR (ctest sets it); curl and swaks checks are
skipped, with a SKIP line, only when the tool is not installed.
"""
import atexit
import os
import re
import smtplib
import socket
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(__file__))
from maildtest import Maild, Results, body_of, have  # noqa: E402

HOST = "127.0.0.1"
IO_TIMEOUT = 15
START = time.monotonic()
DEADLINE = START + 100  # the whole file; ctest allows more, we want far less

r = Results()

DOMAIN = "example.test"
USERS = {
    "alice@example.test": "pw-alice",
    "bob@example.test": "pw-bob",
    "carol@example.test": "pw-carol",
    "postmaster@example.test": "pw-pm",
    "jörg@example.test": "pw-jorg",
}
# Maildir unique name (see lib/store/maildir.c and the Maildir spec):
# <sec>.M<usec>P<pid>Q<counter>R<random>.<host>,S=<size>
UNIQUE_NAME = re.compile(
    r"^(\d+)\.M(\d{1,6})P(\d+)Q(\d+)R([0-9a-f]{8})\.([^/:,]+),S=(\d+)$")
DATE = (rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} "
        rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
        rb"\d{2}:\d{2}:\d{2} [+-]\d{4}")


def remaining():
    return max(1.0, DEADLINE - time.monotonic())


def scenario(fn):
    """Runs one group of checks; an exception counts as one failure."""
    name = fn.__name__
    if time.monotonic() > DEADLINE:
        r.check(name + ": ran before the file's deadline", False,
                "out of time")
        return fn
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - report and go on
        traceback.print_exc()
        r.check(name + " ran to the end", False, repr(e))
    return fn


# ---- helpers -------------------------------------------------------------

class Raw:
    """A hand-written SMTP client over a plain socket."""

    def __init__(self, port, timeout=IO_TIMEOUT):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self):
        """(code, b"text of all lines") of the next reply; (0, b"") on EOF."""
        code, text = 0, []
        while True:
            line = self.file.readline(4096)
            if not line:
                return 0, b"\n".join(text)
            code = int(line[:3]) if line[:3].isdigit() else -1
            text.append(line[4:].rstrip(b"\r\n"))
            if line[3:4] != b"-":
                return code, b"\n".join(text)

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, line):
        self.send(line + b"\r\n")
        return self.reply()

    def close(self):
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


def smtp(m):
    s = smtplib.SMTP(HOST, m.port, timeout=IO_TIMEOUT)
    s.ehlo("client.example")
    return s


def box_files(m, address, sub="new"):
    p = os.path.join(m.mailbox_dir(address), sub)
    try:
        return sorted(os.path.join(p, n) for n in os.listdir(p))
    except FileNotFoundError:
        return []


def wait_count(m, address, count, timeout=10):
    deadline = time.monotonic() + min(timeout, remaining())
    while time.monotonic() < deadline:
        if len(box_files(m, address)) >= count:
            break
        time.sleep(0.02)
    return box_files(m, address)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def wait_spool_empty(m, timeout=10):
    deadline = time.monotonic() + min(timeout, remaining())
    while m.spool_files() and time.monotonic() < deadline:
        time.sleep(0.02)
    return m.spool_files()


def trace_problems(msg, sender, helo=None, proto=None, rcpt=None,
                   hostname="mx.example.test", utf8=False):
    """What is wrong with the Return-Path and Received fields maild put at
    the top of `msg` (RFC 5321 4.4, RFC 5322 3.6.7); [] if nothing."""
    bad = []
    head, sep, _ = msg.partition(b"\r\n\r\n")
    if not sep:
        return ["no end of header section"]
    if b"\r" in head.replace(b"\r\n", b"") or \
            b"\n" in head.replace(b"\r\n", b""):
        bad.append("bare CR or LF in the header section")
    lines = head.split(b"\r\n")
    if lines[0] != b"Return-Path: <" + sender.encode() + b">":
        bad.append("first line %r" % lines[0])
    if len(lines) < 2 or not lines[1].startswith(b"Received: from "):
        bad.append("second line %r" % (lines[1:2],))
        return bad
    i = 2
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
    field = lines[1:i]
    if i >= len(lines) or not re.match(rb"^[!-9;-~]+:", lines[i]):
        bad.append("line after Received is not a header field: %r"
                   % (lines[i:i + 1],))
    for ln in field:
        if len(ln) > 998:
            bad.append("line over 998 octets")
        if ln.strip(b" \t") == b"":
            bad.append("whitespace-only folded line")
        allowed = rb"[\t -~\x80-\xff]" if utf8 else rb"[\t -~]"
        if not re.fullmatch(allowed + rb"*", ln):
            bad.append("control or 8-bit octets in %r" % ln)
    unfolded = b" ".join(ln.strip(b" \t") for ln in field)
    m = re.fullmatch(
        rb"Received: from (\S+) \(\[127\.0\.0\.1\]\) by (\S+) \(maild\) "
        rb"with (\S+) id ([A-Za-z0-9]+)(?: for <([^>]*)>)?; (" + DATE + rb")",
        unfolded)
    if not m:
        bad.append("Received does not parse: %r" % unfolded)
        return bad
    token = m.group(1)
    if re.search(rb'[()<>;\\"@,]', token) or not re.fullmatch(
            rb"[!-~]+", token):
        bad.append("HELO name not sanitised: %r" % token)
    if helo is not None and token != helo:
        bad.append("HELO name %r, want %r" % (token, helo))
    if m.group(2) != hostname.encode():
        bad.append("by %r, want %r" % (m.group(2), hostname))
    if proto is not None and m.group(3) != proto.encode():
        bad.append("with %r, want %r" % (m.group(3), proto))
    if rcpt is not None and m.group(5) != rcpt.encode():
        bad.append("for %r, want %r" % (m.group(5), rcpt))
    if any(ln.lower().startswith(b"x-injected") for ln in lines):
        bad.append("injected header")
    return bad


# ---- the main site -------------------------------------------------------

MAIN_EXTRA = "alias info@example.test alice@example.test bob@example.test\n"
try:
    main = Maild(users=USERS, extra=MAIN_EXTRA)
except Exception as e:  # noqa: BLE001 - no daemon, nothing else to test
    r.check("maild starts with the main site's configuration", False,
            repr(e))
    sys.exit(r.finish())
atexit.register(main.__exit__, None, None, None)  # also on an early exit


@scenario
def smtplib_basic_and_dots():
    body = (b"From: Sender <sender@remote.example>\r\n"
            b"To: alice@example.test\r\n"
            b"Subject: dots\r\n"
            b"\r\n"
            b"first line\r\n"
            b".one leading dot\r\n"
            b"..two leading dots\r\n"
            b".\r\n"
            b"..\r\n"
            b"...\r\n"
            b" .space then dot\r\n"
            b"last line\r\n")
    with smtp(main) as s:
        refused = s.sendmail("sender@remote.example", ["alice@example.test"],
                             body)
    r.check("smtplib: accepted", refused == {}, refused)
    files = wait_count(main, "alice@example.test", 1)
    r.check("smtplib: one file in alice's new/", len(files) == 1, files)
    if not files:
        return
    msg = read(files[0])
    problems = trace_problems(msg, "sender@remote.example",
                              helo=b"client.example", proto="ESMTP",
                              rcpt="alice@example.test")
    r.check("smtplib: Return-Path and one well-formed Received on top",
            not problems, (problems, msg[:400]))
    r.check("smtplib: Return-Path is the first line",
            msg.startswith(b"Return-Path: <sender@remote.example>\r\n"),
            msg[:80])
    r.check("smtplib: body intact, dot lines unstuffed",
            body_of(msg) == body, body_of(msg))
    for f in files:
        os.unlink(f)


@scenario
def eight_bit_body():
    text = ("Subject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?=\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=UTF-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n"
            "\r\n"
            "Grüße aus Köln, naïve café, 日本語, ελληνικά, emoji 😀\r\n"
            ".Ünicode after a dot\r\n"
            "\xa0non-breaking space line\r\n").encode("utf-8")
    with smtp(main) as s:
        code, _ = s.mail("sender@remote.example", ["BODY=8BITMIME"])
        r.check("8BITMIME: MAIL BODY=8BITMIME accepted", code == 250, code)
        code, _ = s.rcpt("bob@example.test")
        code, resp = s.data(text)
        r.check("8BITMIME: DATA accepted", code == 250, (code, resp))
    files = wait_count(main, "bob@example.test", 1)
    r.check("8BITMIME: delivered", len(files) == 1, files)
    if files:
        msg = read(files[0])
        r.check("8BITMIME: UTF-8 body octets intact", body_of(msg) == text,
                body_of(msg))
        problems = trace_problems(msg, "sender@remote.example",
                                  rcpt="bob@example.test")
        r.check("8BITMIME: trace fields well-formed", not problems, problems)
        for f in files:
            os.unlink(f)


@scenario
def large_body():
    lines = []
    i = 0
    size = 0
    while size < 100 * 1024:
        ln = ("%06d " % i + "abcdefghijklmnopqrstuvwxyz0123456789" * 2)
        if i % 7 == 0:
            ln = "." + ln  # dot-stuffed on the wire, unstuffed in the store
        lines.append(ln)
        size += len(ln) + 2
        i += 1
    body = ("Subject: big\r\n\r\n" + "\r\n".join(lines) + "\r\n").encode()
    with smtp(main) as s:
        refused = s.sendmail("sender@remote.example", ["carol@example.test"],
                             body)
    r.check("100 KiB: accepted", refused == {}, refused)
    files = wait_count(main, "carol@example.test", 1)
    r.check("100 KiB: delivered", len(files) == 1, files)
    if files:
        msg = read(files[0])
        r.check("100 KiB: body intact (%d octets)" % len(body),
                body_of(msg) == body, (len(body_of(msg)), len(body)))
        m = UNIQUE_NAME.match(os.path.basename(files[0]))
        r.check("100 KiB: ,S= equals the file size",
                m is not None and int(m.group(7)) == os.path.getsize(files[0])
                == len(msg), os.path.basename(files[0]))
        for f in files:
            os.unlink(f)


@scenario
def smtputf8_address():
    user = "jörg@example.test"
    sender = "rené@remote.example"
    body = "Subject: SMTPUTF8\r\n\r\nHallo Jörg\r\n".encode("utf-8")
    with smtp(main) as s:
        r.check("SMTPUTF8 advertised", s.has_extn("smtputf8"),
                s.esmtp_features)
        refused = s.sendmail(sender, [user], body,
                             mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        r.check("SMTPUTF8: accepted", refused == {}, refused)
    files = wait_count(main, user, 1)
    path = os.path.join(main.data, "mail", "example.test", "jörg", "new")
    r.check("SMTPUTF8: lands in mail/example.test/jörg/new (UTF-8 name)",
            len(files) == 1 and os.path.dirname(files[0]) == path
            and os.path.isdir(path.encode()), files)
    if files:
        msg = read(files[0])
        r.check("SMTPUTF8: body intact", body_of(msg) == body, msg)
        problems = trace_problems(msg, sender, proto="UTF8SMTP", rcpt=user,
                                  utf8=True)
        r.check("SMTPUTF8: Return-Path <rené@...>, Received with UTF8SMTP "
                "(RFC 6531 3.7.3)", not problems, (problems, msg[:300]))
        for f in files:
            os.unlink(f)
    # Without SMTPUTF8 a non-ASCII address is refused (RFC 6531 3.2).
    c = Raw(main.port)
    try:
        c.cmd(b"EHLO client.example")
        code, text = c.cmd(b"MAIL FROM:<a@remote.example>")
        code, text = c.cmd(("RCPT TO:<%s>" % user).encode())
        r.check("UTF-8 RCPT without SMTPUTF8 refused with 553 5.6.7",
                code == 553 and text.startswith(b"5.6.7"), (code, text))
        code, _ = c.cmd(b"QUIT")
    finally:
        c.close()
    r.check("nothing delivered without SMTPUTF8",
            box_files(main, user) == [], box_files(main, user))


def snapshot(m, addresses):
    return {a: set(box_files(m, a)) for a in addresses}


def new_since(m, snap, address, count=1, timeout=10):
    deadline = time.monotonic() + min(timeout, remaining())
    while True:
        got = sorted(set(box_files(m, address)) - snap.get(address, set()))
        if len(got) >= count or time.monotonic() >= deadline:
            return got
        time.sleep(0.02)


@scenario
def several_recipients_hard_links():
    rcpts = ["alice@example.test", "bob@example.test", "carol@example.test"]
    snap = snapshot(main, rcpts)
    body = b"Subject: to three\r\n\r\none message, three mailboxes\r\n"
    with smtp(main) as s:
        refused = s.sendmail("sender@remote.example", rcpts, body)
    r.check("3 recipients: all accepted", refused == {}, refused)
    files = {a: new_since(main, snap, a) for a in rcpts}
    r.check("3 recipients: each has exactly one new file",
            all(len(f) == 1 for f in files.values()), files)
    if not all(len(f) == 1 for f in files.values()):
        return
    paths = [files[a][0] for a in rcpts]
    contents = [read(p) for p in paths]
    r.check("3 recipients: same bytes in each mailbox",
            all(c == contents[0] for c in contents), [c[:200] for c in contents])
    r.check("3 recipients: body intact", body_of(contents[0]) == body,
            body_of(contents[0]))
    problems = trace_problems(contents[0], "sender@remote.example",
                              helo=b"client.example")
    r.check("3 recipients: trace fields well-formed", not problems, problems)
    st = [os.stat(p) for p in paths]
    r.check("3 recipients: hard links (one inode, link count >= 3)",
            len({(x.st_dev, x.st_ino) for x in st}) == 1
            and st[0].st_nlink >= 3,
            [(x.st_ino, x.st_nlink) for x in st])


@scenario
def alias_expansion():
    rcpts = ["alice@example.test", "bob@example.test"]
    snap = snapshot(main, rcpts)
    body = b"Subject: to info\r\n\r\nfor the alias\r\n"
    with smtp(main) as s:
        refused = s.sendmail("sender@remote.example", ["info@example.test"],
                             body)
    r.check("alias info@: accepted", refused == {}, refused)
    for a in rcpts:
        got = new_since(main, snap, a)
        r.check("alias info@ -> %s: delivered once" % a, len(got) == 1, got)
        if got:
            msg = read(got[0])
            r.check("alias info@ -> %s: body intact, Return-Path kept" % a,
                    body_of(msg) == body and msg.startswith(
                        b"Return-Path: <sender@remote.example>\r\n"),
                    msg[:300])
    r.check("alias info@: no mailbox named info",
            not os.path.exists(main.mailbox_dir("info@example.test")))
    # The alias and one of its targets in one transaction: the target gets
    # one copy (Postfix's duplicate filter does the same).
    snap = snapshot(main, rcpts)
    with smtp(main) as s:
        refused = s.sendmail("sender@remote.example",
                             ["info@example.test", "alice@example.test"],
                             b"Subject: dup\r\n\r\nonce\r\n")
    r.check("alias + target: accepted", refused == {}, refused)
    got_b = new_since(main, snap, "bob@example.test")
    time.sleep(0.2)
    got_a = new_since(main, snap, "alice@example.test", timeout=0)
    r.check("alias + target: alice gets one copy, bob one",
            len(got_a) == 1 and len(got_b) == 1, (got_a, got_b))
    # The same recipient twice in one transaction: one copy (Postfix's
    # cleanup drops duplicate recipients; local parts compare without case
    # here, as the mailbox directory does).
    for label, pair in (("exact", ["alice@example.test",
                                   "alice@example.test"]),
                        ("case differs", ["alice@example.test",
                                          "Alice@Example.Test"])):
        snap = snapshot(main, rcpts)
        with smtp(main) as s:
            refused = s.sendmail("sender@remote.example", pair,
                                 b"Subject: dup\r\n\r\ntwice\r\n")
        r.check("same recipient twice (%s): accepted" % label, refused == {},
                refused)
        new_since(main, snap, "alice@example.test")
        time.sleep(0.2)
        got_a = new_since(main, snap, "alice@example.test", timeout=0)
        r.check("same recipient twice (%s): one copy" % label,
                len(got_a) == 1, got_a)


@scenario
def postmaster_bare():
    snap = snapshot(main, ["postmaster@example.test"])
    for rcpt in (b"<postmaster>", b"<Postmaster>", b"<POSTMASTER>"):
        c = Raw(main.port)
        try:
            c.cmd(b"EHLO client.example")
            c.cmd(b"MAIL FROM:<>")
            code, text = c.cmd(b"RCPT TO:" + rcpt)
            r.check("RCPT TO:%s accepted (RFC 5321 4.5.1)" % rcpt.decode(),
                    code == 250, (code, text))
            code, _ = c.cmd(b"DATA")
            if code == 354:
                c.send(b"Subject: pm\r\n\r\nto " + rcpt + b"\r\n.\r\n")
                code, text = c.reply()
            r.check("to %s: message accepted" % rcpt.decode(), code == 250,
                    (code, text))
            c.cmd(b"QUIT")
        finally:
            c.close()
    got = new_since(main, snap, "postmaster@example.test", count=3)
    r.check("bare postmaster: 3 messages in postmaster@example.test",
            len(got) == 3, got)
    if got:
        msg = read(got[0])
        r.check("bare postmaster: null sender kept as Return-Path: <>",
                msg.startswith(b"Return-Path: <>\r\n"), msg[:100])


def mailbox_names(m):
    p = os.path.join(m.data, "mail", DOMAIN)
    try:
        return sorted(os.listdir(p))
    except FileNotFoundError:
        return []


@scenario
def unknown_user_s12_and_relay():
    boxes = mailbox_names(main)
    snap = snapshot(main, ["alice@example.test"])
    c = Raw(main.port)
    try:
        c.cmd(b"EHLO client.example")
        c.cmd(b"MAIL FROM:<sender@remote.example>")
        code, text = c.cmd(b"RCPT TO:<nobody@example.test>")
        r.check("S12: unknown local user gets 550 5.1.1 at RCPT",
                code == 550 and text.startswith(b"5.1.1"), (code, text))
        code, text = c.cmd(b"RCPT TO:<someone@elsewhere.example>")
        r.check("relay refused with 554 5.7.1",
                code == 554 and text.startswith(b"5.7.1"), (code, text))
        code, text = c.cmd(b"DATA")
        r.check("S12: DATA without valid recipients refused (503/554)",
                code in (503, 554), (code, text))
        if code == 354:
            c.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
            c.reply()
        code, _ = c.cmd(b"RSET")
        # A mixed transaction: the known one gets it, nothing else.
        c.cmd(b"MAIL FROM:<sender@remote.example>")
        c.cmd(b"RCPT TO:<nobody@example.test>")
        c.cmd(b"RCPT TO:<someone@elsewhere.example>")
        code, _ = c.cmd(b"RCPT TO:<alice@example.test>")
        code, _ = c.cmd(b"DATA")
        if code == 354:
            c.send(b"Subject: mixed\r\n\r\nmixed\r\n.\r\n")
            code, text = c.reply()
        r.check("mixed transaction: accepted for the known user",
                code == 250, (code, text))
        c.cmd(b"QUIT")
    finally:
        c.close()
    got = new_since(main, snap, "alice@example.test")
    r.check("mixed transaction: alice has it", len(got) == 1, got)
    r.check("S12: nothing queued", wait_spool_empty(main) == [],
            main.spool_files())
    r.check("S12: no mailbox created for the unknown user",
            mailbox_names(main) == boxes and not os.path.exists(
                main.mailbox_dir("nobody@example.test")),
            mailbox_names(main))
    r.check("relay: no mail directory for elsewhere.example",
            not os.path.exists(os.path.join(main.data, "mail",
                                            "elsewhere.example")))


@scenario
def curl_client():
    if not have("curl"):
        print("SKIP curl: not installed")
        return
    snap = snapshot(main, ["alice@example.test"])
    body = (b"From: curl user <s@remote.example>\r\n"
            b"Subject: via curl\r\n"
            b"\r\n"
            b"line\r\n"
            b".one dot\r\n"
            b"..two dots\r\n"
            b".\r\n"
            b"end\r\n")
    path = os.path.join(main.dir, "curl.eml")
    with open(path, "wb") as f:
        f.write(body)
    p = subprocess.run(
        ["curl", "-sS", "--max-time", "20",
         "smtp://%s:%d/curl.example" % (HOST, main.port),
         "--mail-from", "s@remote.example",
         "--mail-rcpt", "alice@example.test",
         "--upload-file", path],
        capture_output=True, timeout=30)
    r.check("curl: exit 0", p.returncode == 0, p.stderr)
    got = new_since(main, snap, "alice@example.test")
    r.check("curl: delivered", len(got) == 1, got)
    if got:
        msg = read(got[0])
        r.check("curl: body intact (dots)", body_of(msg) == body,
                body_of(msg))
        problems = trace_problems(msg, "s@remote.example",
                                  helo=b"curl.example", proto="ESMTP",
                                  rcpt="alice@example.test")
        r.check("curl: trace fields", not problems, problems)


@scenario
def swaks_client():
    if not have("swaks"):
        print("SKIP swaks: not installed")
        return
    snap = snapshot(main, ["bob@example.test"])
    # LF line ends in the file: swaks sends CRLF; it ends the data with
    # CRLF . CRLF after the last line.
    text = (b"From: swaks <s@remote.example>\n"
            b"Subject: via swaks\n"
            b"\n"
            b"line\n"
            b".one dot\n"
            b"..two dots\n"
            b"\xc3\xa4 8-bit\n"
            b"end")
    path = os.path.join(main.dir, "swaks.eml")
    with open(path, "wb") as f:
        f.write(text)
    p = subprocess.run(
        ["swaks", "--server", "%s:%d" % (HOST, main.port),
         "--helo", "swaks.example",
         "--from", "s@remote.example", "--to", "bob@example.test",
         "--data", "@" + path, "--timeout", "20"],
        capture_output=True, timeout=40)
    r.check("swaks: exit 0", p.returncode == 0,
            (p.stdout[-600:], p.stderr[-300:]))
    got = new_since(main, snap, "bob@example.test")
    r.check("swaks: delivered", len(got) == 1, got)
    if got:
        msg = read(got[0])
        want = text.replace(b"\n", b"\r\n") + b"\r\n"
        r.check("swaks: body intact (CRLF, dots, 8-bit)",
                body_of(msg) == want, (body_of(msg), want))
        problems = trace_problems(msg, "s@remote.example",
                                  helo=b"swaks.example",
                                  rcpt="bob@example.test")
        r.check("swaks: trace fields", not problems, problems)


@scenario
def hostile_helo_s9():
    names = [
        (b"EHLO", b"evil\x01name(x)"),
        (b"EHLO", b"a b c"),
        (b"HELO", b"x\ty"),
        (b"EHLO", b"\xc3\xa9t\xc3\xa9.example"),
        (b"EHLO", b"a" * 300),
        (b"EHLO", b"name;X-Injected: yes"),
        (b"EHLO", b"(comment) <x@y> \"q\""),
        (b"EHLO", b"esc\x1b[31mred\x7f\x08"),
        (b"EHLO", b"[127.0.0.1]"),
        (b"EHLO", b"x\x0bvt\x0cff"),
    ]
    snap = snapshot(main, ["carol@example.test"])
    sent = 0
    for verb, name in names:
        c = Raw(main.port)
        try:
            code, text = c.cmd(verb + b" " + name)
            if code != 250:
                r.check("S9: %r refused cleanly (%d)" % (name[:30], code),
                        500 <= code < 600, (code, text))
                continue
            c.cmd(b"MAIL FROM:<sender@remote.example>")
            c.cmd(b"RCPT TO:<carol@example.test>")
            code, _ = c.cmd(b"DATA")
            if code == 354:
                c.send(b"Subject: helo " + str(sent).encode() +
                       b"\r\n\r\nbody\r\n.\r\n")
                code, text = c.reply()
            r.check("S9: message after %s %r accepted"
                    % (verb.decode(), name[:30]), code == 250, (code, text))
            if code == 250:
                sent += 1
            c.cmd(b"QUIT")
        finally:
            c.close()
    got = new_since(main, snap, "carol@example.test", count=sent)
    r.check("S9: %d messages stored" % sent, len(got) == sent, got)
    for p in got:
        msg = read(p)
        proto = "SMTP" if b"\r\n\tby mx.example.test (maild) with SMTP " \
            in msg else "ESMTP"
        problems = trace_problems(msg, "sender@remote.example", proto=proto,
                                  rcpt="carol@example.test")
        r.check("S9: one well-formed Received (%s)"
                % msg.split(b"\r\n")[1][:60], not problems,
                (problems, msg[:400]))
        r.check("S9: body and Subject intact",
                re.match(rb"Subject: helo \d+\r\n\r\nbody\r\n$",
                         body_of(msg)) is not None, body_of(msg))


@scenario
def maildir_names_m1():
    addr = "carol@example.test"
    snap = snapshot(main, [addr])
    before = time.time()
    with smtp(main) as s:
        s.sendmail("sender@remote.example", [addr],
                   b"Subject: m1\r\n\r\nname check\r\n")
    got = new_since(main, snap, addr)
    r.check("M1: one new file", len(got) == 1, got)
    if not got:
        return
    name = os.path.basename(got[0])
    m = UNIQUE_NAME.match(name)
    r.check("M1: name is <sec>.M<usec>P<pid>Q<n>R<rand>.<host>,S=<size>",
            m is not None, name)
    if m:
        size = os.path.getsize(got[0])
        r.check("M1: ,S=%s equals the file size %d" % (m.group(7), size),
                int(m.group(7)) == size, name)
        r.check("M1: time part is now", before - 5 <= int(m.group(1))
                <= time.time() + 5, name)
        r.check("M1: pid part is maild's", int(m.group(3)) == main.proc.pid,
                (name, main.proc.pid))
        r.check("M1: host part is the host name",
                m.group(6) == "mx.example.test", name)
    box = main.mailbox_dir(addr)
    r.check("M1: tmp/ and cur/ empty",
            os.listdir(os.path.join(box, "tmp")) == []
            and os.listdir(os.path.join(box, "cur")) == [],
            (os.listdir(os.path.join(box, "tmp")),
             os.listdir(os.path.join(box, "cur"))))
    r.check("M1: mode 0600", os.stat(got[0]).st_mode & 0o777 == 0o600,
            oct(os.stat(got[0]).st_mode))
    r.check("M1: spool empty after delivery", wait_spool_empty(main) == [],
            main.spool_files())


def walk(top):
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            out.append(os.path.relpath(os.path.join(dirpath, n), top))
    return sorted(out)


def layout_problems(m, allowed_boxes):
    """Everything under the test's directory that is not where maild's files
    belong."""
    bad = []
    for rel in walk(m.dir):
        parts = rel.split(os.sep)
        if parts[0] != "data":
            if len(parts) != 1:
                bad.append(rel)
            continue
        if len(parts) == 1 or parts[1] in ("users", "maild.pid", "control"):
            continue
        if parts[1] == "tls":  # the generated certificate and key
            if len(parts) > 2 and parts[2] not in ("cert.pem", "key.pem"):
                bad.append(rel)
            continue
        if parts[1] == "spool":
            if len(parts) > 2 and parts[2] not in ("tmp", "queue",
                                                   "corrupt", "hold"):
                bad.append(rel)
            continue
        if parts[1] != "mail":
            bad.append(rel)
            continue
        if len(parts) >= 3 and parts[2] != DOMAIN:
            bad.append(rel)
        elif len(parts) >= 4 and parts[3] not in allowed_boxes:
            bad.append(rel)
        elif len(parts) >= 5 and parts[4] not in ("tmp", "new", "cur"):
            bad.append(rel)
        elif len(parts) >= 6 and (len(parts) > 6 or
                                  not UNIQUE_NAME.match(parts[5])):
            bad.append(rel)
    return bad


M3_LOCALS = [b"../x", b'"a/b"', b".x", b"a/b", b"../../../../x",
             b"x/../../y", b'"../z"', b'"."', b'".."', b"..", b"a\x01b",
             b"a\x7fb", b'"a\\/b"', b"a\x00b", b"%2e%2e%2fx"]


def m3_send(m, label, accept_ok):
    """Sends one message per hostile local part; returns how many got 250."""
    accepted = 0
    c = Raw(m.port)
    try:
        c.cmd(b"EHLO client.example")
        for local in M3_LOCALS:
            code, _ = c.cmd(b"MAIL FROM:<sender@remote.example>")
            if code != 250:
                # an earlier line (NUL) may have cost the session
                c.close()
                c = Raw(m.port)
                c.cmd(b"EHLO client.example")
                c.cmd(b"MAIL FROM:<sender@remote.example>")
            code, text = c.cmd(b"RCPT TO:<" + local + b"@example.test>")
            if accept_ok:
                ok = code == 250 or 500 <= code < 600
            else:
                ok = 500 <= code < 600
            r.check("M3 %s: RCPT <%r@example.test> -> %d" %
                    (label, local, code), ok, text)
            if code == 250:
                code, _ = c.cmd(b"DATA")
                if code == 354:
                    c.send(b"Subject: m3\r\n\r\n" + local.replace(
                        b"\x00", b"NUL") + b"\r\n.\r\n")
                    code, _ = c.reply()
                if code == 250:
                    accepted += 1
            else:
                c.cmd(b"RSET")
        c.cmd(b"QUIT")
    finally:
        c.close()
    return accepted


@scenario
def path_local_parts_m3():
    allowed = {a.split("@")[0] for a in USERS}
    m3_send(main, "(no catch-all)", accept_ok=False)
    r.check("M3: spool empty", wait_spool_empty(main) == [],
            main.spool_files())
    bad = layout_problems(main, allowed)
    r.check("M3: nothing created outside the known mailboxes", not bad, bad)


@scenario
def burst_m2():
    addr = "alice@example.test"
    snap = snapshot(main, [addr])
    n_conn, per_conn = 4, 250
    errors = []

    def client(k):
        try:
            with smtplib.SMTP(HOST, main.port, timeout=IO_TIMEOUT) as s:
                s.ehlo("burst%d.example" % k)
                for i in range(per_conn):
                    seq = k * per_conn + i
                    s.sendmail("sender@remote.example", [addr],
                               b"Subject: burst\r\nX-Seq: %d\r\n\r\n%d\r\n"
                               % (seq, seq))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,), daemon=True)
               for k in range(n_conn)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=min(60, remaining()))
    elapsed = time.monotonic() - t0
    total = n_conn * per_conn
    print("     M2: %d messages over %d connections in %.2fs" %
          (total, n_conn, elapsed))
    r.check("M2: all clients finished without error",
            not errors and not any(t.is_alive() for t in threads), errors[:3])
    got = new_since(main, snap, addr, count=total)
    names = [os.path.basename(p) for p in got]
    r.check("M2: %d distinct files" % total,
            len(got) == total and len(set(names)) == total, len(got))
    seqs = set()
    inodes = set()
    for p in got:
        m = re.search(rb"\r\nX-Seq: (\d+)\r\n", read(p))
        if m:
            seqs.add(int(m.group(1)))
        inodes.add(os.stat(p).st_ino)
    r.check("M2: every message once, each its own inode",
            seqs == set(range(total)) and len(inodes) == len(got),
            (len(seqs), len(inodes)))
    r.check("M2: names all valid", all(UNIQUE_NAME.match(n) for n in names),
            [n for n in names if not UNIQUE_NAME.match(n)][:3])
    r.check("M2: spool empty afterwards", wait_spool_empty(main) == [],
            main.spool_files()[:5])
    r.check("M2: finished in bounded time (< 60 s)", elapsed < 60, elapsed)


@scenario
def main_shutdown():
    r.check("main site: maild still running",
            main.proc is not None and main.proc.poll() is None,
            main.log()[-500:])
    r.check("main site: no sanitizer report in the log",
            "Sanitizer" not in main.log() and "runtime error" not in
            main.log(), main.log()[-2000:])
    r.check("main site: SIGTERM exits 0", main.stop() == 0,
            main.log()[-800:])


main.__exit__(None, None, None)


# ---- a catch-all ---------------------------------------------------------

@scenario
def catch_all():
    users = {"alice@example.test": "pw", "bob@example.test": "pw"}
    with Maild(users=users, extra="alias @example.test alice@example.test\n"
               ) as m:
        snap = snapshot(m, ["alice@example.test", "bob@example.test"])
        with smtp(m) as s:
            refused = s.sendmail("sender@remote.example",
                                 ["whoever@example.test"],
                                 b"Subject: catch-all\r\n\r\nany name\r\n")
            r.check("catch-all: unknown name accepted", refused == {},
                    refused)
            s.sendmail("sender@remote.example", ["bob@example.test"],
                       b"Subject: to bob\r\n\r\nbob is a user\r\n")
            code, text = s.mail("sender@remote.example")
            code, text = s.rcpt("x@elsewhere.example")
            r.check("catch-all: other domains still refused (554 5.7.1)",
                    code == 554 and text.startswith(b"5.7.1"), (code, text))
            s.rset()
        got = new_since(m, snap, "alice@example.test")
        r.check("catch-all: whoever@ lands in alice's mailbox",
                len(got) == 1 and b"any name" in read(got[0]), got)
        got = new_since(m, snap, "bob@example.test")
        r.check("catch-all: a real user still gets his own mail",
                len(got) == 1 and b"bob is a user" in read(got[0]), got)
        r.check("catch-all: no mailbox named whoever",
                not os.path.exists(m.mailbox_dir("whoever@example.test")))
        # M3 again: with a catch-all, path-like names may be accepted, but
        # only ever into alice's mailbox.
        n = m3_send(m, "(catch-all)", accept_ok=True)
        got = new_since(m, snap, "alice@example.test", count=1 + n)
        r.check("M3 catch-all: %d accepted, all in alice's mailbox" % n,
                len(got) == 1 + n, (n, got))
        r.check("M3 catch-all: spool empty", wait_spool_empty(m) == [],
                m.spool_files())
        bad = layout_problems(m, {"alice", "bob"})
        r.check("M3 catch-all: nothing created outside the known mailboxes",
                not bad, bad)
        r.check("catch-all: SIGTERM exits 0", m.stop() == 0, m.log()[-800:])


# ---- size limits through the daemon (S7) ---------------------------------

@scenario
def size_limits_s7():
    with Maild(users={"alice@example.test": "pw"},
               extra="max-message-size 10K\n") as m:
        addr = "alice@example.test"
        snap = snapshot(m, [addr])
        with smtp(m) as s:
            r.check("S7: EHLO advertises SIZE 10240",
                    s.esmtp_features.get("size") == "10240",
                    s.esmtp_features)
            code, text = s.mail("sender@remote.example", ["SIZE=10241"])
            r.check("S7: SIZE over the limit gives 552 at MAIL",
                    code == 552 and text.startswith(b"5.3.4"), (code, text))
            code, text = s.rcpt(addr)
            r.check("S7: no transaction after that 552", code == 503,
                    (code, text))
            s.rset()
            code, text = s.mail("sender@remote.example", ["SIZE=10240"])
            r.check("S7: SIZE at the limit accepted", code == 250,
                    (code, text))
            s.rset()
            big = b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 300
            code, text = s.mail("sender@remote.example")
            code, text = s.rcpt(addr)
            code, text = s.data(big)
            r.check("S7: oversized body refused with 552 5.3.4 after the "
                    "body", code == 552 and text.startswith(b"5.3.4"),
                    (code, text))
            code, text = s.noop()
            r.check("S7: session usable afterwards (NOOP 250)", code == 250,
                    (code, text))
            refused = s.sendmail("sender@remote.example", [addr],
                                 b"Subject: small\r\n\r\nfits\r\n")
            r.check("S7: a small message on the same session is accepted",
                    refused == {}, refused)
        got = new_since(m, snap, addr)
        time.sleep(0.2)
        got = new_since(m, snap, addr, timeout=0)
        r.check("S7: only the small message delivered",
                len(got) == 1 and b"fits" in read(got[0]), got)
        r.check("S7: spool empty", wait_spool_empty(m) == [],
                m.spool_files())
        box = m.mailbox_dir(addr)
        r.check("S7: nothing in the mailbox tmp/",
                os.listdir(os.path.join(box, "tmp")) == [],
                os.listdir(os.path.join(box, "tmp")))
        r.check("S7: SIGTERM exits 0", m.stop() == 0, m.log()[-800:])


# ---- quota (M4) ----------------------------------------------------------

def quota_run(answer):
    extra = "quota 2K\n" + ("quota-answer %s\n" % answer if answer else "")
    want = (552, b"5.2.2") if answer == "552" else (452, b"4.2.2")
    label = "M4 (%s)" % (answer or "default")
    with Maild(users={"alice@example.test": "pw", "bob@example.test": "pw"},
               extra=extra) as m:
        addr = "alice@example.test"
        snap = snapshot(m, [addr, "bob@example.test"])
        with smtp(m) as s:
            refused = s.sendmail("sender@remote.example", [addr],
                                 b"Subject: fits\r\n\r\n" + b"a" * 500 +
                                 b"\r\n")
            r.check(label + ": a message that fits is accepted",
                    refused == {}, refused)
            first = new_since(m, snap, addr)
            r.check(label + ": and delivered", len(first) == 1, first)
            s.mail("sender@remote.example")
            s.rcpt(addr)
            code, text = s.data(b"Subject: too much\r\n\r\n" +
                                (b"b" * 98 + b"\r\n") * 16)
            r.check(label + ": over quota gives %d %s" %
                    (want[0], want[1].decode()),
                    code == want[0] and text.startswith(want[1]),
                    (code, text))
            code, _ = s.noop()
            r.check(label + ": session usable afterwards", code == 250, code)
            refused = s.sendmail("sender@remote.example",
                                 ["bob@example.test"],
                                 b"Subject: other box\r\n\r\nok\r\n")
            r.check(label + ": another mailbox still receives",
                    refused == {}, refused)
        time.sleep(0.2)
        got = new_since(m, snap, addr, timeout=0)
        r.check(label + ": nothing partial in the mailbox (new/ holds only "
                "the first)", got == first, got)
        box = m.mailbox_dir(addr)
        left = os.listdir(os.path.join(box, "tmp")) + \
            os.listdir(os.path.join(box, "cur"))
        r.check(label + ": tmp/ and cur/ empty", left == [], left)
        r.check(label + ": spool empty", wait_spool_empty(m) == [],
                m.spool_files())
        r.check(label + ": bob got his", len(new_since(
            m, snap, "bob@example.test")) == 1)
        r.check(label + ": SIGTERM exits 0", m.stop() == 0, m.log()[-800:])


@scenario
def quota_m4_default():
    quota_run(None)


@scenario
def quota_m4_552():
    quota_run("552")


print("     %.1fs in all" % (time.monotonic() - START))
sys.exit(r.finish())
