#!/usr/bin/env python3
"""Outbound delivery with real receivers on loopback: a second maild,
Postfix's smtp-sink and small Python servers, reached through `route` (no
DNS). A message sent through submission is relayed end to end (bytes
compared); a smarthost that wants STARTTLS and AUTH gets them; an alias
forwards to another domain; a server that is down is retried and then
reached; a permanent refusal bounces to the sender's local mailbox as an
RFC 3464 report; every `maildctl queue` command, with a hold that survives
a restart. TESTPLAN Q2 (a bounce that fails is dropped), Q3 (a 452 for one
recipient retries only that one), Q4 (a server stalling at each phase
times out; retried later), Q5 (connection lost after the final dot:
retried, not lost), D7 (killed after the remote's 250, before the result
is recorded: sent again, never lost), Q7 (CRLF only, dots as sent), Q1
(with a fast clock: five days of retries on the schedule, then exactly one
bounce), Q9 (kill -9 with 1,000 messages queued: all delivered after
the restart and a retry; one delay warning on the way, none for
NOTIFY=FAILURE) and the queue's window: 50 messages with room
for 5 in memory (never more in memory; all listed; holds and retry of
messages outside memory; each delivered exactly once), a restart that
loads at most the window and tries nothing before it is due (then a fast
clock makes them due), and messages outside memory that expire and
bounce; a local mailbox that was full is retried by the queue; NOTIFY=SUCCESS
(RFC 3461): a 'delivered' report for a local mailbox and a 'relayed' one
for a next hop without DSN, with the ENVID; none for NOTIFY=FAILURE or
when the next hop takes the DSN parameters; one 'expanded' report for an
alias of several targets and none naming the targets."""
import email
import json
import os
import re
import signal
import smtplib
import socketserver
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from maildtest import (Maild, Results, Sink, free_port, have,  # noqa: E402
                       submit_as, wait_until)

r = Results()
ALICE, PW = "alice@example.test", "pw"
BODY = (b"Subject: outbound\r\nFrom: alice@example.test\r\n\r\n"
        b"line one\r\n.starts with a dot\r\n..two dots\r\nlast\r\n")


def submit(m, rcpts, body=BODY, count=1):
    submit_as(m, ALICE, PW, rcpts, body, count)


def sender(route, retry="1s", extra=""):
    return Maild(users={ALICE: PW}, listen=("smtp", "submission"),
                 extra="route * %s\nretry-first %s\nretry-max 2s\n%s"
                 % (route, retry, extra))


# ---- End to end through a second maild, with STARTTLS between them ----
B = Maild(domains=("elsewhere.test",), hostname="mx.elsewhere.test",
          users={"bob@elsewhere.test": "pw", "carol@elsewhere.test": "pw"})
A = sender("127.0.0.1:%d" % B.port,
           extra="alias fwd@example.test carol@elsewhere.test\n")
submit(A, ["bob@elsewhere.test"])
got = B.mailbox("bob@elsewhere.test", wait=15)
r.check("relayed: the message reached the other server's mailbox",
        len(got) == 1, A.log()[-600:])
if got:
    msg = got[0]
    r.check("relayed: the body arrived byte for byte (Q7: dots kept)",
            msg.endswith(BODY.split(b"\r\n\r\n", 1)[1]), msg[-200:])
    r.check("relayed: both Received headers, the hop was ESMTPS",
            msg.count(b"Received: ") >= 2 and b"with ESMTPS" in
            msg.split(b"Received: ")[1], msg[:400])
wait_until(lambda: A.spool_files() == [], 10)
r.check("relayed: the sender's queue is empty", A.spool_files() == [],
        A.spool_files())
r.check("relayed: a log line with relay and status=sent",
        "to=<bob@elsewhere.test>, relay=[127.0.0.1]:%d" % B.port in A.log()
        and "status=sent (250 2.0.0 Ok: queued as" in A.log(), A.log()[-400:])

# An alias that forwards to another domain takes mail from anyone on port
# 25 (the site chose the target) and sends it on.
with smtplib.SMTP("127.0.0.1", A.port, timeout=30) as s:
    s.sendmail("stranger@far.test", ["fwd@example.test"],
               b"Subject: forwarded\r\n\r\nvia an alias\r\n")
got = B.mailbox("carol@elsewhere.test", wait=15)
r.check("alias forwarding to another domain: delivered there",
        len(got) == 1 and got[0].endswith(b"via an alias\r\n"),
        A.log()[-400:])
wait_until(lambda: A.spool_files() == [], 10)
for f in os.listdir(os.path.join(B.mailbox_dir("carol@elsewhere.test"),
                                 "new")):
    os.unlink(os.path.join(B.mailbox_dir("carol@elsewhere.test"), "new", f))

# ---- A smarthost that wants a login: route ... auth FILE ----
B.stop()
B.listen = ("smtp", "submission")
B.extra = "any-sender yes\n"
B.write_config()
B.ctl("user", "add", "relay@elsewhere.test", "--password-stdin",
      input="smart pass\n")
B.ctl("user", "add", "dan@elsewhere.test", "--no-password")
B.start()
creds = os.path.join(A.dir, "smarthost.auth")
with open(creds, "w") as f:
    f.write("relay@elsewhere.test smart pass\n")
A.stop()
A.extra = ("route * 127.0.0.1:%d auth %s\nretry-first 1s\nretry-max 2s\n"
           % (B.ports["submission"][0], creds))
A.write_config()
A.start()
submit(A, ["dan@elsewhere.test"])
got = B.mailbox("dan@elsewhere.test", wait=15)
r.check("smarthost: delivered through submission with STARTTLS and AUTH",
        len(got) == 1 and b"with ESMTPSA" in got[0], B.log()[-500:])
# The accept line is logged a moment after the message is in the mailbox.
B.wait_log(r"proto=ESMTPSA", timeout=10)
r.check("smarthost: the login was the route's, logged as ESMTPSA",
        "user=<relay@elsewhere.test>" in B.log() and
        "proto=ESMTPSA" in B.log(), B.log()[-500:])
B.stop()
B.listen = ("smtp",)
B.extra = ""
B.write_config()
B.start()

# ---- Q3: a 452 for one recipient retries only that one ----
B.stop()
B.extra = "quota 2k\n"
B.write_config()
B.start()
big = os.path.join(B.mailbox_dir("bob@elsewhere.test"), "new", "big")
with open(big, "wb") as f:
    f.write(b"x" * 4096)  # bob is over quota: 452 4.2.2
A.stop()
A.extra = "route * 127.0.0.1:%d\nretry-first 1s\nretry-max 2s\n" % B.port
A.write_config()
A.start()
submit(A, ["bob@elsewhere.test", "carol@elsewhere.test"])
r.check("Q3: carol gets hers at once",
        len(B.mailbox("carol@elsewhere.test", wait=15)) == 1)
A.wait_log("to=<bob@elsewhere.test>.*status=deferred", timeout=15)
os.unlink(big)
r.check("Q3: bob gets his on a retry",
        len(B.mailbox("bob@elsewhere.test", wait=20)) == 1,
        A.log()[-800:])
time.sleep(1.5)
r.check("Q3: carol's was not sent again",
        len(B.mailbox("carol@elsewhere.test")) == 1)
wait_until(lambda: A.spool_files() == [], 10)
r.check("Q3: the queue is empty after", A.spool_files() == [])
A.stop()
B.stop()

if not have("smtp-sink"):
    print("SKIP smtp-sink tests: postfix not installed")
    r.check("smtp-sink (skipped)", True)
    sys.exit(r.finish())

# ---- A server that is down: deferred, retried, then delivered ----
port = free_port()
A = sender("127.0.0.1:%d" % port)
submit(A, ["dave@elsewhere.test"])
A.wait_log("to=<dave@elsewhere.test>.*status=deferred", timeout=15)
r.check("down: deferred while nothing listens", A.spool_files() != [])
sink = Sink(port)
wait_until(lambda: sink.messages(), 20)
msgs = sink.messages()
r.check("down: delivered once the server is up", len(msgs) == 1,
        A.log()[-500:])
if msgs:
    # smtp-sink dumps with LF line ends, after undoing the dot-stuffing.
    r.check("Q7: the sink read back the lines and dots as sent",
            b"\nline one\n.starts with a dot\n..two dots\nlast\n" in msgs[0],
            msgs[0][-200:])
wait_until(lambda: A.spool_files() == [], 10)
r.check("down: the queue is empty after", A.spool_files() == [])
sink.stop()
A.stop()

# ---- Q5: connection lost after the final dot: retried, not lost ----
port = free_port()
sink = Sink(port, "-q", ".")
A = sender("127.0.0.1:%d" % port)
submit(A, ["erin@elsewhere.test"])
A.wait_log("to=<erin@elsewhere.test>.*status=deferred", timeout=15)
r.check("Q5: after a lost connection the message stays queued",
        A.spool_files() != [] and "Lost connection" in A.log(),
        A.log()[-400:])
sink.stop()
sink = Sink(port)
wait_until(lambda: sink.messages(), 20)
r.check("Q5: delivered on the retry", len(sink.messages()) == 1)
sink.stop()
A.stop()

# ---- A permanent refusal bounces to the sender's mailbox ----
port = free_port()
sink = Sink(port, "-f", "RCPT")
A = sender("127.0.0.1:%d" % port)
submit(A, ["frank@elsewhere.test"])
A.wait_log("to=<frank@elsewhere.test>.*status=bounced", timeout=15)
bounces = A.mailbox(ALICE, wait=15)
r.check("bounce: one notification in the sender's mailbox",
        len(bounces) == 1, A.log()[-600:])
if bounces:
    b = email.message_from_bytes(bounces[0])
    parts = [p.get_content_type() for p in b.get_payload()]
    text = bounces[0].decode(errors="replace")
    r.check("bounce: RFC 3464 multipart/report with the three parts",
            b.get_content_type() == "multipart/report" and
            b.get_param("report-type") == "delivery-status" and
            parts == ["text/plain", "message/delivery-status",
                      "text/rfc822-headers"], parts)
    r.check("bounce: from MAILER-DAEMON, null Return-Path",
            "MAILER-DAEMON@" in b["From"] and
            bounces[0].startswith(b"Return-Path: <>"), bounces[0][:200])
    r.check("bounce: names the recipient, the status and the server's reply",
            "Final-Recipient: rfc822; frank@elsewhere.test" in text and
            "Action: failed" in text and "Status: 5." in text and
            "Diagnostic-Code: smtp; 5" in text, text[-1200:])
    r.check("bounce: carries the original headers",
            "Subject: outbound" in text.split("text/rfc822-headers")[-1])
wait_until(lambda: A.spool_files() == [], 10)
r.check("bounce: nothing left in the queue", A.spool_files() == [],
        A.spool_files())
sink.stop()
A.stop()

# ---- maildctl queue: list, show, hold, release, delete, retry ----
port = free_port()
A = sender("127.0.0.1:%d" % port, retry="1h")
for i in range(3):
    submit(A, ["q%d@elsewhere.test" % i],
           body=b"Subject: queued %d\r\n\r\nbody\r\n" % i)
A.wait_log("status=deferred", timeout=15, count=3)
listing = json.loads(A.ctl("queue", "list", "--json").stdout)
ids = [m["id"] for m in listing]
r.check("queue list --json: three messages, each recipient pending",
        len(listing) == 3 and all(m["recipients"][0]["state"] == "pending"
                                  and not m["held"] for m in listing) and
        listing[0]["sender"] == ALICE, listing)
summary = A.ctl("queue").stdout
r.check("queue (summary): counts and the destination domain",
        summary.startswith("3 messages, 3 pending recipients") and
        "3  elsewhere.test" in summary, summary)
show = A.ctl("queue", "show", ids[0]).stdout
r.check("queue show: envelope and headers",
        "sender: <%s>" % ALICE in show and
        "recipient: <q0@elsewhere.test> pending" in show and
        "Subject: queued 0" in show, show)
r.check("queue hold", A.ctl("queue", "hold", ids[0]).returncode == 0)
r.check("queue delete", A.ctl("queue", "delete", ids[2]).returncode == 0)
bad = A.ctl("queue", "hold", "0" * 24, check=False)
r.check("queue hold of an unknown id fails", bad.returncode != 0 and
        "not in the queue" in bad.stderr, bad.stderr)
wait_until(lambda: not any(ids[2] in f for f in A.spool_files()), 10)
r.check("delete: the files are gone",
        not any(ids[2] in f for f in A.spool_files()), A.spool_files())
human = A.ctl("queue", "list").stdout
r.check("queue list: the held message is marked",
        (ids[0] + "!") in human and "2 messages in the queue" in human, human)
# The hold survives a restart.
A.stop()
A.start()
sink = Sink(port)
r.check("queue retry", A.ctl("queue", "retry").returncode == 0)
wait_until(lambda: any(b"queued 1" in g for g in sink.messages()), 20)
time.sleep(1)
got = sink.messages()
r.check("retry: the released one is sent, the held one is not",
        len(got) == 1 and b"queued 1" in got[0], [g[-40:] for g in got])
r.check("queue release", A.ctl("queue", "release", ids[0]).returncode == 0)
# smtp-sink creates each dump file before it writes it: wait for the text.
wait_until(lambda: any(b"queued 0" in g for g in sink.messages()), 20)
r.check("release: the held message goes at once",
        len(sink.messages()) == 2 and
        any(b"queued 0" in g for g in sink.messages()),
        [g[-40:] for g in sink.messages()])
wait_until(lambda: A.spool_files() == [], 10)
r.check("the queue is empty after", A.spool_files() == [], A.spool_files())
sink.stop()
A.stop()

# ---- Q4: a server that stalls at each phase: timeout, retried later ----
class Staller(socketserver.ThreadingTCPServer):
    """Connection k stalls in phase STALLS[k]: it stops answering there."""
    allow_reuse_address = True
    daemon_threads = True


STALLS = ["greeting", "ehlo", "mail", "rcpt", "data", "dot"]
conn_no = [0]


class StallHandler(socketserver.StreamRequestHandler):
    def handle(self):
        mode = STALLS[min(conn_no[0], len(STALLS) - 1)]
        conn_no[0] += 1
        steps = [("greeting", None, b"220 stall.test\r\n"),
                 ("ehlo", b"EHLO", b"250 stall.test\r\n"),
                 ("mail", b"MAIL", b"250 ok\r\n"),
                 ("rcpt", b"RCPT", b"250 ok\r\n"),
                 ("data", b"DATA", b"354 go\r\n")]
        try:
            for name, want, answer in steps:
                if name == mode:
                    break
                if want is not None:
                    line = self.rfile.readline()
                    if not line.upper().startswith(want):
                        return
                self.wfile.write(answer)
            else:  # "dot": read the body, never answer it
                while self.rfile.readline() not in (b".\r\n", b""):
                    pass
            time.sleep(8)  # well past maild's timeout
        except OSError:
            pass


stall = Staller(("127.0.0.1", 0), StallHandler)
threading.Thread(target=stall.serve_forever, daemon=True).start()
A = sender("127.0.0.1:%d" % stall.server_address[1], retry="1h",
           extra="timeout-outbound 1s\n")
for i, mode in enumerate(STALLS):
    t0 = time.time()
    submit(A, ["stall%d@elsewhere.test" % i])
    ok = A.wait_log(r"to=<stall%d@elsewhere.test>.*status=deferred "
                    r"\(451 4.4.[12] (Timeout|Connection timed out)" % i,
                    timeout=15)
    r.check("Q4: stalled at %s: timed out, deferred (%.1f s)"
            % (mode, time.time() - t0), ok, A.log()[-300:])
r.check("Q4: all six wait in the queue for a retry",
        len([f for f in A.spool_files() if f.startswith("queue/") and
             f.endswith(".env")]) == 6)
A.stop()
stall.shutdown()

# ---- Q2: a bounce that cannot be delivered is dropped, not bounced ----
port = free_port()
sink = Sink(port, "-f", "RCPT")
A = Maild(users={ALICE: PW}, listen=("smtp",),
          extra="route * 127.0.0.1:%d\ntrusted-networks 127.0.0.0/8\n"
          % port)
with smtplib.SMTP("127.0.0.1", A.port, timeout=30) as s:
    s.sendmail("someone@far.test", ["x@elsewhere.test"],
               b"Subject: q2\r\n\r\nq2\r\n")
ok = A.wait_log(r"to=<someone@far.test>.*status=bounced", timeout=20)
r.check("Q2: the bounce to a remote sender was refused too", ok,
        A.log()[-600:])
time.sleep(1)
r.check("Q2: one notification only: the failed bounce is dropped",
        A.log().count("sender non-delivery notification") == 1,
        A.log()[-600:])
wait_until(lambda: A.spool_files() == [], 10)
r.check("Q2: nothing left in the queue", A.spool_files() == [],
        A.spool_files())
sink.stop()
A.stop()

# ---- D7: killed after the remote's 250, before the result is recorded ----
class Receiver(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    victim = None      # the maild to stop and kill after the first message
    messages = []


class ReceiverHandler(socketserver.StreamRequestHandler):
    def handle(self):
        srv = self.server
        self.wfile.write(b"220 d7.test\r\n")
        body = []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line[:4].upper()
            if cmd in (b"EHLO", b"HELO"):
                self.wfile.write(b"250 d7.test\r\n")
            elif cmd in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                self.wfile.write(b"250 ok\r\n")
            elif cmd == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            elif cmd == b"DATA":
                self.wfile.write(b"354 go\r\n")
                body = []
                while True:
                    line = self.rfile.readline()
                    if line in (b".\r\n", b""):
                        break
                    body.append(line)
                srv.messages.append(b"".join(body))
                victim, srv.victim = srv.victim, None
                if victim is not None:
                    # Frozen before the 250 reaches it, killed after: the
                    # 250 was sent, the sender never recorded it.
                    os.kill(victim, signal.SIGSTOP)
                    self.wfile.write(b"250 ok\r\n")
                    self.wfile.flush()
                    time.sleep(0.2)
                    os.kill(victim, signal.SIGKILL)
                    return
                self.wfile.write(b"250 ok\r\n")


recv = Receiver(("127.0.0.1", 0), ReceiverHandler)
threading.Thread(target=recv.serve_forever, daemon=True).start()
A = sender("127.0.0.1:%d" % recv.server_address[1], retry="1h")
recv.victim = A.proc.pid
submit(A, ["d7@elsewhere.test"], body=b"Subject: d7\r\n\r\nonce\r\n")
wait_until(lambda: A.proc.poll() is not None, 15)
r.check("D7: the sender was killed right after the remote's 250",
        A.proc.poll() is not None and len(recv.messages) == 1)
A.proc.wait()
A.proc.stdout.close()
A.err.close()
A.proc = None
r.check("D7: the message is still queued after the kill",
        any(f.startswith("queue/") and f.endswith(".env")
            for f in A.spool_files()), A.spool_files())
A.start()
wait_until(lambda: len(recv.messages) >= 2, 15)
wait_until(lambda: A.spool_files() == [], 10)
r.check("D7: delivered again after the restart (at least once, not lost)",
        len(recv.messages) == 2 and recv.messages[0] == recv.messages[1]
        and A.spool_files() == [], (len(recv.messages), A.spool_files()))
A.stop()
recv.shutdown()

# ---- Helpers for the DSN checks ----
DORA = "dora@example.test"


def reports(m, action):
    """The success reports in Alice's mailbox with this Action."""
    return [x for x in m.mailbox(ALICE)
            if b"Subject: Successful Mail Delivery Report" in x and
            ("Action: %s" % action).encode() in x]


def send_dsn(m, rcpts, notify, envid):
    ca = os.path.join(m.data, "tls", "cert.pem")
    ctx = ssl.create_default_context(cafile=ca)
    with smtplib.SMTP("127.0.0.1", m.ports["submission"][0],
                      timeout=30) as s:
        s.starttls(context=ctx)
        s.login(ALICE, PW)
        s.sendmail(ALICE, rcpts, BODY,
                   mail_options=["ENVID=%s" % envid, "RET=HDRS"],
                   rcpt_options=["NOTIFY=%s" % notify])


# ---- Q1: days of retries with a fast clock, then exactly one bounce ----
# MAILD_CLOCK_SCALE=36000: one real millisecond is 36 s of queue time, so
# the default schedule (5 min doubling to 4 h, 5 days) takes ~12 s. The
# queue looks at the clock every 10 real ms (6 queue minutes): attempts
# may come that much late, hence the tolerances. With the default
# delay-warning (4 h), the sender gets one delay warning on the way, except
# for a recipient that asked NOTIFY=FAILURE only.
port = free_port()  # nothing listens: every attempt fails
A = Maild(users={ALICE: PW}, listen=("smtp", "submission"),
          extra="route * 127.0.0.1:%d\n" % port,
          env={"MAILD_CLOCK_SCALE": "36000"})
submit(A, ["q1@elsewhere.test"])
send_dsn(A, ["q1b@elsewhere.test"], "FAILURE", "env-q1b")
A.wait_log(r"to=<q1@elsewhere.test>.*status=expired", timeout=40)
A.wait_log(r"to=<q1b@elsewhere.test>.*status=expired", timeout=10)
log = A.log()
delays = [float(x) for x in re.findall(
    r"to=<q1@elsewhere.test>, relay=\S+, delay=([0-9.]+), "
    r"status=deferred", log)]
gaps = [b - a for a, b in zip(delays, delays[1:])]
r.check("Q1: retried for five days: %d attempts, the last at %.1f days"
        % (len(delays), delays[-1] / 86400 if delays else 0),
        20 <= len(delays) <= 40 and delays and
        4.8 * 86400 <= delays[-1] <= 5.0 * 86400 + 600, delays[-3:])
r.check("Q1: the waits double from 5 minutes up to 4 hours",
        len(gaps) > 8 and 240 <= gaps[0] <= 900 and
        all(b >= a - 400 for a, b in zip(gaps[:5], gaps[1:6])) and
        all(3.5 * 3600 <= g <= 4.5 * 3600 for g in gaps[7:-1]),
        [round(g / 60) for g in gaps])
r.check("Q1: expired once, after five days",
        log.count("to=<q1@elsewhere.test>, relay=none") == 1 + 1 and
        "status=expired (554 5.4.7" in log, log[-500:])
got = A.mailbox(ALICE, wait=15, count=3)
wait_until(lambda: A.spool_files() == [], 10)
warned = [x for x in got if b"Subject: Delayed Mail" in x]
bounced = [x for x in got if b"Subject: Undelivered Mail" in x]
r.check("Q1: exactly one bounce per message, and nothing left in the queue",
        len(bounced) == 2 and all(b"Status: 5.4.7" in x for x in bounced)
        and A.spool_files() == [], (len(bounced), A.spool_files()))
r.check("Q1: one delay warning, for the recipient without NOTIFY",
        len(warned) == 1 and len(got) == 3 and
        b"Final-Recipient: rfc822; q1@elsewhere.test" in warned[0] and
        b"Action: delayed" in warned[0] and b"Status: 4." in warned[0] and
        b"q1b@" not in warned[0], (len(warned), len(got)))
# It came with the first attempt at least 4 hours after arrival.
pos = log.find("sender delay notification")
before = [float(x) for x in re.findall(
    r"to=<q1@elsewhere.test>, relay=\S+, delay=([0-9.]+), "
    r"status=deferred", log[:pos])]
r.check("Q1: the warning followed the first attempt past 4 hours",
        pos > 0 and len(before) >= 2 and before[-1] >= 4 * 3600 and
        before[-2] < 4 * 3600, before[-2:])
A.stop()

# ---- The queue's window: ten times more messages than records ----
def in_memory(m):
    """The daemon's count of queued messages in memory, from the summary
    of `maildctl queue` (None if it has none)."""
    out = m.ctl("queue").stdout
    found = re.search(r"in memory: (\d+) \(queue-window (\d+)\)", out)
    return (int(found.group(1)), int(found.group(2)), out) if found else None


def window_subjects(msgs, prefix):
    return sorted(re.search(rb"Subject: (%s \d+)" % prefix, g).group(1)
                  for g in msgs if re.search(rb"Subject: %s \d+" % prefix, g))


port = free_port()  # down: every first attempt fails
A = sender("127.0.0.1:%d" % port, retry="1h", extra="queue-window 5\n")
samples = []
for i in range(50):
    submit(A, ["w%d@elsewhere.test" % i],
           body=b"Subject: window %d\r\n\r\nbody\r\n" % i)
    if i % 5 == 4:
        samples.append(in_memory(A))
ok = A.wait_log("status=deferred", timeout=60, count=50)
samples.append(in_memory(A))
r.check("window: all 50 tried once though only 5 fit in memory", ok,
        A.log().count("status=deferred"))
r.check("window: never more than 5 messages in memory (%s)"
        % [s_[0] for s_ in samples if s_],
        all(s_ and s_[0] <= 5 and s_[1] == 5 for s_ in samples), samples)
r.check("window: the summary says more wait in the spool",
        "more wait in the spool" in samples[-1][2] and
        "queue: 5 messages in memory (queue-window 5); more wait in the "
        "spool" in A.log(), samples[-1][2])
listing = json.loads(A.ctl("queue", "list", "--json").stdout)
ids = [m_["id"] for m_ in listing]
r.check("window: queue list shows all 50, in memory or not",
        len(listing) == 50 and
        all(m_["recipients"][0]["state"] == "pending" for m_ in listing),
        len(listing))
# The first arrival is in memory (due soonest), the last is not.
r.check("window: hold one in memory and one in the spool only",
        A.ctl("queue", "hold", ids[0]).returncode == 0 and
        A.ctl("queue", "hold", ids[-1]).returncode == 0)
bad = A.ctl("queue", "release", "0" * 24, check=False)
r.check("window: an unknown id is refused", bad.returncode != 0 and
        "not in the queue" in bad.stderr, bad.stderr)
sink = Sink(port)
r.check("window: queue retry", A.ctl("queue", "retry").returncode == 0)
wait_until(lambda: len(sink.messages()) >= 48, 60)
time.sleep(1.5)
got = window_subjects(sink.messages(), b"window")
r.check("window: after the retry the 48 not held arrive, once each",
        len(got) == 48 and len(set(got)) == 48 and
        b"window 0" not in got and b"window 49" not in got, len(got))
r.check("window: release both held ones",
        A.ctl("queue", "release", ids[0]).returncode == 0 and
        A.ctl("queue", "release", ids[-1]).returncode == 0)
wait_until(lambda: len(sink.messages()) >= 50, 30)
time.sleep(1.5)
got = window_subjects(sink.messages(), b"window")
r.check("window: all 50 arrived exactly once",
        len(got) == 50 and len(set(got)) == 50, len(got))
wait_until(lambda: A.spool_files() == [], 10)
r.check("window: the queue is empty after", A.spool_files() == [],
        len(A.spool_files()))


def nothing_outside(m):
    found = in_memory(m)
    return found if found and found[0] == 0 and \
        "more wait" not in found[2] else None


in_mem = wait_until(lambda: nothing_outside(A), 10) or in_memory(A)
r.check("window: nothing in memory, and the daemon knows nothing waits",
        in_mem and in_mem[0] == 0 and "more wait" not in in_mem[2] and
        "queue: every queued message is in memory again" in A.log(), in_mem)

# A restart with the queue full: the rescan loads at most the window, and
# what is not due yet (an hour after each failed attempt) waits, though
# the destination is up now; with a fast clock the hour passes and all go.
sink.stop()
for i in range(50):
    submit(A, ["r%d@elsewhere.test" % i],
           body=b"Subject: restart %d\r\n\r\nbody\r\n" % i)
A.wait_log("to=<r49@elsewhere.test>.*status=deferred", timeout=60)
r.check("restart: 50 deferred, due in an hour",
        A.wait_log(r"to=<r\d+@elsewhere.test>.*status=deferred", timeout=30,
                   count=50))
A.stop()
sink = Sink(port)
before = len(A.log())
A.start()
time.sleep(3)
after = A.log()[before:]
r.check("restart: nothing tried at once after the restart",
        sink.messages() == [] and "to=<r" not in after, after[-600:])
in_mem = in_memory(A)
r.check("restart: the rescan loaded at most the window",
        in_mem and in_mem[0] <= 5 and "more wait in the spool" in in_mem[2],
        in_mem)
A.stop()
A.env = {"MAILD_CLOCK_SCALE": "3600"}  # an hour a second
A.start()
wait_until(lambda: len(sink.messages()) >= 50, 60)
time.sleep(1.5)
got = window_subjects(sink.messages(), b"restart")
r.check("restart: with a fast clock all 50 go when due, exactly once",
        len(got) == 50 and len(set(got)) == 50, len(got))
wait_until(lambda: A.spool_files() == [], 10)
r.check("restart: the queue is empty after", A.spool_files() == [],
        len(A.spool_files()))
sink.stop()
r.check("window: SIGTERM exits 0 (no leak, no sanitizer report)",
        A.stop() == 0, A.log()[-800:])

# Messages outside memory still expire: the lifetime (2 h, two seconds at
# this clock) ends while most of the 10 wait in the spool; each bounces.
port = free_port()
A = Maild(users={ALICE: PW}, listen=("smtp", "submission"),
          extra="route * 127.0.0.1:%d\nqueue-window 3\nretry-first 30m\n"
          "retry-max 1h\nqueue-lifetime 2h\n" % port,
          env={"MAILD_CLOCK_SCALE": "3600"})
for i in range(10):
    submit(A, ["x%d@elsewhere.test" % i],
           body=b"Subject: expire %d\r\n\r\nbody\r\n" % i)
A.wait_log(r"status=expired", timeout=60, count=10)
bounces = A.mailbox(ALICE, wait=20, count=10)
wait_until(lambda: A.spool_files() == [], 20)
r.check("window: 10 expired with a window of 3, one bounce each",
        A.log().count("status=expired") == 10 and len(bounces) == 10 and
        all(b"Status: 5.4.7" in b_ for b_ in bounces) and
        A.spool_files() == [],
        (A.log().count("status=expired"), len(bounces), A.spool_files()))
r.check("window: expiry: SIGTERM exits 0", A.stop() == 0, A.log()[-800:])

# ---- A local mailbox that failed is retried by the queue ----
BOB = "bob@example.test"
A = Maild(users={ALICE: PW, BOB: "pw"}, extra="quota 2k\n",
          env={"MAILD_CLOCK_SCALE": "3600"})
with smtplib.SMTP("127.0.0.1", A.port, timeout=30) as s_:
    s_.sendmail("someone@far.test", [BOB], b"Subject: first\r\n\r\nx\r\n")
A.mailbox(BOB, wait=10)
big = os.path.join(A.mailbox_dir(BOB), "new", "big")
with open(big, "wb") as f:
    f.write(b"x" * 4096)  # bob is over quota now
with smtplib.SMTP("127.0.0.1", A.port, timeout=30) as s_:
    refused = s_.sendmail("someone@far.test", [ALICE, BOB],
                          b"Subject: local retry\r\n\r\ny\r\n")
r.check("local retry: accepted, alice has it, bob's is deferred",
        refused == {} and len(A.mailbox(ALICE, wait=10)) == 1 and
        A.wait_log(r"to=<bob@example.test>.*status=deferred", timeout=10),
        A.log()[-600:])
os.unlink(big)
got = A.mailbox(BOB, wait=20, count=2)
wait_until(lambda: A.spool_files() == [], 10)
r.check("local retry: bob gets it from the queue, alice not twice",
        len(got) == 2 and any(b"local retry" in g for g in got) and
        len(A.mailbox(ALICE)) == 1 and A.spool_files() == [] and
        re.search(r"to=<bob@example.test>, relay=local, .*status=sent",
                  A.log()), A.log()[-600:])
r.check("local retry: SIGTERM exits 0", A.stop() == 0, A.log()[-800:])

# ---- DSN NOTIFY=SUCCESS (RFC 3461 5.2.2): reports this server sends ----
port = free_port()
sink = Sink(port, "-N")  # a server that does not announce DSN
A = Maild(users={ALICE: PW, DORA: PW}, listen=("smtp", "submission"),
          extra="route * 127.0.0.1:%d\n"
                "alias team@example.test dora@example.test gus@elsewhere.test\n"
                % port)
send_dsn(A, [DORA, "bob@elsewhere.test"], "SUCCESS", "env-42")
wait_until(lambda: reports(A, "delivered") and reports(A, "relayed"), 20)
got = reports(A, "delivered")
r.check("NOTIFY=SUCCESS: a 'delivered' report for the local mailbox",
        len(got) == 1 and b"Final-Recipient: rfc822; dora@example.test"
        in got[0] and b"Status: 2.0.0" in got[0], A.log()[-600:])
r.check("NOTIFY=SUCCESS: the report carries the ENVID and the headers",
        got and b"Original-Envelope-Id: env-42\r\n" in got[0] and
        b"Subject: outbound" in got[0] and b"line one" not in got[0],
        got[0][-600:] if got else None)
got = reports(A, "relayed")
r.check("NOTIFY=SUCCESS: a 'relayed' report for a server without DSN",
        len(got) == 1 and b"Final-Recipient: rfc822; bob@elsewhere.test"
        in got[0] and (b"Remote-MTA: dns; [127.0.0.1]:%d" % port) in got[0]
        and b"Original-Envelope-Id: env-42" in got[0],
        got[0][-800:] if got else A.log()[-600:])
r.check("NOTIFY=SUCCESS: the reports come from the null sender",
        all(x.startswith(b"Return-Path: <>") for x in
            reports(A, "delivered") + reports(A, "relayed")),
        [x[:60] for x in reports(A, "delivered") + reports(A, "relayed")])
# NOTIFY=FAILURE only: delivered and relayed, no report.
before = len(A.mailbox(ALICE))
send_dsn(A, [DORA, "erin@elsewhere.test"], "FAILURE", "env-43")
wait_until(lambda: len(sink.messages()) >= 2 and A.spool_files() == [], 20)
time.sleep(0.5)
r.check("NOTIFY=FAILURE: no success report",
        len(A.mailbox(ALICE)) == before, len(A.mailbox(ALICE)) - before)
# An alias of several targets (RFC 3461 6.2.7.3): one 'expanded' report
# for the alias; its targets are not asked SUCCESS again, so no report
# names them.
n_dora, n_sink = len(A.mailbox(DORA)), len(sink.messages())
n_reports = len(reports(A, "delivered")) + len(reports(A, "relayed"))
send_dsn(A, ["team@example.test"], "SUCCESS", "env-45")
wait_until(lambda: reports(A, "expanded") and A.spool_files() == [] and
           len(sink.messages()) > n_sink, 20)
time.sleep(0.5)
got = reports(A, "expanded")
r.check("NOTIFY=SUCCESS to an alias of two: one 'expanded' report for it",
        len(got) == 1 and
        b"Final-Recipient: rfc822; team@example.test" in got[0] and
        b"Status: 2.0.0" in got[0] and
        b"Original-Envelope-Id: env-45" in got[0] and
        b"dora@" not in got[0] and b"gus@" not in got[0],
        got[0][-800:] if got else A.log()[-600:])
r.check("NOTIFY=SUCCESS to an alias of two: no report for its targets",
        len(reports(A, "delivered")) + len(reports(A, "relayed")) ==
        n_reports, A.log()[-600:])
r.check("NOTIFY=SUCCESS to an alias of two: both targets have the message",
        len(A.mailbox(DORA)) == n_dora + 1 and
        sum(b"gus@elsewhere.test" in x for x in sink.messages()) == 1,
        (len(A.mailbox(DORA)) - n_dora, len(sink.messages()) - n_sink))
sink.stop()
A.stop()
# A next hop with DSN reports itself: the parameters travel, no report.
sink = Sink(port)
A = Maild(users={ALICE: PW, DORA: PW}, listen=("smtp", "submission"),
          extra="route * 127.0.0.1:%d\n" % port)
send_dsn(A, ["fred@elsewhere.test"], "SUCCESS", "env-44")
wait_until(lambda: sink.messages() and A.spool_files() == [], 20)
msgs = sink.messages()
r.check("NOTIFY=SUCCESS to a DSN server: NOTIFY and ENVID passed on",
        len(msgs) == 1 and b"NOTIFY=SUCCESS" in msgs[0] and
        b"ENVID=env-44" in msgs[0], msgs[0][:400] if msgs else A.log()[-400:])
time.sleep(0.5)
r.check("NOTIFY=SUCCESS to a DSN server: no report from here",
        reports(A, "relayed") == [] and reports(A, "delivered") == [],
        A.log()[-400:])
sink.stop()
A.stop()

# ---- Q9: kill -9 with 1,000 messages queued ----
port = free_port()
A = sender("127.0.0.1:%d" % port, retry="1h")
t0 = time.time()
submit(A, ["grace@elsewhere.test"], body=b"Subject: q9\r\n\r\nq9\r\n",
       count=1000)
wait_until(lambda: A.log().count("status=deferred") >= 1000, 60)
A.kill()
queued = len([f for f in A.spool_files()
              if f.startswith("queue/") and f.endswith(".env")])
r.check("Q9: 1,000 messages queued at the kill", queued == 1000, queued)
sink = Sink(port)
A.start()
# Each is due an hour after its failed attempt (the spool keeps the time
# across the restart): the administrator asks for them now.
r.check("Q9: queue retry after the restart",
        A.ctl("queue", "retry").returncode == 0)
wait_until(lambda: len(sink.messages()) >= 1000, 120)
r.check("Q9: all 1,000 delivered after the restart",
        len(sink.messages()) == 1000, len(sink.messages()))
wait_until(lambda: A.spool_files() == [], 30)
r.check("Q9: the queue is empty after", A.spool_files() == [],
        len(A.spool_files()))
sink.stop()
A.stop()
sys.exit(r.finish())
