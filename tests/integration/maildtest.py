"""Shared fixture for integration tests: runs maild on loopback with an
ephemeral port and a private data directory, and finds what it delivered.

    with Maild(domains=["example.test"], users={"alice@example.test": "pw"}) as m:
        smtplib.SMTP("127.0.0.1", m.port)...
        m.mailbox("alice@example.test")   # list of message bytes in new/

Every wait is bounded; the daemon is stopped (SIGTERM, then SIGKILL) when
the block ends. Tests print "ok"/"FAIL" lines and end with
"N passed, M failed" through the Results class.
"""
import os
import re
import select
import shutil
import signal
import socket
import ssl
import smtplib
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("MAILD_BUILD_DIR",
                       os.path.join(os.path.dirname(__file__), "..", "..",
                                    "build"))
MAILD = os.path.join(BUILD, "daemon", "maild")
MAILDCTL = os.path.join(BUILD, "daemon", "maildctl")


class Results:
    """Counts checks and prints the closing line the CI reads."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, cond, detail=""):
        if cond:
            self.passed += 1
            print("ok   " + name, flush=True)
        else:
            self.failed += 1
            print("FAIL " + name + (": " + str(detail) if detail else ""),
                  flush=True)
        return cond

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        return 1 if self.failed else 0


class Maild:
    def __init__(self, domains=("example.test",), users=None, extra="",
                 hostname="mx.example.test", listen=("smtp",), env=None,
                 wrapper=None, start=True):
        self.dir = tempfile.mkdtemp(prefix="maild-test-")
        self.data = os.path.join(self.dir, "data")
        self.conf = os.path.join(self.dir, "maild.conf")
        self.domains = list(domains)
        self.users = dict(users or {"postmaster@%s" % domains[0]: "pw"})
        self.extra = extra
        self.hostname = hostname
        self.listen = listen
        self.env = env
        self.wrapper = wrapper or []
        self.proc = None
        self.port = None
        self.ports = {}
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.write_config()
        for addr, pw in self.users.items():
            self.ctl("user", "add", addr, "--password-stdin", input=pw + "\n")
        if start:
            self.start()

    def write_config(self):
        lines = ["hostname " + self.hostname,
                 "domains " + " ".join(self.domains),
                 "data-dir " + self.data]
        for svc in self.listen:
            lines.append("listen %s 127.0.0.1:0" % svc)
        if "dns-servers" not in self.extra:
            # Never the machine's resolver: a loopback port where nothing
            # answers, so MX lookups fail (temporarily) unless a test
            # starts its own DNS server.
            lines.append("dns-servers 127.0.0.1:1")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n" + self.extra + "\n")

    def ctl(self, *args, input=None, check=True):
        r = subprocess.run([MAILDCTL, "-f", self.conf] + list(args),
                           input=input, capture_output=True, text=True,
                           timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError("maildctl %s: %s" % (args, r.stderr))
        return r

    def start(self, timeout=20):
        # The log file lives on across restarts: wait for this run's line.
        runs = len(re.findall(r"maild \S+ started as ", self.log()))
        self.err = open(self.stderr_path, "ab")
        env = dict(os.environ, **(self.env or {}))
        self.proc = subprocess.Popen(
            self.wrapper + [MAILD, "-d", "-f", self.conf],
            stdout=subprocess.PIPE, stderr=self.err, env=env)
        deadline = time.time() + timeout
        self.ports = {}
        while len(self.ports) < len(self.listen) and time.time() < deadline:
            line = self.proc.stdout.readline().decode(errors="replace")
            if not line:
                break
            m = re.search(r"maild: (\w+) listening on .*:(\d+)$", line.strip())
            if m:
                self.ports.setdefault(m.group(1), []).append(int(m.group(2)))
        if len(self.ports) < len(self.listen):
            self.stop()
            raise RuntimeError("maild did not start: " + self.log())
        self.port = self.ports[self.listen[0]][0]
        self.wait_log(r"maild \S+ started as ", timeout=timeout,
                      count=runs + 1)

    def log(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=10, count=1):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(re.findall(pattern, self.log())) >= count:
                return True
            time.sleep(0.02)
        return False

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout=15):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        rc = self.proc.returncode
        self.proc.stdout.close()
        self.err.close()
        self.proc = None
        return rc

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=15)
            self.proc.stdout.close()
            self.err.close()
            self.proc = None

    def mailbox_dir(self, address):
        local, domain = address.rsplit("@", 1)
        return os.path.join(self.data, "mail", domain.lower(), local.lower())

    def mailbox(self, address, wait=0, count=1):
        """Message contents in new/ (sorted by name); waits up to `wait`
        seconds for at least `count` of them."""
        path = os.path.join(self.mailbox_dir(address), "new")
        deadline = time.time() + wait
        while True:
            try:
                names = sorted(os.listdir(path))
            except FileNotFoundError:
                names = []
            if len(names) >= count or time.time() >= deadline:
                break
            time.sleep(0.02)
        out = []
        for n in names:
            with open(os.path.join(path, n), "rb") as f:
                out.append(f.read())
        return out

    def spool_files(self):
        found = []
        for sub in ("tmp", "queue"):
            p = os.path.join(self.data, "spool", sub)
            if os.path.isdir(p):
                found += [os.path.join(sub, n) for n in os.listdir(p)]
        return found

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


class RawSMTP:
    """A line-level SMTP client on a plain socket, for what smtplib will
    not do: pipelining in one packet, stalling, never reading, hostile
    input. Every operation is bounded by the socket timeout."""

    def __init__(self, port, timeout=15, src=None, rcvbuf=None,
                 host="127.0.0.1"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.s = socket.socket(family, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if src:
            self.s.bind((src, 0))
        self.s.connect((host, port))
        self.buf = b""

    def reply(self):
        """(code, text of the last line); raises EOFError if the server
        closed the connection first."""
        while True:
            while b"\r\n" not in self.buf:
                d = self.s.recv(65536)
                if not d:
                    raise EOFError("connection closed; got %r" % self.buf)
                self.buf += d
            line, self.buf = self.buf.split(b"\r\n", 1)
            if line[3:4] != b"-":
                return int(line[:3]), line[4:]

    def send(self, data):
        self.s.sendall(data)

    def cmd(self, line):
        self.s.sendall(line + b"\r\n")
        return self.reply()

    def pending(self, wait):
        """True if the server sent something (or closed) within `wait` s."""
        if self.buf:
            return True
        ready, _, _ = select.select([self.s], [], [], wait)
        return bool(ready)

    def closed_soon(self, wait):
        """True if the server closes the connection within `wait` s
        (whatever it still sends first is read and dropped)."""
        deadline = time.time() + wait
        while time.time() < deadline:
            self.s.settimeout(max(0.01, deadline - time.time()))
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return False
            except OSError:
                return True
            if not d:
                return True
        return False

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def wait_until(pred, timeout):
    """pred()'s first true value within `timeout` seconds, else its last."""
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v or time.time() >= deadline:
            return v
        time.sleep(0.02)


def stop_wrapped(m, timeout=15):
    """Stops a maild started under a wrapper such as strace: SIGTERM to
    maild itself (strace can hang detaching), then waits for both."""
    if m.proc is None:
        return None
    try:
        with open("/proc/%d/task/%d/children" % (m.proc.pid, m.proc.pid)) as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        kids = []
    for k in kids:
        try:
            os.kill(k, signal.SIGTERM)
        except OSError:
            pass
    try:
        m.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    return m.stop()


def body_of(message):
    """The message without the Return-Path and Received lines maild adds."""
    head, sep, rest = message.partition(b"\r\nReceived: ")
    if not sep:
        return message
    # Skip the folded Received header.
    lines = rest.split(b"\r\n")
    i = 1
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
    return b"\r\n".join(lines[i:])


def have(tool):
    return shutil.which(tool) is not None


class Unbound:
    """A private unbound on 127.0.0.1 at a free port, serving `zones`
    (lines of local-data) and refusing everything else, so that no query
    ever leaves loopback. `forward_dead` names zones forwarded to a port
    where nothing answers (SERVFAIL)."""

    def __init__(self, records, static_zones, refuse_zones=(),
                 forward_dead=()):
        self.dir = tempfile.mkdtemp(prefix="unbound-test-")
        self.port = free_udp_tcp_port()
        conf = ["server:",
                "  interface: 127.0.0.1@%d" % self.port,
                "  port: %d" % self.port,
                "  do-daemonize: no", '  username: ""', '  chroot: ""',
                '  directory: "%s"' % self.dir, '  pidfile: ""',
                "  use-syslog: no", '  logfile: ""', "  verbosity: 1",
                "  access-control: 127.0.0.0/8 allow",
                "  do-ip6: no", "  do-not-query-localhost: no",
                '  module-config: "iterator"',
                "  outgoing-num-tcp: 1", "  incoming-num-tcp: 10",
                '  local-zone: "." refuse']
        for z in static_zones:
            conf.append('  local-zone: "%s." static' % z)
        for z in refuse_zones:
            conf.append('  local-zone: "%s." always_refuse' % z)
        for z in forward_dead:
            conf.append('  local-zone: "%s." transparent' % z)
        for rr in records:
            conf.append('  local-data: "%s"' % rr)
        for z in forward_dead:
            conf += ["forward-zone:", '  name: "%s."' % z,
                     "  forward-addr: 127.0.0.1@1"]
        conf += ["remote-control:", "  control-enable: no"]
        self.conf = os.path.join(self.dir, "unbound.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen(["unbound", "-d", "-c", self.conf],
                                     stdout=self.log, stderr=self.log)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("unbound did not start")

    def address(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def free_udp_tcp_port():
    """A port free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        t = socket.socket()
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no free port")


def free_port():
    """A port nothing listens on now (bound, read back, closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def submit_as(m, user, password, rcpts, body, count=1):
    """Sends `body` `count` times through m's submission port, logged in."""
    ca = os.path.join(m.data, "tls", "cert.pem")
    ctx = ssl.create_default_context(cafile=ca)
    with smtplib.SMTP("127.0.0.1", m.ports["submission"][0], timeout=30) as s:
        s.starttls(context=ctx)
        s.login(user, password)
        for _ in range(count):
            s.sendmail(user, rcpts, body)


class Sink:
    """Postfix's smtp-sink on a loopback port, dumping each message."""

    def __init__(self, port, *opts):
        self.dir = os.path.realpath(os.path.join(os.environ.get(
            "TMPDIR", "/tmp"), "sink-%d-%d" % (os.getpid(), port)))
        os.makedirs(self.dir, exist_ok=True)
        shutil.chown(self.dir, "nobody")
        self.proc = subprocess.Popen(
            ["smtp-sink", "-u", "nobody", "-d", self.dir + "/%M."] +
            list(opts) + ["127.0.0.1:%d" % port, "64"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        wait_until(lambda: self._listening(port), 10)

    @staticmethod
    def _listening(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def messages(self):
        """The dumps smtp-sink has finished: it creates each file before it
        writes it, so one changed in the last 0.2 s is left for later."""
        out = []
        now = time.time()
        for n in sorted(os.listdir(self.dir)):
            path = os.path.join(self.dir, n)
            try:
                if now - os.stat(path).st_mtime < 0.2:
                    continue
                with open(path, "rb") as f:
                    out.append(f.read())
            except FileNotFoundError:
                continue
        return out

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit("a module for the integration tests")
