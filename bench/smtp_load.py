#!/usr/bin/env python3
"""smtp_load.py -- maild against Postfix under SMTP load, side by side.

Runs Postfix's smtp-source against maild and, when Postfix is installed,
against a private Postfix instance set up the same way (mail for one local
domain delivered to Maildir, fsync on; see bench/postfix_instance.sh), both
on 127.0.0.1 ports chosen at run time. For every case (concurrency x
message size) both servers run alternately, A B A B..., several times, and
the script reports the median and min-max of

  msgs/s     messages per second until the last one is in the Maildir
             (files counted in new/), from the start of smtp-source;
  250/s      messages per second until smtp-source got its last 250 and
             quit (what an acceptance-only benchmark would report);
  CPU ms/msg user+system CPU of all the server's processes (utime+stime,
             plus cutime+cstime so processes that exited and were reaped
             during the run still count), from /proc/PID/stat, before and
             after the run, divided by the number of messages;
  peak PSS   the largest sum of Pss (/proc/PID/smaps_rollup) over all the
             server's processes (maild: its one process; Postfix: master
             and every process below it: smtpd, cleanup, qmgr, virtual,
             trivial-rewrite, ...), sampled every 100 ms during the run.

One new connection per message by default (smtp-source without -d: what MX
traffic looks like); --persistent sends all of a session's messages over
one connection (smtp-source -d).

Every run delivers to a mailbox of its own, so a late or duplicate delivery
is seen instead of being counted in the next run; delivered files are
deleted after each run. Lost messages (the count in new/ stops short), extra
deliveries and smtp-source failures are reported per run.

Must run as root for Postfix (its master needs root); without root, or
without Postfix, only maild is measured and the script says so. Without
smtp-source (it comes with the postfix package) a built-in Python load
generator with the same behaviour is used, and the script says so.

Everything lives in one temporary directory that is removed at the end,
also on Ctrl-C, SIGTERM and errors; every process started is stopped.

  bench/smtp_load.py --quick            # about a minute: 1 run, few messages
  bench/smtp_load.py                    # full: 5 runs per server and case
  bench/smtp_load.py --runs 3 --concurrency 50 --sizes 1024
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PF_INSTANCE = os.path.join(HERE, "postfix_instance.sh")
CLK_TCK = os.sysconf("SC_CLK_TCK")

DOMAIN = "example.test"
SENDER = "load@example.net"
HOSTNAME = "mx.example.test"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------- /proc

def proc_table():
    """{pid: (ppid, cpu ticks)} for every process; cpu ticks are
    utime + stime + cutime + cstime."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                data = f.read()
        except OSError:
            continue
        rp = data.rfind(b")")
        fields = data[rp + 2:].split()
        try:
            # fields[0] is field 3 (state): ppid is field 4, utime..cstime
            # are fields 14..17.
            table[int(name)] = (int(fields[1]),
                                sum(int(x) for x in fields[11:15]))
        except (IndexError, ValueError):
            continue
    return table


def process_tree(root, table):
    """root and all its descendants that are in table."""
    if root is None or root not in table:
        return []
    kids = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, stack = [], [root]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(kids.get(p, ()))
    return out


def cpu_ticks(root):
    """CPU ticks of root's process tree. A child that exits is reaped by its
    parent (Postfix's master), which adds its times to its own cutime and
    cstime: so the sum loses nothing when processes come and go."""
    table = proc_table()
    return sum(table[p][1] for p in process_tree(root, table))


def pss_kib(pid):
    """Proportional set size of one process in KiB (0 if it is gone)."""
    try:
        with open("/proc/%d/smaps_rollup" % pid, "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
        return 0
    except FileNotFoundError:
        pass
    except OSError:
        return 0
    total = 0  # kernels before 4.14: sum the per-mapping lines
    try:
        with open("/proc/%d/smaps" % pid, "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    total += int(line.split()[1])
    except OSError:
        return 0
    return total


class Sampler(threading.Thread):
    """Samples the summed PSS of a process tree until stopped."""

    def __init__(self, root, interval=0.1):
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peak_kib = 0
        self.peak_procs = 0
        self.samples = 0
        self._halt = threading.Event()

    def sample(self):
        pids = process_tree(self.root, proc_table())
        total = sum(pss_kib(p) for p in pids)
        self.peak_kib = max(self.peak_kib, total)
        self.peak_procs = max(self.peak_procs, len(pids))
        self.samples += 1

    def run(self):
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(timeout=10)
        self.sample()  # one last look after the run


# --------------------------------------------------------- helpers

def free_port():
    """A free TCP port on 127.0.0.1 (bind port 0, read it, close)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def filesystem(path):
    """'ext4 on /dev/vda (rw,relatime,...)' for the mount holding path."""
    path = os.path.realpath(path)
    best = None
    try:
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, fstype, opts = line.split()[:4]
                mnt = mnt.replace("\\040", " ")
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) \
                        and (best is None or len(mnt) > len(best[1])):
                    best = (dev, mnt, fstype, opts)
    except OSError:
        return "unknown filesystem"
    if best is None:
        return "unknown filesystem"
    return "%s on %s mounted at %s (%s)" % (best[2], best[0], best[1],
                                           best[3])


def count_files(d):
    try:
        with os.scandir(d) as it:
            return sum(1 for _ in it)
    except FileNotFoundError:
        return 0


def clear_dir(d):
    try:
        with os.scandir(d) as it:
            for e in it:
                try:
                    os.unlink(e.path)
                except OSError:
                    pass
    except FileNotFoundError:
        pass


def stop_process(proc, timeout=15):
    """SIGTERM, then SIGKILL after timeout; by pid, only our own child."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass


# --------------------------------------------------------- servers

class Maild:
    name = "maild"

    def __init__(self, workdir, build, mailboxes, env=None):
        self.env = dict(os.environ, **(env or {}))
        self.dir = os.path.join(workdir, "maild")
        self.maild = os.path.join(build, "daemon", "maild")
        self.maildctl = os.path.join(build, "daemon", "maildctl")
        for exe in (self.maild, self.maildctl):
            if not os.access(exe, os.X_OK):
                raise SystemExit("no %s: build maild first (see bench/README.md)"
                                 % exe)
        os.makedirs(self.dir)
        self.data = os.path.join(self.dir, "data")
        self.conf = os.path.join(self.dir, "maild.conf")
        with open(self.conf, "w") as f:
            f.write("hostname %s\n"
                    "domains %s\n"
                    "data-dir %s\n"
                    "listen smtp 127.0.0.1:0\n"
                    "max-connections 1000\n"
                    "max-connections-per-ip 1000\n"
                    "log stderr\n" % (HOSTNAME, DOMAIN, self.data))
        for lp in mailboxes:
            r = subprocess.run([self.maildctl, "-f", self.conf, "user", "add",
                                "%s@%s" % (lp, DOMAIN), "--password-stdin"],
                               input="bench-password\n", text=True,
                               capture_output=True, timeout=60)
            if r.returncode != 0:
                raise SystemExit("maildctl user add: " + r.stderr.strip())
        self.proc = None
        self.port = None

    def version(self):
        """'maild (PATH built DATE; source tree at COMMIT)': the commit is
        the checkout's now, which the binary may predate."""
        try:
            r = subprocess.run(["git", "-C", ROOT, "describe", "--always",
                                "--dirty"], capture_output=True, text=True,
                               timeout=10)
            rev = r.stdout.strip() if r.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired):
            rev = ""
        built = time.strftime("%Y-%m-%d %H:%M UTC",
                              time.gmtime(os.stat(self.maild).st_mtime))
        return "maild (%s built %s%s)" % (
            self.maild, built, "; source tree at " + rev if rev else "")

    def start(self):
        out_path = os.path.join(self.dir, "stdout.log")
        self.out = open(out_path, "wb")
        self.err = open(os.path.join(self.dir, "maild.log"), "ab")
        self.proc = subprocess.Popen([self.maild, "-d", "-f", self.conf],
                                     stdout=self.out, stderr=self.err,
                                     stdin=subprocess.DEVNULL, env=self.env,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with open(out_path, "rb") as f:
                for line in f.read().decode(errors="replace").splitlines():
                    if "smtp listening on" in line:
                        self.port = int(line.rsplit(":", 1)[1])
                        return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("maild did not start; see " + self.err.name)

    def stop(self):
        stop_process(self.proc)
        self.proc = None
        for f in (getattr(self, "out", None), getattr(self, "err", None)):
            if f:
                f.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def root_pid(self):
        return self.proc.pid if self.proc else None

    def newdir(self, lp):
        return os.path.join(self.data, "mail", DOMAIN, lp, "new")

    def logfile(self):
        return os.path.join(self.dir, "maild.log")

    def teardown(self):
        self.stop()


class Postfix:
    name = "postfix"

    def __init__(self, workdir, mailboxes, env=None):
        """env: extra environment for postfix_instance.sh setup (e.g.
        POSTFIX_TLS_CERT and POSTFIX_TLS_KEY, used by tls_load.py)."""
        self.dir = os.path.join(workdir, "postfix")
        self.port = free_port()
        self.running = False
        r = subprocess.run(["sh", PF_INSTANCE, "setup", self.dir,
                            str(self.port), DOMAIN] + list(mailboxes),
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, **(env or {})))
        if r.returncode != 0:
            raise RuntimeError("postfix_instance.sh setup: "
                               + (r.stderr or r.stdout).strip())

    def version(self):
        r = subprocess.run(["postconf", "-d", "-h", "mail_version"],
                           capture_output=True, text=True, timeout=30)
        return "Postfix " + r.stdout.strip()

    def _inst(self, *args, timeout=60):
        return subprocess.run(["sh", PF_INSTANCE] + list(args) + [self.dir],
                              capture_output=True, text=True, timeout=timeout)

    def start(self):
        r = self._inst("start")
        if r.returncode != 0:
            raise RuntimeError("postfix start: " + r.stderr.strip())
        self.running = True
        self.master = int(self._inst("pid").stdout.strip())
        # Wait until smtpd's port answers.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("postfix does not listen on %d" % self.port)

    def stop(self):
        if self.running:
            self._inst("stop")
            self.running = False

    def alive(self):
        return self._inst("pid").returncode == 0

    def root_pid(self):
        return self.master

    def newdir(self, lp):
        return os.path.join(self.dir, "mail", DOMAIN, lp, "new")

    def logfile(self):
        return os.path.join(self.dir, "log", "maillog")

    def teardown(self):
        self._inst("teardown", timeout=120)
        self.running = False


# ---------------------------------------------------- load generator

def source_command(args, port, conc, nmsg, size, rcpt):
    if args.smtp_source:
        cmd = [args.smtp_source, "-s", str(conc), "-m", str(nmsg),
               "-l", str(size), "-f", SENDER, "-t", rcpt]
        if args.persistent:
            cmd.append("-d")
        return cmd + ["127.0.0.1:%d" % port]
    cmd = [sys.executable, os.path.abspath(__file__), "--source",
           "127.0.0.1:%d" % port, "-s", str(conc), "-m", str(nmsg),
           "-l", str(size), "-f", SENDER, "-t", rcpt]
    if args.persistent:
        cmd.append("-d")
    return cmd


def py_source(argv):
    """Fallback load generator, like smtp-source: -s sessions in parallel,
    -m messages in all, -l payload octets, one connection per message
    unless -d. Exits 1 on the first unexpected reply."""
    p = argparse.ArgumentParser(prog="smtp_load.py --source")
    p.add_argument("--source", required=True)
    p.add_argument("-s", type=int, default=1)
    p.add_argument("-m", type=int, default=1)
    p.add_argument("-l", type=int, default=0)
    p.add_argument("-f", default=SENDER)
    p.add_argument("-t", required=True)
    p.add_argument("-d", action="store_true")
    a = p.parse_args(argv)
    host, port = a.source.rsplit(":", 1)
    lines, left, n = [], a.l, 0
    while left > 0:
        n += 1
        line = (str(n) + "X" * 79)[:min(80, left)]
        lines.append(line)
        left -= len(line) + 2
    payload = "\r\n".join(lines).encode() + b"\r\n"
    lock = threading.Lock()
    state = {"next": 0, "failed": None}

    def take():
        with lock:
            if state["failed"] or state["next"] >= a.m:
                return None
            state["next"] += 1
            return state["next"]

    def reply(f, want):
        while True:
            line = f.readline(2048)
            if not line:
                raise RuntimeError("connection closed")
            if line[3:4] != b"-":
                break
        if not line.startswith(want):
            raise RuntimeError("unexpected reply: %r" % line)

    def session():
        sock = f = None
        try:
            while True:
                i = take()
                if i is None:
                    break
                if sock is None:
                    sock = socket.create_connection((host, int(port)), 60)
                    f = sock.makefile("rb")
                    reply(f, b"220")
                    sock.sendall(b"HELO load.example.net\r\n")
                    reply(f, b"250")
                msg = ("From: <%s>\r\nTo: <%s>\r\nMessage-Id: <%d.%d@load>"
                       "\r\n\r\n" % (a.f, a.t, os.getpid(), i)).encode()
                sock.sendall(b"MAIL FROM:<%s>\r\n" % a.f.encode())
                reply(f, b"250")
                sock.sendall(b"RCPT TO:<%s>\r\n" % a.t.encode())
                reply(f, b"250")
                sock.sendall(b"DATA\r\n")
                reply(f, b"354")
                sock.sendall(msg + payload + b".\r\n")
                reply(f, b"250")
                if not a.d:
                    sock.sendall(b"QUIT\r\n")
                    reply(f, b"221")
                    f.close()
                    sock.close()
                    sock = f = None
            if sock is not None:
                sock.sendall(b"QUIT\r\n")
                reply(f, b"221")
        except Exception as e:  # report the first failure, stop all
            with lock:
                state["failed"] = state["failed"] or str(e)
        finally:
            if f:
                f.close()
            if sock:
                sock.close()

    threads = [threading.Thread(target=session) for _ in range(a.s)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if state["failed"]:
        print("smtp_load.py --source: " + state["failed"], file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------- a run

class Case:
    def __init__(self, conc, size, nmsg):
        self.conc, self.size, self.nmsg = conc, size, nmsg

    def label(self):
        return "c=%d %s" % (self.conc, human_size(self.size))


def human_size(n):
    if n % 1024 == 0:
        return "%d KiB" % (n // 1024)
    return "%d B" % n


def run_once(args, server, case, mailbox, nmsg):
    """One batch of nmsg messages into mailbox; returns a result dict."""
    rcpt = "%s@%s" % (mailbox, DOMAIN)
    newdir = server.newdir(mailbox)
    if count_files(newdir):
        raise RuntimeError("%s is not empty before its run" % newdir)
    root = server.root_pid()
    cpu0 = cpu_ticks(root)
    sampler = Sampler(root, args.sample_interval)
    sampler.sample()
    sampler.start()
    src_err = os.path.join(args.workdir, "source.err")
    with open(src_err, "wb") as errf:
        t0 = time.monotonic()
        src = subprocess.Popen(source_command(args, server.port, case.conc,
                                              nmsg, case.size, rcpt),
                               stdout=subprocess.DEVNULL, stderr=errf,
                               stdin=subprocess.DEVNULL,
                               start_new_session=True)
        args.live_source = src
        deadline = t0 + args.timeout_base + nmsg / args.min_rate
        t_acc = t_del = None
        count, last_change = 0, t0
        try:
            while True:
                now = time.monotonic()
                if t_acc is None and src.poll() is not None:
                    t_acc = now
                c = count_files(newdir)
                if c != count:
                    count, last_change = c, now
                if c >= nmsg:
                    t_del = now
                    break
                if now > deadline:
                    break
                if (t_acc is not None
                        and now - max(last_change, t_acc) > args.stall):
                    break
                time.sleep(args.poll)
            # smtp-source is done when all are delivered, or soon after.
            try:
                src.wait(timeout=30)
            except subprocess.TimeoutExpired:
                src.kill()
                src.wait(timeout=10)
            if t_acc is None:
                t_acc = time.monotonic()
        finally:
            if src.poll() is None:
                src.kill()
                src.wait(timeout=10)
            args.live_source = None
    # Let the server finish its bookkeeping (queue file removal, closing
    # connections) so its CPU for these messages is all counted: wait until
    # its CPU time stops moving for 0.3 s (at most 3 s).
    cpu1, still, q_end = cpu_ticks(root), time.monotonic(), time.monotonic() + 3
    while time.monotonic() < q_end:
        time.sleep(0.1)
        c = cpu_ticks(root)
        if c != cpu1:
            cpu1, still = c, time.monotonic()
        elif time.monotonic() - still >= 0.3:
            break
    sampler.stop()
    final = count_files(newdir)
    with open(src_err, "rb") as f:
        err_text = f.read().decode(errors="replace").strip()
    problems = []
    if src.returncode != 0:
        problems.append("load generator exit %d: %s"
                        % (src.returncode, err_text[-300:]))
    if final < nmsg:
        problems.append("%d of %d messages delivered" % (final, nmsg))
    elif final > nmsg:
        problems.append("%d deliveries for %d messages (duplicates)"
                        % (final, nmsg))
    if not server.alive():
        problems.append("server is not running any more")
    if args.delete_each_run:
        clear_dir(newdir)
    res = {
        "server": server.name, "conc": case.conc, "size": case.size,
        "messages": nmsg, "delivered": final,
        "accept_s": t_acc - t0,
        "deliver_s": (t_del - t0) if t_del else None,
        "msgs_per_s": (nmsg / (t_del - t0)) if t_del else None,
        "accept_per_s": nmsg / (t_acc - t0) if t_acc > t0 else None,
        "cpu_ms_per_msg": (cpu1 - cpu0) * 1000.0 / CLK_TCK / nmsg,
        "peak_pss_mib": sampler.peak_kib / 1024.0,
        "peak_procs": sampler.peak_procs,
        "pss_samples": sampler.samples,
        "problems": problems,
    }
    args.final_counts[(server.name, mailbox)] = (
        0 if args.delete_each_run else final)
    return res


def fmt_run(r):
    s = ("  %-7s %-13s %6.0f msgs/s delivered  %6.0f 250/s  "
         "%6.2f CPU ms/msg  %6.1f MiB PSS (%d procs)"
         % (r["server"], "c=%d %s" % (r["conc"], human_size(r["size"])),
            r["msgs_per_s"] or 0, r["accept_per_s"] or 0,
            r["cpu_ms_per_msg"], r["peak_pss_mib"], r["peak_procs"]))
    if r["problems"]:
        s += "  PROBLEM: " + "; ".join(r["problems"])
    return s


# ---------------------------------------------------------- summary

def med_range(vals, fmt):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    m = statistics.median(vals)
    if len(vals) == 1:
        return fmt % m
    return (fmt + " (" + fmt + "–" + fmt + ")") % (m, min(vals), max(vals))


def summarize(results, servers, cases):
    by = {}
    for r in results:
        by.setdefault((r["server"], r["conc"], r["size"]), []).append(r)
    metrics = [("msgs/s delivered", "msgs_per_s", "%.0f"),
               ("250/s", "accept_per_s", "%.0f"),
               ("CPU ms/msg", "cpu_ms_per_msg", "%.2f"),
               ("peak PSS MiB", "peak_pss_mib", "%.1f")]
    out = []
    names = [s.name for s in servers]
    head = "| case | server | " + " | ".join(m[0] for m in metrics) + " |"
    out.append(head)
    out.append("|" + "---|" * (2 + len(metrics)))
    for c in cases:
        for n in names:
            rs = by.get((n, c.conc, c.size), [])
            row = ["%s" % c.label(), n]
            for _, key, fmt in metrics:
                row.append(med_range([r[key] for r in rs], fmt))
            bad = sum(1 for r in rs if r["problems"])
            if bad:
                row[1] += " (%d of %d runs had problems)" % (bad, len(rs))
            out.append("| " + " | ".join(row) + " |")
    if len(names) == 2:
        out.append("")
        out.append("Ratios of medians (maild / Postfix): throughput until "
                   "delivered; CPU per message; peak PSS.")
        out.append("")
        out.append("| case | msgs/s | CPU/msg | peak PSS |")
        out.append("|---|---|---|---|")
        for c in cases:
            def med(n, key):
                vals = [r[key] for r in by.get((n, c.conc, c.size), [])
                        if r[key] is not None]
                return statistics.median(vals) if vals else None
            cells = []
            for key in ("msgs_per_s", "cpu_ms_per_msg", "peak_pss_mib"):
                a, b = med(names[0], key), med(names[1], key)
                cells.append("%.2f×" % (a / b) if a and b else "-")
            out.append("| %s | %s |" % (c.label(), " | ".join(cells)))
    return "\n".join(out)


# ------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(
        description="maild vs Postfix: messages delivered to Maildir per "
                    "second, CPU per message, peak PSS.")
    p.add_argument("--quick", action="store_true",
                   help="few messages, one run per server and case, no "
                        "warm-up (about a minute)")
    p.add_argument("--runs", type=int,
                   help="runs per server and case (default 5; quick: 1)")
    p.add_argument("--concurrency", default="1,10,50",
                   help="comma-separated session counts (default 1,10,50)")
    p.add_argument("--sizes", default="1024,102400",
                   help="comma-separated payload sizes in octets "
                        "(default 1024,102400)")
    p.add_argument("--messages", type=int,
                   help="messages per run for sizes up to 10 KiB "
                        "(default 2000; quick: 200)")
    p.add_argument("--messages-large", type=int,
                   help="messages per run for larger sizes "
                        "(default 1000; quick: 100)")
    p.add_argument("--servers", default="maild,postfix",
                   help="which servers: maild,postfix (default both; "
                        "Postfix is skipped when not installed)")
    p.add_argument("--persistent", action="store_true",
                   help="keep each session's connection for all its "
                        "messages (smtp-source -d)")
    p.add_argument("--build", default=os.path.join(ROOT, "build-rel"),
                   help="maild build directory (default: build-rel)")
    p.add_argument("--tmpdir", default=None,
                   help="where to make the temporary directory (default: "
                        "$TMPDIR or /tmp); both servers' spools and "
                        "mailboxes go there, so it decides the disk")
    p.add_argument("--json", help="also write every run's numbers here")
    p.add_argument("--no-smtp-source", action="store_true",
                   help="use the built-in Python load generator")
    p.add_argument("--maild-env", action="append", default=[],
                   metavar="VAR=VALUE",
                   help="environment for maild (repeatable), e.g. "
                        "UV_THREADPOOL_SIZE=16")
    p.add_argument("--delete-each-run", action="store_true",
                   help="delete delivered messages after each run instead "
                        "of at the end (chosen automatically when the disk "
                        "is too small to keep them all)")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary directory (logs) at the end")
    p.add_argument("--sample-interval", type=float, default=0.1,
                   help=argparse.SUPPRESS)
    p.add_argument("--poll", type=float, default=0.01,
                   help=argparse.SUPPRESS)
    p.add_argument("--stall", type=float, default=30.0,
                   help=argparse.SUPPRESS)
    p.add_argument("--timeout-base", type=float, default=60.0,
                   help=argparse.SUPPRESS)
    p.add_argument("--min-rate", type=float, default=10.0,
                   help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.runs is None:
        a.runs = 1 if a.quick else 5
    if a.messages is None:
        a.messages = 200 if a.quick else 2000
    if a.messages_large is None:
        a.messages_large = 100 if a.quick else 1000
    try:
        a.conc_list = [int(x) for x in a.concurrency.split(",") if x]
        a.size_list = [int(x) for x in a.sizes.split(",") if x]
    except ValueError:
        p.error("--concurrency and --sizes take comma-separated numbers")
    if (not a.conc_list or not a.size_list or min(a.conc_list) < 1
            or min(a.size_list) < 0 or a.runs < 1
            or max(a.conc_list) > 500):
        p.error("bad --concurrency, --sizes or --runs")
    env = {}
    for kv in a.maild_env:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            p.error("--maild-env takes VAR=VALUE")
        env[k] = v
    a.maild_env = env
    a.server_list = [s.strip() for s in a.servers.split(",") if s.strip()]
    if not set(a.server_list) <= {"maild", "postfix"} or not a.server_list:
        p.error("--servers takes maild and/or postfix")
    return a


class Interrupted(Exception):
    """SIGINT, SIGTERM or SIGHUP arrived: unwind and clean up."""


def trap_signals():
    def on_signal(signum, frame):
        raise Interrupted("signal %d" % signum)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)


def clean_up(args, servers, live):
    """Stops the load generator still running (`live`, or None) and the
    servers, then removes the work directory unless --keep."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if live is not None and live.poll() is None:
        live.kill()
        live.wait(timeout=10)
    for s in servers:
        try:
            s.teardown()
        except Exception as e:  # keep cleaning up the rest
            log("cleanup of %s: %s" % (s.name, e))
    if args.keep:
        log("kept " + args.workdir)
    else:
        shutil.rmtree(args.workdir, ignore_errors=True)


def main(argv):
    if argv[:1] and argv[0].startswith("--source"):
        return py_source(argv)
    args = parse_args(argv)

    trap_signals()

    notes = []
    args.smtp_source = None
    if not args.no_smtp_source:
        args.smtp_source = shutil.which("smtp-source") or (
            "/usr/sbin/smtp-source"
            if os.access("/usr/sbin/smtp-source", os.X_OK) else None)
    if not args.smtp_source:
        notes.append("smtp-source not found (package postfix): using the "
                     "built-in Python load generator, which is slower "
                     "than smtp-source; numbers are not comparable with "
                     "smtp-source runs")
    want_pf = "postfix" in args.server_list
    if want_pf:
        why = None
        if not os.access("/usr/sbin/postfix", os.X_OK):
            why = "Postfix is not installed"
        elif os.geteuid() != 0:
            why = "not running as root (Postfix's master needs root)"
        if why:
            notes.append(why + ": benchmarking maild alone")
            want_pf = False

    cases = [Case(c, s, args.messages if s <= 10240 else args.messages_large)
             for s in args.size_list for c in args.conc_list]
    warm = not args.quick
    # One mailbox per run (and one per warm-up), so that a late delivery
    # shows up where it belongs.
    per_case = args.runs + (1 if warm else 0)
    mailboxes = ["r%03d" % i for i in range(len(cases) * per_case)]

    base = args.tmpdir or None
    args.workdir = tempfile.mkdtemp(prefix="maild-bench-", dir=base)
    os.chmod(args.workdir, 0o755)  # Postfix's daemons must reach it
    args.final_counts = {}
    # Delivered messages stay until the end: deleting thousands of files
    # between runs makes the next run pay for it (ext4 skips recently
    # freed inodes when it allocates new ones). Fall back to deleting
    # after each run when they would not fit.
    nserv = 1 + (1 if want_pf else 0)
    need = sum(per_case * c.nmsg * nserv * (4096 * ((c.size + 600) // 4096
                                                    + 1))
               for c in cases)
    free = shutil.disk_usage(args.workdir).free
    if not args.delete_each_run and need + (2 << 30) > free:
        args.delete_each_run = True
        notes.append("keeping all delivered messages needs ~%d MiB, the "
                     "disk has %d MiB free: deleting them after each run"
                     % (need >> 20, free >> 20))
    args.live_source = None
    servers = []
    results = []
    rc = 0
    try:
        for n in notes:
            log("NOTE: " + n)
        if "maild" in args.server_list:
            servers.append(Maild(args.workdir, os.path.abspath(args.build),
                                 mailboxes, args.maild_env))
        if want_pf:
            servers.append(Postfix(args.workdir, mailboxes))
        log("servers: " + ", ".join(s.version() for s in servers))
        log("disk: " + filesystem(args.workdir))
        log("load: %s, %s, %d run(s) per server and case%s; workdir %s"
            % (args.smtp_source or "built-in Python generator",
               "persistent connections (-d)" if args.persistent
               else "one connection per message",
               args.runs, ", after a warm-up" if warm else "",
               args.workdir))
        mb = iter(mailboxes)
        for case in cases:
            log("== %s, %d messages per run" % (case.label(), case.nmsg))
            for s in servers:
                s.start()
            try:
                if warm:
                    box = next(mb)
                    for s in servers:
                        r = run_once(args, s, case, box,
                                     max(50, min(case.nmsg // 4, 500)))
                        if r["problems"]:
                            log("  warm-up %s: %s"
                                % (s.name, "; ".join(r["problems"])))
                for i in range(args.runs):
                    box = next(mb)
                    for s in servers:  # A B A B ...
                        r = run_once(args, s, case, box, case.nmsg)
                        r["run"] = i + 1
                        results.append(r)
                        log(fmt_run(r))
                        if r["problems"]:
                            rc = 1
                            log("  (server log: %s)" % s.logfile())
            finally:
                for s in servers:
                    s.stop()
        # Anything that arrived after its run was counted?
        for s in servers:
            late = sum(count_files(s.newdir(b))
                       - args.final_counts.get((s.name, b), 0)
                       for b in mailboxes)
            if late:
                rc = 1
                log("PROBLEM: %s delivered %d message(s) after their run "
                    "ended" % (s.name, late))
        print()
        print("%s, %s; %s; %d run(s) per server and case, median "
              "(min–max)." % (
                  ", ".join(s.version().split(" (")[0] for s in servers),
                  time.strftime("%Y-%m-%d"),
                  "one connection per message" if not args.persistent
                  else "persistent connections", args.runs))
        print("Servers: " + "; ".join(s.version() for s in servers) + ".")
        print("Disk: " + filesystem(args.workdir) + ".")
        for n in notes:
            print("NOTE: " + n)
        print()
        print(summarize(results, servers, cases))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                           "argv": sys.argv, "notes": notes,
                           "runs": results}, f, indent=1)
        return rc
    except (KeyboardInterrupt, Interrupted) as e:
        log("interrupted (%s): cleaning up" % (e or "Ctrl-C"))
        return 130
    finally:
        clean_up(args, servers, args.live_source)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
