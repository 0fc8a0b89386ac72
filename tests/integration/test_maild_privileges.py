#!/usr/bin/env python3
"""Privileges of the real daemon (TESTPLAN X1, X2).

X1  started as root with `user nobody`: once it serves, /proc/PID/status
    shows the real, effective, saved and filesystem uid and gid all equal
    to nobody's (so it cannot setuid back to root), no supplementary group
    0, no capabilities; it still delivers (the data directory was given to
    nobody) and still reloads its users on SIGHUP. Skipped unless root.
X2  under `strace -f -e trace=execve,execveat,...` through a whole session
    (EHLO, a message, a refused recipient, an unknown command, QUIT) and a
    SIGHUP reload: the only execve is the one that starts maild, and every
    clone makes a thread, never a child process.
"""
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from maildtest import RawSMTP, stop_wrapped, wait_until, MAILD, Maild, Results  # noqa: E402

RCPT = "alice@example.test"
USERS = {RCPT: "pw"}
STRACE = shutil.which("strace") or "/usr/bin/strace"

r = Results()


def session(port, token):
    """EHLO, one message, a refused recipient, an unknown command, QUIT.
    Returns the codes seen."""
    c = RawSMTP(port)
    codes = [c.reply()[0], c.cmd(b"EHLO client.example")[0],
             c.cmd(b"MAIL FROM:<sender@remote.example>")[0],
             c.cmd(("RCPT TO:<%s>" % RCPT).encode())[0],
             c.cmd(b"RCPT TO:<nobody-here@example.test>")[0],
             c.cmd(b"DATA")[0]]
    c.s.sendall(("Subject: %s\r\n\r\nhello; | /bin/sh -c id\r\n.\r\n"
                 % token).encode())
    codes.append(c.reply()[0])
    codes.append(c.cmd(b"XEXEC /bin/true")[0])
    codes.append(c.cmd(b"QUIT")[0])
    c.close()
    return codes


EXPECTED = [220, 250, 250, 250, 550, 354, 250, 500, 221]


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def x1():
    if os.geteuid() != 0:
        print("skip X1: not running as root, so there is no privilege to "
              "drop")
        return
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        print("skip X1: no user 'nobody' on this system")
        return
    uid, gid = nobody.pw_uid, nobody.pw_gid
    m = Maild(users=USERS, extra="user nobody", start=False)
    try:
        # The tree above data-dir is only traversed, like /var/lib.
        os.chmod(m.dir, 0o711)
        m.start()
        pid = m.proc.pid
        st = proc_status(pid)
        uids = [int(x) for x in st.get("Uid", [])]
        gids = [int(x) for x in st.get("Gid", [])]
        r.check("X1 Uid real/effective/saved/fs are all nobody's (%d): %s" %
                (uid, uids), uids == [uid] * 4, uids)
        r.check("X1 Gid real/effective/saved/fs are all nobody's (%d): %s" %
                (gid, gids), gids == [gid] * 4, gids)
        r.check("X1 all uids and gids non-zero",
                uids and gids and 0 not in uids and 0 not in gids,
                (uids, gids))
        groups = [int(x) for x in st.get("Groups", [])]
        r.check("X1 no supplementary group 0 (root's groups dropped): %s" %
                groups, 0 not in groups and set(groups) <= {gid}, groups)
        for cap in ("CapPrm", "CapEff", "CapAmb"):
            v = st.get(cap, ["?"])[0]
            r.check("X1 %s is empty (%s)" % (cap, v),
                    v != "?" and int(v, 16) == 0, v)
        # Every thread, not just the main one (the worker pool too).
        bad = []
        for t in os.listdir("/proc/%d/task" % pid):
            ts = proc_status_task(pid, int(t))
            if [int(x) for x in ts.get("Uid", [])] != [uid] * 4:
                bad.append((t, ts.get("Uid")))
        r.check("X1 every thread runs as nobody", bad == [], bad)
        r.check("X1 the log says it dropped root",
                re.search(r"running as nobody \(uid %d\)" % uid, m.log())
                is not None, m.log()[-800:])
        codes = session(m.port, "x1-priv")
        r.check("X1 a session works: %s" % codes, codes == EXPECTED, codes)
        new = os.path.join(m.mailbox_dir(RCPT), "new")
        got = wait_until(lambda: os.path.isdir(new) and os.listdir(new), 10)
        r.check("X1 the message is delivered", got, codes)
        if got:
            f = os.path.join(new, os.listdir(new)[0])
            r.check("X1 the delivered file belongs to nobody",
                    os.stat(f).st_uid == uid, os.stat(f).st_uid)
        owners = set()
        for root, dirs, files in os.walk(m.data):
            for n in dirs + files:
                owners.add(os.lstat(os.path.join(root, n)).st_uid)
        r.check("X1 everything under the data directory belongs to nobody",
                owners == {uid}, owners)
        # Still able to read its own files after the drop.
        n = len(re.findall("reloaded users", m.log()))
        m.signal(signal.SIGHUP)
        r.check("X1 SIGHUP reload works without root",
                m.wait_log("reloaded users", timeout=10, count=n + 1),
                m.log()[-800:])
        uids = [int(x) for x in proc_status(pid).get("Uid", [])]
        r.check("X1 still nobody after the session and the reload",
                uids == [uid] * 4, uids)
        r.check("X1 SIGTERM exits 0", m.stop() == 0, m.log()[-800:])
    finally:
        m.stop()
        shutil.rmtree(m.dir, ignore_errors=True)


def proc_status_task(pid, tid):
    out = {}
    try:
        with open("/proc/%d/task/%d/status" % (pid, tid)) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.split()
    except OSError:
        pass
    return out


def x2():
    if not os.access(STRACE, os.X_OK):
        print("skip X2: strace not installed (apt package strace)")
        return
    log = "/tmp/maild-x2-%d.log" % os.getpid()
    opts = os.environ.get("ASAN_OPTIONS", "")
    # LeakSanitizer cannot run under ptrace.
    env = {"ASAN_OPTIONS": (opts + ":" if opts else "") + "detect_leaks=0"}
    wrapper = [STRACE, "-f", "-qq", "-s", "200", "-o", log,
               "-e", "trace=execve,execveat,fork,vfork,clone,clone3"]
    try:
        with Maild(users=USERS, wrapper=wrapper, env=env) as m:
            codes = session(m.port, "x2-exec")
            r.check("X2 the session: %s" % codes, codes == EXPECTED, codes)
            n = len(re.findall("reloaded users", m.log()))
            for k in open("/proc/%d/task/%d/children" %
                          (m.proc.pid, m.proc.pid)).read().split():
                os.kill(int(k), signal.SIGHUP)
            r.check("X2 a SIGHUP reload",
                    m.wait_log("reloaded users", timeout=10, count=n + 1),
                    m.log()[-500:])
            codes = session(m.port, "x2-exec-2")
            r.check("X2 a second session after the reload",
                    codes == EXPECTED, codes)
            r.check("X2 maild stops cleanly", stop_wrapped(m) == 0,
                    m.log()[-800:])
        with open(log, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
        execs = [l for l in lines if re.match(r"^\d+\s+execve(at)?\(", l)]
        r.check("X2 exactly one execve: maild itself",
                len(execs) == 1 and
                ('"%s"' % os.path.abspath(MAILD) in execs[0] or
                 '"%s"' % MAILD in execs[0]), execs[:5])
        clones = [l for l in lines if re.match(r"^\d+\s+(clone3?|v?fork)\(",
                                               l)]
        procs = [l for l in clones if "CLONE_THREAD" not in l]
        r.check("X2 no child process: every clone is a thread (%d clones)"
                % len(clones), procs == [], procs[:5])
    finally:
        try:
            os.unlink(log)
        except OSError:
            pass


def main():
    for name, fn in (("X1", x1), ("X2", x2)):
        t0 = time.time()
        try:
            fn()
        except Exception as e:
            r.check("%s ran to its end" % name, False, repr(e))
        print("     (%s took %.1f s)" % (name, time.time() - t0), flush=True)
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
