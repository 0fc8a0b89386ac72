#!/usr/bin/env python3
"""relay_load.py -- outbound delivery: maild's queue against Postfix's.

Each run fills the server's queue with N messages (1 KiB by default, one
recipient each, all for one remote domain) while the destination cannot
take them, then starts Postfix's smtp-sink on the destination port and
flushes the queue (maild: `maildctl queue retry`; Postfix: `postqueue -f`
after lifting defer_transports). The time from the flush to an empty queue
gives messages per second: every message handed over with a 250 and its
queue entry removed. Server CPU (the whole process tree) and peak PSS are
sampled during the drain.

Both servers relay to the same sink on 127.0.0.1 with their defaults for
connections per destination (maild: outbound-connections 5; Postfix:
default_destination_concurrency_limit 20) and connection reuse; no DNS
(maild: `route`, Postfix: relayhost [127.0.0.1]:PORT), no TLS (smtp-sink
offers none).

Usage (as root, after the Release build in bench/README.md):
  bench/relay_load.py                  # 3 runs per server, 10,000 messages
  bench/relay_load.py --runs 1 --messages 2000 --servers maild
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import smtp_load as S  # noqa: E402

REMOTE = "elsewhere.test"


def count_env(d):
    try:
        return sum(1 for n in os.listdir(d) if n.endswith(".env"))
    except FileNotFoundError:
        return 0


def postfix_queue_count(qdir):
    n = 0
    for sub in ("incoming", "active", "deferred", "maildrop", "hold"):
        for _, _, files in os.walk(os.path.join(qdir, sub)):
            n += len(files)
    return n


class Sink:
    def __init__(self, port):
        self.port = port
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["smtp-sink", "-u", "nobody", "127.0.0.1:%d" % self.port, "256"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                S.socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp-sink did not start")

    def stop(self):
        if self.proc is not None:
            S.stop_process(self.proc)
            self.proc = None


class MaildRelay(S.Maild):
    def __init__(self, workdir, build, sink_port):
        super().__init__(workdir, build, ["postmaster"])
        with open(self.conf, "a") as f:
            f.write("route * 127.0.0.1:%d\nretry-first 1h\n"
                    "trusted-networks 127.0.0.0/8\n"
                    "dns-servers 127.0.0.1:1\n" % sink_port)
        self.queue = os.path.join(self.data, "spool", "queue")

    def queued(self):
        return count_env(self.queue)

    def filled(self, n):
        """All n accepted and each deferred once (the sink was down)."""
        try:
            with open(self.logfile(), "rb") as f:
                return f.read().count(b"status=deferred") >= n
        except OSError:
            return False

    def flush(self):
        subprocess.run([self.maildctl, "-f", self.conf, "queue", "retry"],
                       check=True, capture_output=True, timeout=60)

    def reset_log(self):
        open(self.logfile(), "wb").close()


class PostfixRelay(S.Postfix):
    def __init__(self, workdir, sink_port):
        super().__init__(workdir, ["postmaster"])
        self.etc = os.path.join(self.dir, "etc")
        self.qdir = os.path.join(self.dir, "queue")
        with open(os.path.join(self.etc, "main.cf"), "a") as f:
            f.write("\n# relay_load.py: everything to the sink, no DNS.\n"
                    "relayhost = [127.0.0.1]:%d\n"
                    "smtp_dns_support_level = disabled\n"
                    "smtp_tls_security_level = none\n"
                    "defer_transports = smtp\n" % sink_port)
        with open(os.path.join(self.etc, "master.cf"), "a") as f:
            f.write("smtp      unix  -       -       n       -       -       "
                    "smtp\n"
                    "pickup    unix  n       -       n       60      1       "
                    "pickup\n")  # postqueue -f looks for it

    def queued(self):
        return postfix_queue_count(self.qdir)

    def filled(self, n):
        deferred = os.path.join(self.qdir, "deferred")
        return sum(len(f) for _, _, f in os.walk(deferred)) >= n

    def postconf(self, setting):
        subprocess.run(["postconf", "-c", self.etc, "-e", setting], check=True,
                       capture_output=True, timeout=60)

    def flush(self):
        self.postconf("defer_transports =")
        subprocess.run(["postfix", "-c", self.etc, "reload"], check=True,
                       capture_output=True, timeout=60)
        r = subprocess.run(["postqueue", "-c", self.etc, "-f"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("postqueue -f: " + r.stderr.strip())

    def refill_mode(self):
        self.postconf("defer_transports = smtp")
        subprocess.run(["postfix", "-c", self.etc, "reload"], check=True,
                       capture_output=True, timeout=60)


def fill(args, srv):
    cmd = [args.smtp_source, "-s", "20", "-m", str(args.messages), "-l",
           str(args.size), "-f", S.SENDER, "-t", "rcpt@" + REMOTE, "-d",
           "127.0.0.1:%d" % srv.port]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError("smtp-source: " + r.stderr.strip())
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not srv.filled(args.messages):
        time.sleep(0.2)
    if not srv.filled(args.messages):
        raise RuntimeError("%s: the queue did not fill" % srv.name)


def run_once(args, srv, sink):
    if isinstance(srv, PostfixRelay):
        srv.refill_mode()
    else:
        srv.reset_log()
    fill(args, srv)
    queued = srv.queued()
    sink.start()
    samp = S.Sampler(srv.root_pid())
    t_cpu = S.cpu_ticks(srv.root_pid())
    samp.start()
    t0 = time.monotonic()
    srv.flush()
    deadline = t0 + 1800
    while srv.queued() > 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    elapsed = time.monotonic() - t0
    samp.stop()
    cpu = (S.cpu_ticks(srv.root_pid()) - t_cpu) / S.CLK_TCK
    left = srv.queued()
    sink.stop()
    return {"queued": queued, "left": left, "seconds": elapsed,
            "msgs_per_s": (queued - left) / elapsed if elapsed > 0 else 0,
            "cpu_ms_per_msg": cpu * 1000.0 / max(1, queued - left),
            "pss_mib": samp.peak_kib / 1024.0, "procs": samp.peak_procs}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--messages", type=int, default=10000)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--servers", default="maild,postfix")
    p.add_argument("--build", default=os.path.join(S.ROOT, "build-rel"))
    p.add_argument("--tmpdir", default="/var/tmp")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    args.smtp_source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    if os.geteuid() != 0:
        raise SystemExit("run as root (Postfix's master and smtp-sink -u)")
    S.trap_signals()
    args.workdir = tempfile.mkdtemp(prefix="relay_load.", dir=args.tmpdir)
    os.chmod(args.workdir, 0o755)
    sink = Sink(S.free_port())
    servers = []
    try:
        names = args.servers.split(",")
        if "maild" in names:
            servers.append(MaildRelay(args.workdir, args.build, sink.port))
        if "postfix" in names:
            servers.append(PostfixRelay(args.workdir, sink.port))
        for s in servers:
            s.start()
        results = {s.name: [] for s in servers}
        for i in range(args.runs):
            for s in servers:
                r = run_once(args, s, sink)
                results[s.name].append(r)
                S.log("%s run %d: %d queued, %.0f msgs/s (%.2f s), CPU %.3f "
                      "ms/msg, PSS %.1f MiB (%d procs)%s" % (
                          s.name, i, r["queued"], r["msgs_per_s"],
                          r["seconds"], r["cpu_ms_per_msg"], r["pss_mib"],
                          r["procs"],
                          "" if r["left"] == 0 else
                          ", %d LEFT" % r["left"]))
        print("| server | msgs/s median (min-max) | server CPU ms/msg | "
              "peak PSS MiB |")
        print("|---|---|---|---|")
        for s in servers:
            rs = results[s.name]
            v = [r["msgs_per_s"] for r in rs]
            print("| %s | %.0f (%.0f-%.0f) | %.3f | %.1f |" % (
                s.name, statistics.median(v), min(v), max(v),
                statistics.median(r["cpu_ms_per_msg"] for r in rs),
                max(r["pss_mib"] for r in rs)))
        if len(servers) == 2:
            a = statistics.median(r["msgs_per_s"] for r in results["maild"])
            b = statistics.median(r["msgs_per_s"] for r in results["postfix"])
            print("\nmaild / Postfix: %.2fx" % (a / b if b else 0))
    except S.Interrupted as e:
        S.log("interrupted (%s)" % e)
        return 1
    finally:
        sink.stop()
        S.clean_up(args, servers, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
