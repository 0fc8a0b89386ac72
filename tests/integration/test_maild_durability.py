#!/usr/bin/env python3
"""The promise behind every 250, against the real daemon (TESTPLAN D1, D2,
D3, D4, D5, D6), with strace as the fault injector.

strace counts an injection's `when=N` per thread, so instead of running
maild under `strace -f` (where the main thread's log writes and the worker
pool's spool writes would share one count per thread but be interleaved
unpredictably across a pool of threads), maild runs with one worker thread
(UV_THREADPOOL_SIZE=1) and strace is attached to exactly the thread whose
calls are counted: the worker (spool and Maildir) or the loop thread (the
replies). The counts then start at the attach, after the start-up rescan.

D1  kill -9 (strace inject signal=KILL) at every openat, write, fsync,
    fdatasync, syncfs, renameat, linkat, unlinkat of the worker and at every
    write of the loop thread during one message; after each kill maild is
    restarted normally. A message the client saw 250 for is in the mailbox;
    a message committed at the kill (queue/<id>.env present, or already in
    the mailbox) is in the mailbox after the restart; anything else is
    never delivered.
D2  under `strace -f`: the message file and the envelope are each synced
    (their fsync, or a syncfs of the file system: group commit) after their
    last write and before their rename into queue/, the message is renamed
    before the envelope, and queue/ is synced (its fsync, or syncfs) after
    the envelope's rename and before the write of "250" to the socket.
D3  each sync call of a message (fsync, fdatasync, syncfs, in turn) and
    each spool write fail with EIO: the client gets 451 4.3.0 (or, for a
    failure after the message is known durable, 250 and one copy), nothing
    of a refused message stays in spool/tmp, spool/queue or the mailbox, the
    failed sync is not retried on the same file, and the same session then
    sends a message that is delivered.
D4  low space at MAIL FROM: with `spool-min-free` above what the file
    system has free, MAIL FROM gets 452 4.3.1 (never a 5xx) and the session
    goes on; with the default, a SIZE= announcing more than is free gets
    452 4.3.1, a small one 250, and the message is delivered.
D5  ENOSPC on the spool writes (mid-DATA and at the envelope) and a real
    full tmpfs: the server reads to the final dot, answers 452 4.3.1, and
    leaves no partial file; the session goes on.
D6  junk in spool/tmp, a truncated, an empty and a corrupt .env, an orphan
    .msg and a foreign name in spool/queue, beside a valid message left by
    a run killed after commit: at start the junk is moved to spool/corrupt
    and logged, never delivered, the valid message is delivered once.

strace 6.1 injects nothing into a call it does not trace, so every
injection here traces its calls (never `-e trace=none`), and LeakSanitizer
cannot run under ptrace, so a maild run whole under strace has
detect_leaks=0.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from maildtest import RawSMTP, stop_wrapped, wait_until, Maild, Results, body_of  # noqa: E402

STRACE = shutil.which("strace") or "/usr/bin/strace"
RCPT = "alice@example.test"
USERS = {RCPT: "pw"}
ONE_WORKER = {"UV_THREADPOOL_SIZE": "1"}

r = Results()


# ---- A small SMTP client with exact control over every byte ----

def make_body(token, size=2000):
    """A message of about `size` octets carrying `token`."""
    head = ("Subject: durability %s\r\nMessage-ID: <%s@test>\r\n\r\n"
            % (token, token)).encode()
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRST\r\n"
    n = max(1, (size - len(head)) // len(line))
    return head + line * n + ("end %s\r\n" % token).encode()


def send_message(c, body, rcpt=RCPT):
    """MAIL, RCPT, DATA, body, dot on an open session. Returns the reply to
    the final dot."""
    code, text = c.cmd(b"MAIL FROM:<sender@remote.example>")
    if code != 250:
        return code, text
    code, text = c.cmd(("RCPT TO:<%s>" % rcpt).encode())
    if code != 250:
        return code, text
    code, text = c.cmd(b"DATA")
    if code != 354:
        return code, text
    c.s.sendall(body + b".\r\n")
    return c.reply()


def copies(m, token, rcpt=RCPT):
    """The mailbox messages carrying `token`."""
    t = token.encode()
    return [msg for msg in m.mailbox(rcpt) if t in msg]


def maildir_tmp(m, rcpt=RCPT):
    p = os.path.join(m.mailbox_dir(rcpt), "tmp")
    return sorted(os.listdir(p)) if os.path.isdir(p) else []


def spool_dir(m, sub):
    p = os.path.join(m.data, "spool", sub)
    return sorted(os.listdir(p)) if os.path.isdir(p) else []


SCAN_LINE = r"spool: \d+ message\(s\) found, \d+ set aside"


def scans(m):
    return len(re.findall(SCAN_LINE, m.log()))


def tids(pid):
    try:
        return sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))
    except OSError:
        return []


def worker_tid(m):
    """The one worker thread (UV_THREADPOOL_SIZE=1), created by the rescan."""
    others = wait_until(lambda: [t for t in tids(m.proc.pid)
                                 if t != m.proc.pid], 10)
    if len(others) != 1:
        raise RuntimeError("expected one worker thread, have %s" % others)
    return others[0]


class Tracer:
    """strace attached to some threads of a running maild."""

    def __init__(self, tids_, args, tag):
        self.log = "/tmp/maild-strace-%d-%s.log" % (os.getpid(), tag)
        self.err = self.log + ".err"
        cmd = [STRACE, "-y", "-s", "64", "-o", self.log] + list(args)
        for t in tids_:
            cmd += ["-p", str(t)]
        self.errf = open(self.err, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=self.errf)
        ok = wait_until(lambda: self.stderr().count(" attached") >= len(tids_)
                        or self.proc.poll() is not None, 10)
        if not ok or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("strace did not attach: " + self.stderr())

    def stderr(self):
        try:
            with open(self.err, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def lines(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode(errors="replace").splitlines()
        except OSError:
            return []

    def stop(self):
        """Detaches (if the tracee still lives) and cleans up."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.errf.close()

    def remove(self):
        for p in (self.log, self.err):
            try:
                os.unlink(p)
            except OSError:
                pass


def no_leak_check():
    """LeakSanitizer cannot run under ptrace: a maild run entirely under
    strace checks everything but leaks."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    return {"ASAN_OPTIONS": (opts + ":" if opts else "") + "detect_leaks=0"}


def restart(m):
    """Starts maild again after a kill and waits for its spool rescan."""
    n = scans(m)
    m.stop()
    m.start()
    if not m.wait_log(SCAN_LINE, timeout=20, count=n + 1):
        raise RuntimeError("no rescan after restart: " + m.log()[-2000:])


# ---- D1: kill -9 at every step ----

def d1_session(port, body):
    """One message over one session; returns (saw_250, reply, finished)."""
    got250 = False
    reply = None
    try:
        c = RawSMTP(port, timeout=15)
    except OSError as e:
        return False, "connect: %s" % e, False
    try:
        code, _ = c.reply()
        if code != 220:
            return False, code, False
        code, _ = c.cmd(b"EHLO client.example")
        if code != 250:
            return False, code, False
        reply = send_message(c, body)
        got250 = reply[0] == 250
        code, _ = c.cmd(b"QUIT")
        return got250, reply, code == 221
    except (OSError, EOFError) as e:
        return got250, reply if reply else repr(e), False
    finally:
        c.close()


def last_call(tracer):
    """The call the kill happened at, from strace's log (for messages)."""
    for line in reversed(tracer.lines()):
        if line.startswith("+++") or line.startswith("---"):
            continue
        return line[:160]
    return "?"


def d1_run(m, who, syscall, n, body, token):
    """One kill at the n-th `syscall` of thread `who`. Returns True if maild
    was killed (so a next n is worth trying)."""
    pid = m.proc.pid
    tid = worker_tid(m) if who == "worker" else pid
    tr = Tracer([tid], ["-e", "trace=" + syscall,
                        "-e", "inject=%s:signal=KILL:when=%d" % (syscall, n)],
                "d1")
    try:
        got250, reply, finished = d1_session(m.port, body)
        # A kill after the session's last reply may still come (QUIT, log).
        dead = wait_until(lambda: m.proc.poll() is not None,
                          1.0 if finished else 10)
        what = "%s %s #%d" % (who, syscall, n)
        if not dead:
            tr.stop()
            r.check("D1 %s: past the last call, not killed: 250 and one "
                    "copy" % what, got250 and finished and
                    len(copies(m, token)) == 1,
                    (reply, finished, len(copies(m, token))))
            return False
        at = last_call(tr)
        tr.stop()
        committed = bool([n_ for n_ in spool_dir(m, "queue")
                          if n_.endswith(".env")])
        early = len(copies(m, token))
        restart(m)
        wait_until(lambda: not spool_dir(m, "queue"), 10)
        got = copies(m, token)
        label = "D1 kill at %s [%s]" % (what, at)
        if got250:
            r.check(label + ": saw 250, so delivered after restart",
                    len(got) >= 1, len(got))
        elif committed or early:
            r.check(label + ": committed at the kill, so delivered after "
                    "restart", len(got) >= 1, (len(got), committed, early))
        else:
            r.check(label + ": no 250 and not committed, never delivered",
                    len(got) == 0, (len(got), reply))
        r.check(label + ": every copy intact",
                all(body_of(g) == body for g in got),
                [len(body_of(g)) for g in got])
        r.check(label + ": spool tmp/ and queue/ empty after restart",
                spool_dir(m, "tmp") == [] and spool_dir(m, "queue") == [],
                (spool_dir(m, "tmp"), spool_dir(m, "queue")))
        return True
    finally:
        if tr.proc.poll() is None:
            tr.stop()
        tr.remove()


def d1():
    targets = [("worker", s) for s in ("openat", "write", "fsync",
                                       "fdatasync", "syncfs", "renameat",
                                       "renameat2", "linkat", "unlinkat")]
    targets += [("main", s) for s in ("write", "writev", "sendto",
                                      "sendmsg")]
    with Maild(users=USERS, env=ONE_WORKER) as m:
        m.wait_log(SCAN_LINE, timeout=20)
        # The mailbox exists from a first message, so each run below is
        # the steady-state path.
        c = RawSMTP(m.port)
        c.reply()
        c.cmd(b"EHLO client.example")
        reply = send_message(c, make_body("prime"))
        c.close()
        r.check("D1 first message accepted", reply[0] == 250, reply)
        # 300 KiB: one flush of the body during DATA, several writes.
        body_size = 300 * 1024
        kills = 0
        for who, syscall in targets:
            for n in range(1, 60):
                token = "d1-%s-%s-%d-%s" % (who, syscall, n,
                                            uuid.uuid4().hex[:8])
                if not d1_run(m, who, syscall, n, make_body(token, body_size),
                              token):
                    break
                kills += 1
            print("     D1 %s %s: %d kill point(s)" % (who, syscall, n - 1),
                  flush=True)
        r.check("D1 enough kill points exercised (>= 20)", kills >= 20, kills)
        r.check("D1 maild alive at the end", m.proc.poll() is None,
                m.log()[-1000:])


# ---- D2: the system-call order ----

LINE_RE = re.compile(r"^(\d+)\s+(\d\d:\d\d:\d\d\.\d+) (.*)$")


def parse_strace(lines):
    """Calls from an `strace -f -tt` log, each {pid,name,text,start,end,t}
    with start/end the line indices of its entry and its return."""
    calls, pending = [], {}
    for i, line in enumerate(lines):
        mm = LINE_RE.match(line)
        if not mm:
            continue
        pid, t, rest = int(mm.group(1)), mm.group(2), mm.group(3)
        res = re.match(r"<\.\.\. (\w+) resumed>(.*)$", rest)
        if res:
            c = pending.pop(pid, None)
            if c is not None:
                c["text"] += res.group(2)
                c["end"] = i
            continue
        call = re.match(r"(\w+)\((.*)$", rest)
        if not call:
            continue
        c = {"pid": pid, "name": call.group(1), "t": t, "start": i,
             "end": i, "text": rest}
        if rest.endswith("<unfinished ...>"):
            c["text"] = rest[:-len("<unfinished ...>")]
            pending[pid] = c
        calls.append(c)
    return calls


def ret_ok(c):
    return re.search(r"\)\s+= 0(\s|$)", c["text"]) is not None


def d2_check(calls, label):
    replies = [c for c in calls
               if c["name"] in ("write", "sendto", "sendmsg", "writev")
               and "250 2.0.0" in c["text"] and "queued as" in c["text"]]
    if not r.check(label + ": the 250 write is in the trace", replies,
                   len(calls)):
        return
    rep = replies[0]
    mid = re.search(r"queued as ([0-9a-f]{24})", rep["text"])
    if not r.check(label + ": the 250 names a queue id", mid, rep["text"]):
        return
    qid = mid.group(1)

    def first(pred, after=-1):
        for c in calls:
            if c["start"] > after and pred(c):
                return c
        return None

    tmp_msg = "spool/tmp/%s.msg>" % qid
    tmp_env = "spool/tmp/%s.env>" % qid

    def last_write(path):
        ws = [c for c in calls if c["name"] in ("write", "pwrite64",
                                                 "writev")
              and path in c["text"].split(",")[0]]
        return ws[-1] if ws else None

    def renamed(name):
        return first(lambda c: c["name"].startswith("rename") and
                     "spool/tmp>" in c["text"] and
                     "spool/queue>" in c["text"] and
                     '"%s"' % name in c["text"] and ret_ok(c))

    def barrier(fsync_path, after, before):
        """A successful fsync/fdatasync of `fsync_path`, or a syncfs of
        the data directory's file system, that starts after `after`
        returned and returns before `before` starts."""
        for c in calls:
            if c["start"] <= after["end"] or c["end"] >= before["start"] or \
                    not ret_ok(c):
                continue
            if c["name"] in ("fsync", "fdatasync") and \
                    fsync_path in c["text"]:
                return c
            if c["name"] == "syncfs" and "/data/" in c["text"]:
                return c
        return None

    w_msg, w_env = last_write(tmp_msg), last_write(tmp_env)
    ren_msg, ren_env = renamed(qid + ".msg"), renamed(qid + ".env")
    steps = [("message file written", w_msg),
             ("envelope file written", w_env),
             ("message file renamed into queue/", ren_msg),
             ("envelope renamed into queue/ (commit)", ren_env)]
    for name, c in steps:
        r.check("%s: %s" % (label, name), c is not None, qid)
    if any(c is None for _, c in steps):
        return
    b_msg = barrier(tmp_msg, w_msg, ren_msg)
    b_env = barrier(tmp_env, w_env, ren_env)
    b_dir = barrier("spool/queue>)", ren_env, rep)
    r.check(label + ": the message file is synced (its fsync, or syncfs) "
            "after its last write and before its rename", b_msg is not None,
            (w_msg["start"], ren_msg["start"]))
    r.check(label + ": the envelope is synced after its write and before "
            "its rename", b_env is not None,
            (w_env["start"], ren_env["start"]))
    r.check(label + ": the message is renamed before the envelope (no "
            "envelope in queue/ without its message)",
            ren_msg["end"] < ren_env["start"],
            (ren_msg["start"], ren_env["start"]))
    r.check(label + ": queue/ is synced (its fsync, or syncfs) after the "
            "envelope's rename and before the 250 is written",
            b_dir is not None, (ren_env["start"], rep["start"]))
    if b_dir is None or b_msg is None or b_env is None:
        return
    order = [w_msg, b_msg, ren_msg, ren_env, b_dir, rep]
    r.check(label + ": timestamps agree (write, sync, rename, rename, sync, "
            "250)", all(order[i]["t"] <= order[i + 1]["t"]
                        for i in range(len(order) - 1)),
            [c["t"] for c in order])
    r.check(label + ": the 250 comes from a different thread than the "
            "syncs (the loop thread, not blocked by them)",
            rep["pid"] != b_dir["pid"], (rep["pid"], b_dir["pid"]))


def d2():
    log = "/tmp/maild-d2-%d.log" % os.getpid()
    wrapper = [STRACE, "-f", "-qq", "-tt", "-y", "-s", "200", "-o", log,
               "-e", "trace=fsync,fdatasync,syncfs,sync,rename,renameat,"
               "renameat2,write,pwrite64,writev,sendto,sendmsg"]
    try:
        with Maild(users=USERS, wrapper=wrapper, env=no_leak_check()) as m:
            m.wait_log(SCAN_LINE, timeout=20)
            c = RawSMTP(m.port)
            c.reply()
            c.cmd(b"EHLO client.example")
            r1 = send_message(c, make_body("d2-first"))
            r2 = send_message(c, make_body("d2-second", 100 * 1024))
            c.cmd(b"QUIT")
            c.close()
            r.check("D2 both messages accepted",
                    r1[0] == 250 and r2[0] == 250, (r1, r2))
            r.check("D2 maild stops cleanly under strace",
                    stop_wrapped(m) == 0, m.log()[-1000:])
            with open(log, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
            calls = parse_strace(lines)
            first_reply = None
            for i, c in enumerate(calls):
                if "250 2.0.0" in c["text"] and "queued as" in c["text"]:
                    first_reply = i
                    break
            if first_reply is None:
                r.check("D2 250 found in the trace", False, len(lines))
                return
            d2_check(calls[:first_reply + 1], "D2 message 1 (new mailbox)")
            d2_check(calls[first_reply + 1:], "D2 message 2 (100 KiB)")
    finally:
        try:
            os.unlink(log)
        except OSError:
            pass


# ---- D3: fsync and write errors ----

def d3_run(m, syscall, n):
    """Fails the n-th `syscall` of the worker with EIO during message 1 of a
    session, then sends message 2 in the same session. Returns False once
    no call was failed (n is past the last)."""
    tid = worker_tid(m)
    tr = Tracer([tid], ["-e", "trace=fsync,fdatasync,syncfs,openat,%s" %
                        syscall,
                        "-e", "inject=%s:error=EIO:when=%d" % (syscall, n)],
                "d3")
    try:
        t1 = "d3-%s-%d-a-%s" % (syscall, n, uuid.uuid4().hex[:8])
        t2 = "d3-%s-%d-b-%s" % (syscall, n, uuid.uuid4().hex[:8])
        c = RawSMTP(m.port)
        c.reply()
        c.cmd(b"EHLO client.example")
        rep1 = send_message(c, make_body(t1, 20000))
        # The state right after the answer to message 1.
        after_tmp, after_queue = spool_dir(m, "tmp"), spool_dir(m, "queue")
        after_copies = len(copies(m, t1))
        after_mtmp = maildir_tmp(m)
        rep2 = send_message(c, make_body(t2, 20000))
        c.cmd(b"QUIT")
        c.close()
        tr.stop()
        lines = tr.lines()
        starts = [i for i, l in enumerate(lines)
                  if "O_CREAT" in l and "/spool/tmp>" in l and ".msg" in l]
        inj = [i for i, l in enumerate(lines) if "(INJECTED)" in l]
        if inj and len(starts) > 1 and inj[0] > starts[1]:
            inj = []  # in message 2: past the last call of message 1
        if not inj:
            r.check("D3 %s #%d past message 1's last call: it is accepted "
                    "and delivered" % (syscall, n), rep1[0] == 250 and
                    wait_until(lambda: len(copies(m, t1)) == 1, 5),
                    (rep1, len(copies(m, t1))))
            return False
        failed = lines[inj[0]]
        fpath = re.search(r"^\w+\(\d+<([^>]*)>", failed)
        fpath = fpath.group(1) if fpath else "?"
        label = "D3 %s EIO at #%d (%s)" % (syscall, n,
                                             fpath.split("/data/")[-1])
        ok_reply = rep1[0] == 451 and rep1[1].startswith(b"4.3.0")
        # Before the message reaches the mailbox: part of the commit.
        first_mail = next((i for i, l in enumerate(lines)
                           if "/data/mail" in l), len(lines))
        commit_path = "/spool/" in fpath and inj[0] < first_mail
        if commit_path or syscall == "write":
            r.check(label + ": 451 4.3.0", ok_reply, rep1)
        else:
            r.check(label + ": 451 4.3.0, or 250 with the message delivered",
                    ok_reply or (rep1[0] == 250 and after_copies == 1),
                    (rep1, after_copies))
        if rep1[0] != 250:
            r.check(label + ": nothing left in spool/tmp, spool/queue, the "
                    "mailbox (new/ and tmp/)",
                    after_tmp == [] and after_queue == [] and
                    after_copies == 0 and after_mtmp == [],
                    (after_tmp, after_queue, after_copies, after_mtmp))
        # No second fsync of the same file before the next message starts.
        nxt = starts[1] if len(starts) > 1 else len(lines)
        again = [l for l in lines[inj[0] + 1:nxt]
                 if re.match(r"(f(data)?sync|syncfs)\(\d+<%s>\)" %
                             re.escape(fpath), l)]
        r.check(label + ": the failed sync is not retried on that file",
                again == [],
                again[:3])
        r.check(label + ": the same session then delivers a message",
                rep2[0] == 250 and
                wait_until(lambda: len(copies(m, t2)) == 1, 5),
                (rep2, len(copies(m, t2))))
        r.check(label + ": the failed message is never delivered later"
                if rep1[0] != 250 else label + ": delivered exactly once",
                len(copies(m, t1)) == (1 if rep1[0] == 250 else 0),
                len(copies(m, t1)))
        return True
    finally:
        if tr.proc.poll() is None:
            tr.stop()
        tr.remove()


def d3():
    with Maild(users=USERS, env=ONE_WORKER) as m:
        m.wait_log(SCAN_LINE, timeout=20)
        c = RawSMTP(m.port)
        c.reply()
        c.cmd(b"EHLO client.example")
        send_message(c, make_body("prime"))
        c.close()
        points = []
        for sc in ("fsync", "fdatasync", "syncfs"):
            for n in range(1, 16):
                if not d3_run(m, sc, n):
                    break
                points.append("%s#%d" % (sc, n))
        r.check("D3 at least two sync calls of a message were failed (its "
                "content's and its name's): %s" % points, len(points) >= 2,
                points)
        # Only the writes to files: an error on libuv's own eventfd write
        # would make libuv abort, which says nothing about maild.
        tr = Tracer([worker_tid(m)], ["-e", "trace=write"], "d3cal")
        try:
            c = RawSMTP(m.port)
            c.reply()
            c.cmd(b"EHLO client.example")
            send_message(c, make_body("d3-cal-" + uuid.uuid4().hex[:8],
                                      20000))
            c.cmd(b"QUIT")
            c.close()
            tr.stop()
            ws = [l for l in tr.lines() if l.startswith("write(")]
        finally:
            tr.stop()
            tr.remove()
        idx = [i + 1 for i, l in enumerate(ws) if "/data/" in l]
        r.check("D3 calibration: the message and envelope writes",
                len(idx) >= 2, ws)
        for n in idx:
            d3_run(m, "write", n)
        r.check("D3 maild alive", m.proc.poll() is None, m.log()[-1000:])


# ---- D4: low disk space at MAIL FROM ----

def free_octets(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def d4():
    tib = 1 << 40
    probe = Maild(users=USERS, start=False)
    more = free_octets(probe.dir) + tib
    shutil.rmtree(probe.dir, ignore_errors=True)
    with Maild(users=USERS, extra="spool-min-free %d" % more) as m:
        m.wait_log(SCAN_LINE, timeout=20)
        c = RawSMTP(m.port)
        c.reply()
        c.cmd(b"EHLO client.example")
        code, text = c.cmd(b"MAIL FROM:<sender@remote.example>")
        r.check("D4 spool-min-free above the free space: MAIL FROM gets "
                "452 4.3.1", code == 452 and text.startswith(b"4.3.1"),
                (code, text))
        code, _ = c.cmd(b"NOOP")
        r.check("D4 the session goes on (NOOP 250)", code == 250, code)
        code, _ = c.cmd(b"QUIT")
        r.check("D4 QUIT 221", code == 221, code)
        c.close()
        r.check("D4 logged with the client address",
                "client=[127.0.0.1] MAIL refused: spool space low" in m.log(),
                m.log()[-500:])
    # The default reserve, and what the client announces.
    with Maild(users=USERS, extra="max-message-size 1P") as m:
        m.wait_log(SCAN_LINE, timeout=20)
        c = RawSMTP(m.port)
        c.reply()
        c.cmd(b"EHLO client.example")
        big = free_octets(m.data) + tib
        code, text = c.cmd(b"MAIL FROM:<sender@remote.example> SIZE=%d" % big)
        r.check("D4 SIZE= more than the free space: 452 4.3.1",
                code == 452 and text.startswith(b"4.3.1"), (code, text))
        code, text = c.cmd(b"MAIL FROM:<sender@remote.example> SIZE=2000")
        r.check("D4 then a small SIZE= in the same session: 250",
                code == 250, (code, text))
        c.cmd(b"RSET")
        tok = "d4-" + uuid.uuid4().hex[:8]
        rep = send_message(c, make_body(tok))
        c.close()
        r.check("D4 and the message is delivered", rep[0] == 250 and
                wait_until(lambda: len(copies(m, tok)) == 1, 5), rep)


# ---- D5: disk full during DATA ----

def d5_session(m, body, label, token, expect_full=True):
    """Sends `body` minus its final dot, checks the server stays silent,
    then the dot; checks the answer and what is left."""
    c = RawSMTP(m.port)
    c.reply()
    c.cmd(b"EHLO client.example")
    c.cmd(b"MAIL FROM:<sender@remote.example>")
    c.cmd(("RCPT TO:<%s>" % RCPT).encode())
    code, _ = c.cmd(b"DATA")
    c.s.sendall(body)
    early = c.pending(0.5)
    r.check(label + ": no answer before the final dot", not early,
            c.buf or "closed")
    c.s.sendall(b".\r\n")
    rep = c.reply()
    if expect_full:
        r.check(label + ": 452 4.3.1", rep[0] == 452 and
                rep[1].startswith(b"4.3.1"), rep)
    r.check(label + ": no partial file in spool/tmp, spool/queue or the "
            "mailbox", spool_dir(m, "tmp") == [] and
            spool_dir(m, "queue") == [] and copies(m, token) == [] and
            maildir_tmp(m) == [],
            (spool_dir(m, "tmp"), spool_dir(m, "queue"),
             len(copies(m, token)), maildir_tmp(m)))
    code, _ = c.cmd(b"NOOP")
    r.check(label + ": the body was read to its end (NOOP answered 250)",
            code == 250, code)
    return c, rep


def d5_inject():
    with Maild(users=USERS, env=ONE_WORKER) as m:
        m.wait_log(SCAN_LINE, timeout=20)
        # A message over BODY_MEMORY (256 KiB): its first spool write
        # happens in the middle of DATA.
        tok = "d5-mid-" + uuid.uuid4().hex[:8]
        tr = Tracer([worker_tid(m)],
                    ["-e", "trace=write",
                     "-e", "inject=write:error=ENOSPC:when=1"], "d5")
        try:
            c, rep = d5_session(m, make_body(tok, 1024 * 1024),
                                "D5 ENOSPC on the first spool write (mid-DATA)",
                                tok)
            lines = tr.lines()
            r.check("D5 the injected write was a spool file write",
                    any("(INJECTED)" in l and "/spool/tmp/" in l
                        for l in lines), [l for l in lines if "INJ" in l])
            tok2 = "d5-after-" + uuid.uuid4().hex[:8]
            rep2 = send_message(c, make_body(tok2))
            c.close()
            r.check("D5 the same session then delivers a message",
                    rep2[0] == 250 and
                    wait_until(lambda: len(copies(m, tok2)) == 1, 5), rep2)
        finally:
            tr.stop()
            tr.remove()
        # ENOSPC on the envelope write at commit: find its index first.
        size = 100 * 1024
        tr = Tracer([worker_tid(m)], ["-e", "trace=write"], "d5cal")
        try:
            c = RawSMTP(m.port)
            c.reply()
            c.cmd(b"EHLO client.example")
            send_message(c, make_body("d5-cal-" + uuid.uuid4().hex[:8], size))
            c.cmd(b"QUIT")
            c.close()
            tr.stop()
            ws = [l for l in tr.lines() if l.startswith("write(")]
            idx = [i + 1 for i, l in enumerate(ws) if "/spool/tmp/" in l and
                   ".env>" in l]
        finally:
            tr.stop()
            tr.remove()
        if not r.check("D5 calibration found the envelope write", idx, ws):
            return
        tok = "d5-env-" + uuid.uuid4().hex[:8]
        tr = Tracer([worker_tid(m)],
                    ["-e", "trace=write",
                     "-e", "inject=write:error=ENOSPC:when=%d" % idx[0]],
                    "d5env")
        try:
            c, rep = d5_session(m, make_body(tok, size),
                                "D5 ENOSPC on the envelope write", tok)
            c.close()
            r.check("D5 the injected write was the envelope",
                    any("(INJECTED)" in l and ".env>" in l
                        for l in tr.lines()),
                    [l for l in tr.lines() if "INJ" in l])
        finally:
            tr.stop()
            tr.remove()
        r.check("D5 maild alive", m.proc.poll() is None, m.log()[-1000:])


def d5_tmpfs():
    """A real full disk: the data directory on a small tmpfs."""
    # No D4 reserve: the disk must fill up during DATA.
    m = Maild(users=USERS, start=False, extra="spool-min-free 0")
    mounted = False
    try:
        keep = m.data + ".keep"
        shutil.copytree(m.data, keep)
        shutil.rmtree(m.data)
        os.mkdir(m.data, 0o700)
        rc = subprocess.run(["mount", "-t", "tmpfs", "-o",
                             "size=4m,mode=0700", "tmpfs", m.data],
                            capture_output=True, timeout=30)
        if rc.returncode != 0:
            print("skip D5 tmpfs: cannot mount (%s)" %
                  rc.stderr.decode(errors="replace").strip())
            return
        mounted = True
        for name in os.listdir(keep):
            src = os.path.join(keep, name)
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(m.data, name))
            else:
                shutil.copy2(src, os.path.join(m.data, name))
        m.start()
        m.wait_log(SCAN_LINE, timeout=20)
        c = RawSMTP(m.port)
        c.reply()
        c.cmd(b"EHLO client.example")
        send_message(c, make_body("d5-prime"))
        c.close()
        # Leave about 300 KiB free, then send 1 MiB.
        st = os.statvfs(m.data)
        free = st.f_bavail * st.f_frsize
        filler = os.path.join(m.data, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * max(0, free - 300 * 1024))
        tok = "d5-tmpfs-" + uuid.uuid4().hex[:8]
        c = RawSMTP(m.port)
        c.reply()
        c.cmd(b"EHLO client.example")
        code, text = c.cmd(b"MAIL FROM:<sender@remote.example>")
        if code == 452:
            print("note D5 tmpfs: 452 already at MAIL FROM (D4 low-space "
                  "check); the DATA case cannot be reached this way")
            r.check("D5 tmpfs: a refusal for space is 452 4.3.1",
                    text.startswith(b"4.3.1"), text)
            c.close()
        else:
            c.cmd(b"RSET")
            c.close()
            c, rep = d5_session(m, make_body(tok, 1024 * 1024),
                                "D5 real full tmpfs", tok)
            os.unlink(filler)
            tok2 = "d5-tmpfs-after-" + uuid.uuid4().hex[:8]
            rep2 = send_message(c, make_body(tok2))
            c.close()
            r.check("D5 tmpfs: after space is freed the same session "
                    "delivers", rep2[0] == 250 and
                    wait_until(lambda: len(copies(m, tok2)) == 1, 5), rep2)
        r.check("D5 tmpfs: maild alive", m.proc.poll() is None,
                m.log()[-1000:])
    finally:
        m.stop()
        if mounted:
            if subprocess.run(["umount", m.data], capture_output=True,
                              timeout=30).returncode != 0:
                subprocess.run(["umount", "-l", m.data], capture_output=True,
                               timeout=30)
        shutil.rmtree(m.dir, ignore_errors=True)


# ---- D6: what a start finds in the spool ----

def committed_by_kill(m, token):
    """Sends a message and kills maild at the worker's first linkat: after
    the message is in queue/, before it is linked into the mailbox.
    Returns the id left in spool/queue, or None."""
    tr = Tracer([worker_tid(m)], ["-e", "trace=linkat",
                                  "-e", "inject=linkat:signal=KILL:when=1"],
                "d6")
    try:
        got250, reply, _ = d1_session(m.port, make_body(token))
        wait_until(lambda: m.proc.poll() is not None, 10)
    finally:
        tr.stop()
        tr.remove()
    envs = [n for n in spool_dir(m, "queue") if n.endswith(".env")]
    if m.proc.poll() is None or len(envs) != 1 or copies(m, token):
        return None
    return envs[0][:-4]


def d6():
    with Maild(users=USERS, env=ONE_WORKER) as m:
        m.wait_log(SCAN_LINE, timeout=20)
        c = RawSMTP(m.port)
        c.reply()
        c.cmd(b"EHLO client.example")
        send_message(c, make_body("prime"))
        c.close()
        # Two committed messages, each left by a run killed after commit.
        # One stays valid; the other's envelope gets a flipped octet.
        good_tok = "d6-good-" + uuid.uuid4().hex[:8]
        good = committed_by_kill(m, good_tok)
        if not r.check("D6 a run killed after commit left a message in "
                       "spool/queue", good is not None, spool_dir(m, "queue")):
            return
        q = os.path.join(m.data, "spool", "queue")
        t = os.path.join(m.data, "spool", "tmp")
        park = os.path.join(m.dir, "park")
        os.mkdir(park)
        for n in os.listdir(q):
            shutil.move(os.path.join(q, n), park)
        for n in os.listdir(t):
            os.unlink(os.path.join(t, n))
        restart(m)
        bad_tok = "d6-badcrc-" + uuid.uuid4().hex[:8]
        bad = committed_by_kill(m, bad_tok)
        if not r.check("D6 a second committed message", bad is not None,
                       spool_dir(m, "queue")):
            return
        for n in os.listdir(t):
            os.unlink(os.path.join(t, n))
        for n in os.listdir(park):
            shutil.move(os.path.join(park, n), q)
        with open(os.path.join(q, good + ".env"), "rb") as f:
            good_env = f.read()
        # Corrupt: one octet of the envelope flipped (the CRC no longer
        # matches).
        p = os.path.join(q, bad + ".env")
        with open(p, "rb") as f:
            env = bytearray(f.read())
        env[len(env) // 2] ^= 0x20
        with open(p, "wb") as f:
            f.write(env)
        # Truncated: half an envelope (a torn write), with its .msg.
        stamp = int(time.time() * 1e6)
        ids = ["%016x%08x" % (stamp + i, 0xabc00000 + i) for i in range(4)]
        trunc_tok = "d6-trunc-" + uuid.uuid4().hex[:8]
        with open(os.path.join(q, ids[0] + ".msg"), "wb") as f:
            f.write(make_body(trunc_tok))
        with open(os.path.join(q, ids[0] + ".env"), "wb") as f:
            f.write(good_env[:len(good_env) // 2])
        # Empty envelope.
        empty_tok = "d6-empty-" + uuid.uuid4().hex[:8]
        with open(os.path.join(q, ids[3] + ".msg"), "wb") as f:
            f.write(make_body(empty_tok))
        open(os.path.join(q, ids[3] + ".env"), "wb").close()
        # Orphan .msg (no envelope).
        orphan_tok = "d6-orphan-" + uuid.uuid4().hex[:8]
        with open(os.path.join(q, ids[1] + ".msg"), "wb") as f:
            f.write(make_body(orphan_tok))
        # Files in tmp/: an unfinished message and envelope.
        tmp_tok = "d6-tmp-" + uuid.uuid4().hex[:8]
        with open(os.path.join(t, ids[2] + ".msg"), "wb") as f:
            f.write(make_body(tmp_tok)[:500])
        with open(os.path.join(t, ids[2] + ".env"), "wb") as f:
            f.write(good_env)
        # A name that is no spool file.
        with open(os.path.join(q, "stray-file.txt"), "wb") as f:
            f.write(b"not a spool file\n")
        junk = sorted(set(os.listdir(q)) - {good + ".env", good + ".msg"})
        junk_tmp = sorted(os.listdir(t))
        restart(m)
        r.check("D6 maild runs after the scan", m.proc.poll() is None,
                m.log()[-2000:])
        got = wait_until(lambda: len(copies(m, good_tok)) == 1, 10)
        r.check("D6 the valid message is delivered once",
                len(copies(m, good_tok)) == 1, len(copies(m, good_tok)))
        r.check("D6 the delivered copy is intact",
                all(body_of(g) == make_body(good_tok)
                    for g in copies(m, good_tok)), got)
        for tok in (bad_tok, trunc_tok, empty_tok, orphan_tok, tmp_tok):
            r.check("D6 %s never delivered" % tok.rsplit("-", 1)[0],
                    copies(m, tok) == [], len(copies(m, tok)))
        corrupt = spool_dir(m, "corrupt")
        for n in junk + junk_tmp:
            r.check("D6 %s set aside into spool/corrupt" % n,
                    any(c == n or c.startswith(n + ".") for c in corrupt),
                    corrupt)
            # One line per finding: a .msg set aside with its bad .env is
            # named by the envelope's line.
            r.check("D6 %s set aside is logged" % n,
                    re.search(r"spool: set aside %s[. ]" %
                              re.escape(n.rsplit(".", 1)[0]),
                              m.log()) is not None,
                    [l for l in m.log().splitlines() if "set aside" in l])
        # The entry goes once the delivery is done, a moment after the
        # copy shows in the mailbox.
        wait_until(lambda: not spool_dir(m, "queue"), 10)
        r.check("D6 spool tmp/ and queue/ empty",
                spool_dir(m, "tmp") == [] and spool_dir(m, "queue") == [],
                (spool_dir(m, "tmp"), spool_dir(m, "queue")))
        # The set-aside files are kept as they were, for an operator.
        p = os.path.join(m.data, "spool", "corrupt", bad + ".env")
        r.check("D6 the corrupt envelope is kept unchanged",
                os.path.exists(p) and open(p, "rb").read() == bytes(env),
                corrupt)
        # A second start finds nothing more to do and delivers nothing twice.
        restart(m)
        r.check("D6 a second restart delivers nothing again",
                len(copies(m, good_tok)) == 1 and
                all(copies(m, tk) == [] for tk in (bad_tok, trunc_tok,
                                                   empty_tok, orphan_tok,
                                                   tmp_tok)),
                len(copies(m, good_tok)))
        tok = "d6-after-" + uuid.uuid4().hex[:8]
        c = RawSMTP(m.port)
        c.reply()
        c.cmd(b"EHLO client.example")
        rep = send_message(c, make_body(tok))
        c.close()
        r.check("D6 a new message is accepted and delivered",
                rep[0] == 250 and wait_until(
                    lambda: len(copies(m, tok)) == 1, 5), rep)


def main():
    if not os.access(STRACE, os.X_OK):
        print("skip: strace not installed (apt package strace)")
        print("0 passed, 0 failed")
        return 0
    only = sys.argv[1:]
    for name, fn in (("D2", d2), ("D3", d3), ("D4", d4), ("D5", d5_inject),
                     ("D5 tmpfs", d5_tmpfs), ("D6", d6), ("D1", d1)):
        if only and name.split()[0] not in only:
            continue
        t0 = time.time()
        try:
            fn()
        except Exception as e:  # a crash of the test is a failure
            r.check("%s ran to its end" % name, False, repr(e))
        print("     (%s took %.1f s)" % (name, time.time() - t0), flush=True)
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
