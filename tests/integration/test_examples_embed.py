#!/usr/bin/env python3
"""The embedding examples, run as their users run them.

examples/embed_server DIR 0 (the library in a libuv program, Maildir under
DIR/mail) and examples/mbox_store DIR 0 (a custom store backend writing
mboxrd files DIR/<domain>/<local>.mbox): each is started on 127.0.0.1 with
an ephemeral port read back from its "listening on" line, gets two messages
through smtplib (one with a body line "From the start", which mbox must
quote as ">From the start", mboxrd style, RFC 4155), the stored bytes are
checked, then SIGINT must stop it with exit status 0 within a bounded time.
Every socket, process and wait is bounded.
"""
import atexit
import os
import queue
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(__file__))
from maildtest import BUILD, Results, body_of  # noqa: E402

HOST = "127.0.0.1"
IO_TIMEOUT = 15
START = time.monotonic()
EXAMPLES = os.path.abspath(os.path.join(BUILD, "examples"))

r = Results()
TMP = tempfile.mkdtemp(prefix="maild-examples-")
atexit.register(shutil.rmtree, TMP, True)

SENDER = "sender@remote.example"
MSG1 = (b"From: Sender <sender@remote.example>\r\n"
        b"Subject: first\r\n"
        b"\r\n"
        b"From the start\r\n"
        b">From already quoted\r\n"
        b">>From twice\r\n"
        b"Fromage is not a From_ line\r\n"
        b" From with a space before\r\n"
        b".one dot\r\n"
        b"..two dots\r\n"
        b"last\r\n")
MSG2 = (b"Subject: second\r\n"
        b"\r\n"
        b"second message\r\n"
        b"From here too\r\n")


class Example:
    def __init__(self, name, datadir):
        self.path = os.path.join(EXAMPLES, name)
        self.err_path = os.path.join(TMP, name + ".stderr")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([self.path, datadir, "0"],
                                     stdout=subprocess.PIPE, stderr=self.err,
                                     cwd=TMP)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            first = self.lines.get(timeout=20)
        except queue.Empty:
            first = None
        m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)", first or "")
        self.port = int(m.group(1)) if m and m.group(1) != "0" else None
        self.first = first

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace").rstrip("\n"))

    def log(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def interrupt(self, timeout=15):
        """SIGINT; returns (exit status or None, seconds taken)."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
        took = time.monotonic() - t0
        return rc, took

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=15)
        self.err.close()


def send_two(port, rcpt):
    with smtplib.SMTP(HOST, port, timeout=IO_TIMEOUT) as s:
        s.ehlo("client.example")
        a = s.sendmail(SENDER, [rcpt], MSG1)
        b = s.sendmail(SENDER, [rcpt], MSG2)
    return a, b


def read_reply(sock):
    """One SMTP reply (all lines) from a raw socket; b"" on EOF/timeout."""
    buf = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return buf
            buf += chunk
            lines = buf.split(b"\r\n")
            if len(lines) > 1 and any(len(ln) >= 4 and ln[3:4] == b" "
                                      for ln in lines[:-1]):
                return buf
    except OSError:
        return buf


def mid_data(port, rcpt, first_line):
    """A raw session left in the middle of DATA after `first_line`."""
    s = socket.create_connection((HOST, port), timeout=IO_TIMEOUT)
    read_reply(s)
    for cmd in (b"EHLO client.example", b"MAIL FROM:<" + SENDER.encode() +
                b">", b"RCPT TO:<" + rcpt.encode() + b">", b"DATA"):
        s.sendall(cmd + b"\r\n")
        read_reply(s)
    s.sendall(first_line)
    return s


def wait_for(pred, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    return pred()


def scenario(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        r.check(fn.__name__ + " ran to the end", False, repr(e))
    return fn


@scenario
def embed_server():
    data = os.path.join(TMP, "embed")
    ex = Example("embed_server", data)
    try:
        r.check("embed_server: prints 'listening on 127.0.0.1:PORT'",
                ex.port is not None, (ex.first, ex.log()[-300:]))
        if ex.port is None:
            return
        a, b = send_two(ex.port, "alice@example.org")
        r.check("embed_server: both messages accepted", a == {} and b == {},
                (a, b))
        new = os.path.join(data, "mail", "example.org", "alice", "new")

        def files():
            try:
                names = sorted(os.listdir(new))
            except FileNotFoundError:
                return []
            return names if len(names) >= 2 else []
        names = wait_for(files)
        r.check("embed_server: two files in DIR/mail/example.org/alice/new",
                len(names) == 2, names)
        msgs = []
        for n in names:
            with open(os.path.join(new, n), "rb") as f:
                msgs.append(f.read())
        bodies = sorted(body_of(m) for m in msgs)
        r.check("embed_server: bodies intact (From lines untouched in "
                "Maildir, dots unstuffed)", bodies == sorted([MSG1, MSG2]),
                bodies)
        r.check("embed_server: Return-Path and Received added",
                all(m.startswith(b"Return-Path: <" + SENDER.encode() +
                                 b">\r\nReceived: from client.example ")
                    for m in msgs), [m[:120] for m in msgs])
        r.check("embed_server: ,S= equals the file size",
                all(re.search(r",S=(\d+)$", n) and
                    int(re.search(r",S=(\d+)$", n).group(1))
                    == os.path.getsize(os.path.join(new, n)) for n in names),
                names)
        box = os.path.dirname(new)
        r.check("embed_server: tmp/ empty",
                os.listdir(os.path.join(box, "tmp")) == [])
        # Ctrl-C with two transactions in progress: one that finishes its
        # message after the signal (it is accepted and delivered: the
        # shutdown is graceful), one that stalls (it gets 421 once the
        # shutdown grace period, 30 s by default, is over; its partial
        # message is never delivered). Exit status 0 within a bound.
        done = mid_data(ex.port, "carol@example.org", b"Subject: finishes\r\n")
        stall = mid_data(ex.port, "dave@example.org", b"Subject: stalls\r\n")
        t0 = time.monotonic()
        ex.proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        done.sendall(b"\r\nsent after Ctrl-C\r\n.\r\n")
        reply = read_reply(done)
        r.check("embed_server: a message finished after SIGINT gets 250",
                reply.startswith(b"250 "), reply)
        cnew = os.path.join(data, "mail", "example.org", "carol", "new")
        r.check("embed_server: and is delivered",
                len(wait_for(lambda: os.path.isdir(cnew) and os.listdir(cnew)
                             )) == 1)
        stall.settimeout(50)
        reply = read_reply(stall)
        waited = time.monotonic() - t0
        r.check("embed_server: the stalled session gets 421 (after %.1fs)"
                % waited, reply.startswith(b"421 "), reply)
        try:  # one SIGINT only: the example stops watching after it
            rc = ex.proc.wait(timeout=max(1, 50 - waited))
        except subprocess.TimeoutExpired:
            rc = None
        took = time.monotonic() - t0
        r.check("embed_server: SIGINT exits 0 within 45 s with a stalled "
                "client (in %.1fs)" % took, rc == 0 and took < 45,
                (rc, ex.log()[-500:]))
        r.check("embed_server: the stalled message is not delivered",
                not os.path.exists(os.path.join(data, "mail", "example.org",
                                                "dave", "new"))
                or os.listdir(os.path.join(data, "mail", "example.org",
                                           "dave", "new")) == [])
        for c in (done, stall):
            c.close()
        r.check("embed_server: no sanitizer report",
                "Sanitizer" not in ex.log() and "runtime error"
                not in ex.log(), ex.log()[-1500:])
    finally:
        ex.kill()


FROM_LINE = re.compile(
    rb"^From \S+ (Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
    rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d "
    rb"\d\d:\d\d:\d\d \d{4}$")


def mboxrd(msg):
    """What an mboxrd entry body holds for `msg`: LF line ends, '>' added
    before any line matching ^>*From ."""
    out = []
    for line in msg.split(b"\r\n")[:-1]:
        if re.match(rb"^>*From ", line):
            line = b">" + line
        out.append(line + b"\n")
    return b"".join(out)


@scenario
def mbox_store():
    data = os.path.join(TMP, "mbox")
    ex = Example("mbox_store", data)
    try:
        r.check("mbox_store: prints 'listening on 127.0.0.1:PORT'",
                ex.port is not None, (ex.first, ex.log()[-300:]))
        if ex.port is None:
            return
        a, b = send_two(ex.port, "bob@example.org")
        r.check("mbox_store: both messages accepted", a == {} and b == {},
                (a, b))
        path = os.path.join(data, "example.org", "bob.mbox")

        def content():
            try:
                with open(path, "rb") as f:
                    c = f.read()
            except FileNotFoundError:
                return b""
            return c if c.count(b"\nSubject: second\n") else b""
        mbox = wait_for(content)
        r.check("mbox_store: DIR/example.org/bob.mbox written", mbox != b"",
                os.listdir(data) if os.path.isdir(data) else None)
        if not mbox:
            return
        r.check("mbox_store: LF line ends only", b"\r" not in mbox)
        lines = mbox.split(b"\n")
        starts = [i for i, ln in enumerate(lines) if ln.startswith(b"From ")]
        r.check("mbox_store: exactly two From_ lines (body From lines "
                "quoted)", len(starts) == 2, [lines[i] for i in starts])
        r.check("mbox_store: From_ lines in RFC 4155 form",
                all(FROM_LINE.match(lines[i]) for i in starts),
                [lines[i] for i in starts])
        r.check("mbox_store: 'From the start' stored as '>From the start'",
                b"\n>From the start\n" in mbox
                and b"\nFrom the start\n" not in mbox, mbox)
        r.check("mbox_store: '>From' gets one more '>' (mboxrd)",
                b"\n>>From already quoted\n" in mbox
                and b"\n>>>From twice\n" in mbox, mbox)
        r.check("mbox_store: 'Fromage' and ' From' left alone",
                b"\nFromage is not a From_ line\n" in mbox
                and b"\n From with a space before\n" in mbox, mbox)
        if len(starts) == 2:
            e1 = b"\n".join(lines[starts[0] + 1:starts[1]]) + b"\n"
            e2 = b"\n".join(lines[starts[1] + 1:])
            # Each entry: the stored message (trace fields first), mboxrd
            # quoted, then one empty line before the next From_ line.
            for label, entry, msg in (("first", e1, MSG1),
                                      ("second", e2, MSG2)):
                want_tail = mboxrd(msg) + b"\n"
                r.check("mbox_store: %s entry ends with the quoted message "
                        "and an empty line" % label,
                        entry.endswith(want_tail), (entry, want_tail))
                r.check("mbox_store: %s entry starts with Return-Path"
                        % label, entry.startswith(
                            b"Return-Path: <" + SENDER.encode() + b">\n"),
                        entry[:100])
        rc, took = ex.interrupt()
        r.check("mbox_store: SIGINT exits 0 (in %.2fs)" % took, rc == 0,
                (rc, ex.log()[-500:]))
        r.check("mbox_store: no sanitizer report",
                "Sanitizer" not in ex.log() and "runtime error"
                not in ex.log(), ex.log()[-1500:])
        r.check("mbox_store: spool left empty",
                all(os.listdir(os.path.join(data, ".spool", d)) == []
                    for d in ("tmp", "queue")
                    if os.path.isdir(os.path.join(data, ".spool", d))),
                [(d, os.listdir(os.path.join(data, ".spool", d)))
                 for d in os.listdir(os.path.join(data, ".spool"))]
                if os.path.isdir(os.path.join(data, ".spool")) else None)
    finally:
        ex.kill()


shutil.rmtree(TMP, ignore_errors=True)
print("     %.1fs in all" % (time.monotonic() - START))
sys.exit(r.finish())
