#!/usr/bin/env python3
"""pop3_load.py -- maild's POP3 server against Dovecot's (dovecot-pop3d),
side by side, over the same Maildir contents, with TLS the same way on both.

Both servers listen with implicit TLS (pop3s) and the same certificate
(maild's generated ECDSA P-256 one); the client (bench/pop3_load, C,
OpenSSL) does one full TLS 1.2 handshake per session, USER/PASS, RETR 1..M
pipelined (window -w, default 16), QUIT. No DELE: the mailbox is left as it
was, and every run gets a fresh copy of a template Maildir (messages of
exactly --size octets, CRLF, in new/, names with ,S= and ,W= tags), so one
server's renames/indexes never affect the other.

Cases: 1 session x 10,000 messages; 50 sessions x 100 messages (50
mailboxes). Servers run alternately, A B A B. Per run: msgs/s (client: first
connect to last QUIT reply), server CPU ms/msg (utime+stime+cutime+cstime
of the server's process tree), peak PSS (sum over the server's processes,
sampled every 100 ms).

Usage: python3 bench/pop3_load.py [--build build-rel] [--runs 3]
Needs: dovecot-pop3d installed (the system service need not run and is
never touched: a private instance runs with its own base_dir).
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtp_load import (log, cpu_ticks, Sampler, free_port,  # noqa: E402
                       stop_process)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOMAIN = "example.test"
PASSWORD = "bench-password"
TICK = os.sysconf("SC_CLK_TCK")


def make_message(size, i):
    head = ("From: a@example.test\r\nTo: u@example.test\r\n"
            "Subject: bench %d\r\nMessage-ID: <%d@bench>\r\n\r\n" % (i, i))
    body = []
    left = size - len(head)
    while left > 0:
        n = min(78, left - 2) if left >= 80 else left - 2
        if n < 0:
            break
        body.append("x" * n + "\r\n")
        left -= n + 2
    m = (head + "".join(body)).encode()
    assert len(m) == size, (len(m), size)
    return m


def make_template(d, n, size):
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(d, sub))
    for i in range(n):
        m = make_message(size, i)
        name = "1764200000.M%dP1.bench,S=%d,W=%d" % (i, size, size)
        with open(os.path.join(d, "new", name), "wb") as f:
            f.write(m)


class Maild:
    name = "maild"

    def __init__(self, work, build, users):
        self.dir = os.path.join(work, "maild")
        os.makedirs(self.dir)
        self.exe = os.path.join(build, "daemon", "maild")
        ctl = os.path.join(build, "daemon", "maildctl")
        self.data = os.path.join(self.dir, "data")
        self.conf = os.path.join(self.dir, "maild.conf")
        with open(self.conf, "w") as f:
            f.write("hostname bench.example.test\ndomains %s\ndata-dir %s\n"
                    "listen pop3s 127.0.0.1:0\nmax-connections 1000\n"
                    "max-connections-per-ip 1000\nlog stderr\n"
                    % (DOMAIN, self.data))
        for u in users:
            r = subprocess.run([ctl, "-f", self.conf, "user", "add",
                                "%s@%s" % (u, DOMAIN), "--password-stdin"],
                               input=PASSWORD + "\n", text=True,
                               capture_output=True, timeout=60)
            if r.returncode != 0:
                raise SystemExit("maildctl: " + r.stderr)
        self.proc = None

    def start(self):
        outp = os.path.join(self.dir, "stdout.log")
        self.out = open(outp, "wb")
        self.err = open(os.path.join(self.dir, "maild.log"), "ab")
        self.proc = subprocess.Popen([self.exe, "-d", "-f", self.conf],
                                     stdout=self.out, stderr=self.err,
                                     stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for line in open(outp, errors="replace").read().splitlines():
                if "pop3s listening on" in line:
                    self.port = int(line.rsplit(":", 1)[1])
                    self.cert = os.path.join(self.data, "tls", "cert.pem")
                    self.key = os.path.join(self.data, "tls", "key.pem")
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise SystemExit("maild did not start; see " + self.err.name)

    def mailbox(self, u):
        return os.path.join(self.data, "mail", DOMAIN, u)

    def owner(self):
        return None

    def root_pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc and self.proc.poll() is None

    def stop(self):
        stop_process(self.proc)


class Dovecot:
    name = "dovecot"

    def __init__(self, work, users, cert, key, hashes=None):
        self.dir = os.path.join(work, "dovecot")
        self.mail = os.path.join(self.dir, "mail")
        os.makedirs(os.path.join(self.dir, "run"))
        os.makedirs(os.path.join(self.dir, "state"))
        os.makedirs(self.mail)
        self.port = free_port()
        pw = os.path.join(self.dir, "passwd")
        with open(pw, "w") as f:
            for u in users:
                a = "%s@%s" % (u, DOMAIN)
                if hashes:  # maild's own hash: the same yescrypt cost
                    f.write("%s:{CRYPT}%s::::::\n" % (a, hashes[a]))
                else:
                    f.write("%s:{PLAIN}%s::::::\n" % (a, PASSWORD))
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write("""\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:{m}/%d/%n
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {pw}
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={m}/%d/%n
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {port}
  }}
}}
service anvil {{
  client_limit = 2000
}}
default_process_limit = 200
default_client_limit = 2000
""".format(d=self.dir, cert=cert, key=key, m=self.mail, pw=pw,
                port=self.port))
        import pwd
        p = pwd.getpwnam("dovecot")
        self.uid, self.gid = p.pw_uid, p.pw_gid
        self.proc = None

    def start(self):
        self.err = open(os.path.join(self.dir, "stderr.log"), "ab")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.conf],
                                     stdout=self.err, stderr=self.err,
                                     stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        import socket
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise SystemExit("dovecot did not start; see %s/dovecot.log" %
                         self.dir)

    def mailbox(self, u):
        return os.path.join(self.mail, DOMAIN, u)

    def owner(self):
        return (self.uid, self.gid)

    def root_pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc and self.proc.poll() is None

    def stop(self):
        stop_process(self.proc)


def install(template, dst, owner):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    subprocess.run(["cp", "-r", template, dst], check=True)
    if owner:
        subprocess.run(["chown", "-R", "%d:%d" % owner,
                        os.path.dirname(os.path.dirname(dst))], check=True)


def run_once(args, srv, conc, nmsg, template):
    users = ["u%d" % i for i in range(conc)]
    for u in users:
        install(template, srv.mailbox(u), srv.owner())
    subprocess.run(["sync"])
    time.sleep(0.2)
    cmd = [args.client, "-p", str(srv.port), "-s", str(conc), "-m",
           str(nmsg), "-w", str(args.window), "-l", str(args.size),
           "-u", "u%d@" + DOMAIN, "-k", PASSWORD]
    samp = Sampler(srv.root_pid())
    t0 = cpu_ticks(srv.root_pid())
    samp.start()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    # let CPU settle
    last, stable = cpu_ticks(srv.root_pid()), time.monotonic()
    while time.monotonic() - stable < 0.3:
        time.sleep(0.1)
        c = cpu_ticks(srv.root_pid())
        if c != last:
            last, stable = c, time.monotonic()
    samp.stop()
    try:
        res = json.loads(r.stdout)
    except ValueError:
        res = {"messages": 0, "msgs_per_s": 0}
    res["ok"] = r.returncode == 0 and res["messages"] == conc * nmsg
    res["stderr"] = r.stderr.strip()
    res["cpu_ms_per_msg"] = (last - t0) * 1000.0 / TICK / max(1, conc * nmsg)
    res["cpu_s"] = (last - t0) / TICK
    res["pss_kib"] = samp.peak_kib
    res["procs"] = samp.peak_procs
    for u in users:
        shutil.rmtree(srv.mailbox(u), ignore_errors=True)
    return res


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default=os.path.join(ROOT, "build-rel"))
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--cases", default="1x10000,50x100")
    p.add_argument("--servers", default="maild,dovecot")
    p.add_argument("--dovecot-plain", action="store_true",
                   help="Dovecot gets {PLAIN} passwords instead of maild's "
                   "yescrypt hashes (login cost out of its figures)")
    args = p.parse_args()
    args.client = os.path.join(args.build, "bench", "pop3_load")
    cases = [tuple(int(x) for x in c.split("x"))
             for c in args.cases.split(",")]
    work = tempfile.mkdtemp(prefix="pop3_load.", dir="/var/tmp")
    os.chmod(work, 0o755)  # dovecot's auth and mail processes traverse it
    servers = []

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    failed = False
    try:
        maxu = max(c for c, _ in cases)
        users = ["u%d" % i for i in range(maxu)]
        tmpl = {}
        for conc, n in cases:
            d = os.path.join(work, "template-%d" % n)
            if n not in tmpl:
                make_template(d, n, args.size)
                tmpl[n] = d
        m = Maild(work, args.build, users)
        m.start()
        srvs = {"maild": m}
        if "dovecot" in args.servers:
            hashes = None
            if not args.dovecot_plain:
                hashes = {}
                with open(os.path.join(m.data, "users")) as f:
                    for line in f:
                        a, h = line.rstrip("\n").split(":", 1)
                        hashes[a] = h
            dv = Dovecot(work, users, m.cert, m.key, hashes)
            dv.start()
            srvs["dovecot"] = dv
        servers = list(srvs.values())
        order = [srvs[s] for s in args.servers.split(",")]
        results = {}
        for conc, n in cases:
            for s in order:  # warm-up
                r = run_once(args, s, conc, n, tmpl[n])
                log("warm-up %s %dx%d: %.0f msgs/s %s" % (
                    s.name, conc, n, r["msgs_per_s"],
                    "" if r["ok"] else "FAILED " + r["stderr"]))
            for i in range(args.runs):
                for s in order:
                    r = run_once(args, s, conc, n, tmpl[n])
                    results.setdefault((s.name, conc, n), []).append(r)
                    log("%s %dx%d run %d: %.0f msgs/s, CPU %.3f ms/msg, "
                        "PSS %d KiB (%d procs), client CPU %.2fs%s" % (
                            s.name, conc, n, i, r["msgs_per_s"],
                            r["cpu_ms_per_msg"], r["pss_kib"], r["procs"],
                            r.get("client_cpu", 0),
                            "" if r["ok"] else " FAILED: " + r["stderr"]))
                    failed |= not r["ok"]
                    if not s.alive():
                        log("%s died" % s.name)
                        failed = True
        print("| case | server | msgs/s median (min-max) | CPU ms/msg | "
              "peak PSS KiB |")
        print("|---|---|---|---|---|")
        for conc, n in cases:
            for s in order:
                rs = results[(s.name, conc, n)]
                v = [r["msgs_per_s"] for r in rs]
                print("| %d x %d | %s | %.0f (%.0f-%.0f) | %.3f | %d |" % (
                    conc, n, s.name, statistics.median(v), min(v), max(v),
                    statistics.median(r["cpu_ms_per_msg"] for r in rs),
                    max(r["pss_kib"] for r in rs)))
    except KeyboardInterrupt:
        log("interrupted")
        failed = True
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
