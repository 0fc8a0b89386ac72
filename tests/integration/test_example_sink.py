#!/usr/bin/env python3
"""Drives examples/smtp_sink with real SMTP clients.

smtp_sink runs the SMTP server engine on a plain poll() loop and prints one
line per accepted message. This test starts it on 127.0.0.1 with an
ephemeral port and checks that what real clients send (Python's smtplib, a
hand-written pipelining client, swaks, curl) arrives with the exact envelope
and the exact body size, dot-unstuffed. The binary is found through
MAILD_BUILD_DIR (set by ctest). Every socket, process and wait is bounded.
"""

import os
import queue
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
IO_TIMEOUT = 15  # seconds, per socket operation and per line awaited
DEADLINE = time.monotonic() + 300  # the whole test, ctest allows 600
CRLF = b"\r\n"


class Sink:
    """One smtp_sink process and the lines it prints."""

    def __init__(self, binary, *args):
        self.proc = subprocess.Popen(
            [binary, "-l", HOST, "-p", "0", *args], stdout=subprocess.PIPE
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self.next_line()
        m = re.fullmatch(r"listening on (\S+):(\d+)", first or "")
        if not m or m.group(1) != HOST or m.group(2) == "0":
            self.stop()
            raise RuntimeError(f"unexpected first line {first!r}")
        self.port = int(m.group(2))

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)  # end of output

    def next_line(self):
        """The next printed line, or None if the sink exited or is silent."""
        timeout = max(0.1, min(IO_TIMEOUT, DEADLINE - time.monotonic()))
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def stray_lines(self):
        out = []
        while True:
            try:
                out.append(self.lines.get_nowait())
            except queue.Empty:
                return out

    def expect_message(self, sender, rcpts, size):
        want = "message from=<%s> to=%s size=%d" % (
            sender,
            ",".join("<%s>" % r for r in rcpts),
            size,
        )
        got = self.next_line()
        check(got == want, f"sink printed {got!r}, want {want!r}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=IO_TIMEOUT)


class Failure(Exception):
    pass


class Skip(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def smtplib_body(msg):
    """The octets smtplib sends after DATA, up to and excluding ".\r\n",
    after the server undoes the dot-stuffing: smtplib turns every line end
    of a str message into CRLF and appends CRLF if the message lacks it."""
    if isinstance(msg, str):
        msg = re.sub(r"\r\n|\n|\r", "\r\n", msg).encode("ascii")
    return msg if msg.endswith(CRLF) else msg + CRLF


def big_utf8_message():
    head = [
        b"From: Sender <sender@example.org>",
        b"To: <rcpt1@example.net>, <rcpt2@example.net>",
        b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=",
        b"MIME-Version: 1.0",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Transfer-Encoding: 8bit",
        b"",
    ]
    # Lines an SMTP client must dot-stuff, a lone "." that would end DATA
    # unstuffed, and 8-bit text.
    tricky = [b".", b"..", b".leading dot", b"...", b". .", b"\xe2\x80\x94."]
    text = "Grüße aus Köln, naïve café — ✓ 日本語 line %05d".encode()
    body, i = [], 0
    while sum(len(x) + 2 for x in body) < 100 * 1024:
        body.append(tricky[i % len(tricky)] if i % 9 == 0 else text % i)
        i += 1
    # No CRLF at the very end: smtplib must add it, and it counts.
    return CRLF.join(head + body) + b"\r\nlast line without CRLF"


def test_smtplib(sink):
    big = big_utf8_message()
    check(len(big) >= 100 * 1024, "message under 100 KiB")
    small = "Subject: bare LFs\n\n.one\nline two\r\n..two dots\n."
    rcpts = ["rcpt1@example.net", "rcpt2@example.net"]
    with smtplib.SMTP(HOST, sink.port, timeout=IO_TIMEOUT) as s:
        code, _ = s.ehlo("client.example.org")
        check(code == 250, f"EHLO answered {code}")
        check(s.has_extn("8bitmime"), "8BITMIME not offered")
        refused = s.sendmail(
            "sender@example.org", rcpts, big, mail_options=["BODY=8BITMIME"]
        )
        check(refused == {}, f"refused {refused}")
        sink.expect_message("sender@example.org", rcpts, len(smtplib_body(big)))
        # A second transaction on the same connection, as a str with bare
        # LFs that smtplib normalises.
        refused = s.sendmail("", ["postmaster@example.net"], small)
        check(refused == {}, f"refused {refused}")
        sink.expect_message("", ["postmaster@example.net"],
                            len(smtplib_body(small)))


def parse_replies(data):
    """Splits server output into [(code, [lines])]; a reply ends with a
    line whose fourth octet is a space (RFC 5321 4.2.1)."""
    replies, cur = [], []
    for line in data.split(CRLF)[:-1]:
        cur.append(line)
        check(re.match(rb"\d{3}[ -]", line + b" ") is not None,
              f"malformed reply line {line!r}")
        check(line[:3] == cur[0][:3], f"code changed within a reply: {cur}")
        if len(line) == 3 or line[3:4] == b" ":
            replies.append((int(line[:3]), cur))
            cur = []
    check(not cur and data.endswith(CRLF) or not data,
          f"unfinished reply in {data!r}")
    return replies


def read_until_close(sock):
    data = b""
    while time.monotonic() < DEADLINE:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise Failure("sink did not close the connection")


def read_greeting(sock):
    data = b""
    while not re.search(rb"(^|\r\n)\d{3}( [^\r\n]*)?\r\n$", data):
        chunk = sock.recv(4096)
        check(chunk, f"connection closed after {data!r}")
        data += chunk
    replies = parse_replies(data)
    check([c for c, _ in replies] == [220], f"greeting {data!r}")


PIPELINED_BODY = b"Subject: pipelined\r\n\r\n..dot line\r\nbody\r\n"


def pipelined_transaction():
    return (
        b"EHLO raw.example.org\r\n"
        b"MAIL FROM:<raw@example.org>\r\n"
        b"RCPT TO:<a@example.net>\r\n"
        b"RCPT TO:<b@example.net>\r\n"
        b"DATA\r\n" + PIPELINED_BODY + b".\r\nQUIT\r\n"
    )


def check_pipelined_replies(sink, data):
    replies = parse_replies(data)
    codes = [c for c, _ in replies]
    check(codes == [250, 250, 250, 250, 354, 250, 221],
          f"reply codes {codes}; server sent {data!r}")
    ehlo = replies[0][1]
    check(len(ehlo) > 1, f"EHLO reply is one line: {ehlo}")
    check(b"smtp-sink.localhost" in ehlo[0], f"EHLO greets as {ehlo[0]!r}")
    check(any(l[4:].upper() == b"PIPELINING" for l in ehlo),
          f"PIPELINING not in {ehlo}")
    sink.expect_message("raw@example.org", ["a@example.net", "b@example.net"],
                        len(PIPELINED_BODY.replace(b"\n..", b"\n.")))


def test_pipelined_one_send(sink):
    with socket.create_connection((HOST, sink.port), IO_TIMEOUT) as sock:
        read_greeting(sock)
        tx = pipelined_transaction()
        check(sock.send(tx) == len(tx), "short send")
        check_pipelined_replies(sink, read_until_close(sock))


def test_pipelined_byte_by_byte(sink):
    # Every command and the end-of-data mark split across reads.
    with socket.create_connection((HOST, sink.port), IO_TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        read_greeting(sock)
        for i, b in enumerate(pipelined_transaction()):
            sock.sendall(bytes([b]))
            if i % 16 == 0:
                time.sleep(0.001)
        check_pipelined_replies(sink, read_until_close(sock))


def test_bdat(sink):
    # CHUNKING (RFC 3030): chunks are counted octets, never dot-unstuffed,
    # so a "\r\n.\r\n" inside a chunk is body, not the end of the message.
    chunks = [b"Subject: bdat\r\n\r\n.\r\n..x\r\n", b"\xc3\xa9" * 3000,
              b"\r\n"]
    tx = b"EHLO bdat.example.org\r\nMAIL FROM:<bdat@example.org>\r\n" \
         b"RCPT TO:<r@example.net>\r\n"
    for i, c in enumerate(chunks):
        last = " LAST" if i == len(chunks) - 1 else ""
        tx += b"BDAT %d%s\r\n" % (len(c), last.encode()) + c
    tx += b"QUIT\r\n"
    with socket.create_connection((HOST, sink.port), IO_TIMEOUT) as sock:
        read_greeting(sock)
        sock.sendall(tx)
        data = read_until_close(sock)
    codes = [c for c, _ in parse_replies(data)]
    check(codes == [250, 250, 250, 250, 250, 250, 221],
          f"reply codes {codes}; server sent {data!r}")
    sink.expect_message("bdat@example.org", ["r@example.net"],
                        sum(len(c) for c in chunks))


def test_smtputf8(sink):
    sender = "jöran@exämple.org"
    rcpts = ["测试@例子.测试", "ñandú@example.net"]
    msg = ("From: %s\r\nTo: %s\r\nSubject: ünïcödé\r\n\r\nПривет\r\n"
           % (sender, rcpts[0])).encode()
    with smtplib.SMTP(HOST, sink.port, timeout=IO_TIMEOUT) as s:
        s.ehlo("client.example.org")
        check(s.has_extn("smtputf8"), "SMTPUTF8 not offered")
        refused = s.sendmail(sender, rcpts, msg,
                             mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        check(refused == {}, f"refused {refused}")
    sink.expect_message(sender, rcpts, len(msg))


# What the tools send: CRLF line ends and lines they must dot-stuff. curl
# sends the file as is and adds CRLF only when it is missing; swaks always
# sends CRLF before ".", so its file leaves the last CRLF out.
TOOL_MESSAGE = (b"From: tool@example.org\r\nSubject: from a tool\r\n\r\n"
                b"first line\r\n.a dot line\r\n.\r\nlast line\r\n")


def run_tool(argv):
    timeout = max(1, min(60, DEADLINE - time.monotonic()))
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    check(r.returncode == 0, f"{argv[0]} exited {r.returncode}:\n"
          + r.stdout.decode("utf-8", "replace"))


def test_swaks(sink, msgfile):
    if shutil.which("swaks") is None:
        raise Skip("swaks not on PATH")
    msgfile += ".swaks"
    with open(msgfile, "wb") as f:
        f.write(TOOL_MESSAGE[:-2])
    run_tool(["swaks", "--server", f"{HOST}:{sink.port}", "--timeout", "15",
              "--helo", "swaks.example.org", "--from", "swaks@example.org",
              "--to", "r1@example.net,r2@example.net", "--pipeline",
              "--data", "@" + msgfile])
    sink.expect_message("swaks@example.org",
                        ["r1@example.net", "r2@example.net"],
                        len(TOOL_MESSAGE))


def test_curl(sink, msgfile):
    if shutil.which("curl") is None:
        raise Skip("curl not on PATH")
    run_tool(["curl", "-sS", "--max-time", "15",
              "--url", f"smtp://{HOST}:{sink.port}",
              "--mail-from", "curl@example.org",
              "--mail-rcpt", "r1@example.net", "--mail-rcpt", "r2@example.net",
              "--upload-file", msgfile])
    sink.expect_message("curl@example.org",
                        ["r1@example.net", "r2@example.net"],
                        len(TOOL_MESSAGE))


def test_concurrent_clients(sink, n=40):
    # Many connections open at once, each in the middle of its transaction.
    errors, want = [], set()
    barrier = threading.Barrier(n, timeout=IO_TIMEOUT)

    def client(i):
        try:
            with smtplib.SMTP(HOST, sink.port, timeout=IO_TIMEOUT) as s:
                s.ehlo("c%d.example.org" % i)
                s.mail("c%d@example.org" % i)
                s.rcpt("r%d@example.net" % i)
                barrier.wait()
                s.data(b"x" * i)
        except Exception as e:
            errors.append(f"client {i}: {type(e).__name__}: {e}")

    for i in range(n):
        want.add("message from=<c%d@example.org> to=<r%d@example.net> "
                 "size=%d" % (i, i, i + 2))
    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.1, DEADLINE - time.monotonic()))
    check(not errors, "; ".join(errors[:3]))
    got = set(sink.next_line() for _ in range(n))
    check(got == want, f"missing {sorted(want - got)[:3]}, "
          f"unexpected {sorted(map(str, got - want))[:3]}")


def test_backpressure(sink, count=20000):
    # The client writes far more than the socket buffers hold before it
    # reads a single reply: the sink must stop reading, not drop replies or
    # buffer without bound, and resume once the client reads. (HELO, not
    # NOOP: NOOPs past the junk limit count as errors and end the session.)
    with socket.create_connection((HOST, sink.port), IO_TIMEOUT) as sock:
        read_greeting(sock)
        out = b"HELO client.example\r\n" * count + b"QUIT\r\n"
        writer = threading.Thread(target=sock.sendall, args=(out,))
        writer.start()
        time.sleep(0.5)
        data = read_until_close(sock)
        writer.join(timeout=IO_TIMEOUT)
    codes = [c for c, _ in parse_replies(data)]
    check(codes == [250] * count + [221],
          f"{len(codes)} replies, first other than 250: "
          f"{next((c for c in codes if c != 250), None)}")


def test_max_messages_exit(binary):
    # -n: the sink exits by itself, cleanly (ASan checks leaks then).
    sink = Sink(binary, "-n", "1")
    try:
        with smtplib.SMTP(HOST, sink.port, timeout=IO_TIMEOUT) as s:
            s.sendmail("a@example.org", ["b@example.net"], b"x\r\n")
        sink.expect_message("a@example.org", ["b@example.net"], 3)
        rc = sink.proc.wait(timeout=IO_TIMEOUT)
        check(rc == 0, f"sink exited with {rc}")
    finally:
        sink.stop()


def main():
    build = os.environ.get("MAILD_BUILD_DIR")
    if not build:
        print("MAILD_BUILD_DIR is not set")
        return 1
    binary = os.path.join(build, "examples", "smtp_sink")
    if not os.access(binary, os.X_OK):
        print(f"{binary}: not built")
        return 1

    passed = failed = 0
    try:
        sink = Sink(binary)
    except Exception as e:
        print(f"FAIL starting {binary}: {e}")
        print("0 passed, 1 failed")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        msgfile = os.path.join(tmp, "message.eml")
        with open(msgfile, "wb") as f:
            f.write(TOOL_MESSAGE)
        tests = [
            ("smtplib 100 KiB 8-bit, dots", lambda: test_smtplib(sink)),
            ("pipelined in one send", lambda: test_pipelined_one_send(sink)),
            ("pipelined byte by byte",
             lambda: test_pipelined_byte_by_byte(sink)),
            ("BDAT chunks", lambda: test_bdat(sink)),
            ("SMTPUTF8 addresses", lambda: test_smtputf8(sink)),
            ("40 concurrent clients", lambda: test_concurrent_clients(sink)),
            ("back-pressure: 20000 pipelined HELOs",
             lambda: test_backpressure(sink)),
            ("swaks", lambda: test_swaks(sink, msgfile)),
            ("curl", lambda: test_curl(sink, msgfile)),
            ("-n exits after N messages",
             lambda: test_max_messages_exit(binary)),
        ]
        try:
            for name, fn in tests:
                if time.monotonic() > DEADLINE:
                    print(f"FAIL {name}: out of time")
                    failed += 1
                    continue
                try:
                    fn()
                    stray = sink.stray_lines()
                    check(not stray, f"unexpected output {stray}")
                    check(sink.proc.poll() is None,
                          f"sink died with {sink.proc.returncode}")
                    print(f"ok   {name}")
                    passed += 1
                except Skip as e:
                    print(f"SKIP {name}: {e}")
                except Exception as e:  # a failure, or a client exception
                    print(f"FAIL {name}: {type(e).__name__}: {e}")
                    failed += 1
                sys.stdout.flush()
        finally:
            sink.stop()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
