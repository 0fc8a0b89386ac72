#!/usr/bin/env python3
"""Running and managing maild the way an administrator does.

- `maild -n -f FILE` on good and bad files: exit code, the error names the
  file and the line; unknown settings; a missing file; bad options.
- A listen address already in use: maild fails at start, non-zero exit, a
  clear message (with -d and in the background).
- maildctl user add / passwd / del / list with --password-stdin: the users
  file stays mode 0600 whatever the umask, holds yescrypt ($y$) hashes that
  verify with crypt(3), is replaced atomically; bad input is refused.
- A user added (or removed) with maildctl while maild runs: maildctl sends
  SIGHUP through the pid file, the log says "reloaded", and mail to the new
  user is accepted (to the removed one refused).
- SIGHUP with a broken configuration keeps the running one (the log says
  the reload failed, names file and line; mail is still accepted); fixing
  the file and SIGHUP again loads it (a new alias works).
- Built-in defaults: a configuration holding only `listen smtp
  127.0.0.1:0` (never a fixed port): domain localhost, data next to the
  configuration file, the first start prints the account
  postmaster@localhost and its password (which verifies), mail to it is
  delivered, nothing is written to the working directory or HOME; a second
  start creates no new account. `maild -n` with no arguments in an empty
  directory says the configuration is ok and writes nothing.
- The greeting, the EHLO reply, the Received: header and the Maildir file
  names carry the configured hostname.

127.0.0.1 and ephemeral ports only; every wait is bounded.
"""
import atexit
import ctypes
import ctypes.util
import os
import re
import shutil
import signal
import smtplib
import socket
import stat
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(__file__))
from maildtest import MAILD, MAILDCTL, Maild, Results  # noqa: E402

MAILD = os.path.abspath(MAILD)  # the tests run maild in other directories
MAILDCTL = os.path.abspath(MAILDCTL)

HOST = "127.0.0.1"
IO_TIMEOUT = 15
START = time.monotonic()
DEADLINE = START + 100

r = Results()
TMP = tempfile.mkdtemp(prefix="maild-admin-")
atexit.register(shutil.rmtree, TMP, True)


def scenario(fn):
    if time.monotonic() > DEADLINE:
        r.check(fn.__name__ + ": ran before the file's deadline", False)
        return fn
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        r.check(fn.__name__ + " ran to the end", False, repr(e))
    return fn


def run(args, cwd=None, input=None, env=None, timeout=30, umask=None):
    def pre():
        if umask is not None:
            os.umask(umask)
    return subprocess.run(args, cwd=cwd, input=input, env=env,
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=pre)


def fresh_dir(name):
    p = os.path.join(TMP, name)
    os.makedirs(p)
    return p


_libcrypt = None


def crypt_verify(password, hashed):
    """crypt(3) through libcrypt (libxcrypt: $y$, $6$, $2b$)."""
    global _libcrypt
    if _libcrypt is None:
        name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
        _libcrypt = ctypes.CDLL(name)
        _libcrypt.crypt.restype = ctypes.c_char_p
        _libcrypt.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    out = _libcrypt.crypt(password.encode(), hashed.encode())
    return out is not None and out.decode() == hashed


def users_file(path):
    with open(path) as f:
        return dict(line.rstrip("\n").split(":", 1) for line in f
                    if line.strip())


def smtp_rcpt(port, rcpt, sender="sender@remote.example"):
    """The reply code to RCPT TO:<rcpt> in a fresh session."""
    with smtplib.SMTP(HOST, port, timeout=IO_TIMEOUT) as s:
        s.ehlo("client.example")
        s.mail(sender)
        code, _ = s.rcpt(rcpt)
        return code


def send(port, rcpt, body, sender="sender@remote.example"):
    with smtplib.SMTP(HOST, port, timeout=IO_TIMEOUT) as s:
        s.ehlo("client.example")
        return s.sendmail(sender, [rcpt], body)


def wait_files(path, count, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        try:
            names = sorted(os.listdir(path))
        except FileNotFoundError:
            names = []
        if len(names) >= count or time.monotonic() >= deadline:
            return names
        time.sleep(0.02)


# ---- maild -n --------------------------------------------------------------

@scenario
def check_good_config():
    d = fresh_dir("good")
    conf = os.path.join(d, "maild.conf")
    with open(conf, "w") as f:
        f.write("# a comment\n"
                "hostname mx.example.test\n"
                "domains example.test example.net\n"
                "domains example.org   # trailing comment\n"
                "data-dir %s/data\n"
                "listen smtp 127.0.0.1:0\n"
                "listen submission 127.0.0.1:0\n"
                "max-message-size 25M\n"
                "max-recipients 1000\n"
                "max-connections 100\n"
                "max-connections-per-ip 10\n"
                "timeout-command 5m\n"
                "timeout-data 3m\n"
                "quota 1G\n"
                "quota-answer 552\n"
                "alias postmaster@example.test admin@example.test\n"
                "alias @example.org admin@example.test\n"
                "alias sales@example.net a@example.test b@elsewhere.example\n"
                % d)
    p = run([MAILD, "-n", "-f", conf], cwd=d)
    r.check("-n good file: exit 0", p.returncode == 0, (p.stdout, p.stderr))
    r.check("-n good file: says configuration ok, naming the file",
            re.search(re.escape(conf) + r": configuration ok", p.stdout)
            is not None, p.stdout)
    r.check("-n good file: creates nothing",
            sorted(os.listdir(d)) == ["maild.conf"], os.listdir(d))
    # The shipped example must pass too.
    example = os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                           "maild.conf.example")
    if os.path.exists(example):
        p = run([MAILD, "-n", "-f", example], cwd=d)
        r.check("-n docs/maild.conf.example: exit 0", p.returncode == 0,
                (p.stdout, p.stderr))


BAD_CONFIGS = [
    # (name, text, line of the error, words the message must contain)
    ("unknown setting", "hostname a.example\ndomains example.test\n"
     "listen smtp 127.0.0.1:0\nhostnam x\n", 4, ["unknown", "hostnam"]),
    ("size too small", "max-message-size 10\n", 1, ["max-message-size"]),
    ("size not a number", "domains example.test\nquota lots\n", 2,
     ["quota"]),
    ("listen without port", "listen smtp 127.0.0.1\n", 1, ["listen"]),
    ("listen unknown service", "listen gopher 127.0.0.1:0\n", 1,
     ["gopher"]),
    ("listen port out of range", "listen smtp 127.0.0.1:65536\n", 1,
     ["listen"]),
    ("listen name, not number", "listen smtp localhost:25\n", 1,
     ["listen"]),
    ("hostname twice", "hostname a.example\nhostname b.example\n", 2,
     ["hostname"]),
    ("missing value", "\n\nhostname\n", 3, ["hostname"]),
    ("extra value", "hostname a.example b.example\n", 1, ["hostname"]),
    ("quota-answer not 452/552", "quota-answer 451\n", 1,
     ["quota-answer"]),
    ("alias in a foreign domain",
     "domains example.test\nalias @other.test a@example.test\n", 2,
     ["other.test"]),
    ("alias without targets", "domains example.test\n"
     "alias info@example.test\n", 2, ["alias"]),
    ("duration without digits", "timeout-data soon\n", 1,
     ["timeout-data"]),
    ("max-recipients under 100", "max-recipients 99\n", 1,
     ["max-recipients"]),
]


@scenario
def check_bad_configs():
    d = fresh_dir("bad")
    for i, (name, text, line, words) in enumerate(BAD_CONFIGS):
        conf = os.path.join(d, "bad%d.conf" % i)
        with open(conf, "w") as f:
            f.write(text)
        p = run([MAILD, "-n", "-f", conf], cwd=d)
        where = "%s:%d:" % (conf, line)
        r.check("-n bad (%s): non-zero exit" % name, p.returncode != 0,
                p.returncode)
        r.check("-n bad (%s): error names file and line %d" % (name, line),
                where in p.stderr and all(w in p.stderr for w in words),
                p.stderr.strip())
        r.check("-n bad (%s): no 'configuration ok'" % name,
                "configuration ok" not in p.stdout, p.stdout)
    # Starting (not just checking) with a bad file fails the same way.
    conf = os.path.join(d, "bad0.conf")
    p = run([MAILD, "-d", "-f", conf], cwd=d, timeout=20)
    r.check("start with a bad file: non-zero exit, file:line named",
            p.returncode != 0 and conf + ":4:" in p.stderr,
            (p.returncode, p.stderr))
    missing = os.path.join(d, "nonexistent.conf")
    p = run([MAILD, "-n", "-f", missing], cwd=d)
    r.check("-n missing file: non-zero exit, names the file",
            p.returncode != 0 and missing in p.stderr, p.stderr)
    p = run([MAILD, "-x"], cwd=d)
    r.check("unknown option: exit 2 with usage",
            p.returncode == 2 and "usage" in p.stderr, (p.returncode,
                                                        p.stderr))
    p = run([MAILD, "-n", "stray-argument"], cwd=d)
    r.check("stray argument: exit 2 with usage",
            p.returncode == 2 and "usage" in p.stderr, (p.returncode,
                                                        p.stderr))
    r.check("bad configs: nothing created besides the files",
            all(n.endswith(".conf") for n in os.listdir(d)), os.listdir(d))


# ---- listen on a port in use -----------------------------------------------

@scenario
def port_in_use():
    d = fresh_dir("inuse")
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind((HOST, 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    conf = os.path.join(d, "maild.conf")
    with open(conf, "w") as f:
        f.write("hostname mx.example.test\ndomains example.test\n"
                "data-dir %s/data\nlisten smtp 127.0.0.1:%d\n" % (d, port))
    pm = run([MAILDCTL, "-f", conf, "user", "add",
              "postmaster@example.test", "--password-stdin"], input="pw\n")
    r.check("port in use: maildctl user add", pm.returncode == 0, pm.stderr)
    try:
        for label, args in (("-d", [MAILD, "-d", "-f", conf]),
                            ("background", [MAILD, "-f", conf])):
            t0 = time.monotonic()
            try:
                p = run(args, cwd=d, timeout=30)
            except subprocess.TimeoutExpired:
                r.check("port in use (%s): exits instead of hanging" % label,
                        False)
                continue
            took = time.monotonic() - t0
            r.check("port in use (%s): non-zero exit within %.1fs" %
                    (label, took), p.returncode != 0, p.returncode)
            r.check("port in use (%s): message names the address" % label,
                    "127.0.0.1:%d" % port in p.stderr, p.stderr)
            r.check("port in use (%s): message says the address is in use"
                    % label, re.search(r"in use", p.stderr, re.I)
                    is not None, p.stderr.strip())
            pidf = os.path.join(d, "data", "maild.pid")
            if p.returncode == 0 and os.path.exists(pidf):
                # It should not have started; do not leave it running.
                with open(pidf) as f:
                    os.kill(int(f.read().strip()), signal.SIGTERM)
    finally:
        holder.close()


# ---- maildctl ---------------------------------------------------------------

@scenario
def maildctl_users():
    d = fresh_dir("ctl")
    conf = os.path.join(d, "maild.conf")
    users_path = os.path.join(d, "data", "users")
    with open(conf, "w") as f:
        f.write("domains example.test\ndata-dir %s/data\n"
                "listen smtp 127.0.0.1:0\n" % d)

    def ctl(*args, input=None, umask=0o022):
        return run([MAILDCTL, "-f", conf] + list(args), input=input,
                   umask=umask)

    p = ctl("user", "list")
    r.check("list with no users file: exit 0, empty",
            p.returncode == 0 and p.stdout == "", (p.returncode, p.stdout,
                                                   p.stderr))
    # umask 0: the file must still be 0600.
    p = ctl("user", "add", "alice@example.test", "--password-stdin",
            input="alice-pw-1\n", umask=0)
    r.check("add alice: exit 0", p.returncode == 0, p.stderr)
    mode = stat.S_IMODE(os.stat(users_path).st_mode)
    r.check("users file mode 0600 (umask 0)", mode == 0o600, oct(mode))
    p = ctl("user", "add", "bob@example.test", "--password-stdin",
            input="bob-pw\n")
    r.check("add bob: exit 0", p.returncode == 0, p.stderr)
    p = ctl("user", "list")
    r.check("list shows both",
            p.returncode == 0 and p.stdout.split() == ["alice@example.test",
                                                       "bob@example.test"],
            p.stdout)
    u = users_file(users_path)
    r.check("hashes are yescrypt ($y$)",
            all(h.startswith("$y$") for h in u.values()) and len(u) == 2, u)
    r.check("the file holds no password in clear",
            "alice-pw-1" not in open(users_path).read())
    r.check("alice's hash verifies with crypt(3)",
            crypt_verify("alice-pw-1", u["alice@example.test"]))
    r.check("a wrong password does not verify",
            not crypt_verify("alice-pw-2", u["alice@example.test"]))
    p = ctl("user", "add", "alice@example.test", "--password-stdin",
            input="other\n")
    r.check("add an existing user: non-zero exit, message",
            p.returncode != 0 and "alice@example.test" in p.stderr,
            (p.returncode, p.stderr))
    r.check("failed add leaves the hash alone",
            users_file(users_path)["alice@example.test"]
            == u["alice@example.test"])
    ino = os.stat(users_path).st_ino
    p = ctl("user", "passwd", "alice@example.test", "--password-stdin",
            input="alice-pw-2\n", umask=0)
    u2 = users_file(users_path)
    r.check("passwd: exit 0, new $y$ hash that verifies",
            p.returncode == 0 and u2["alice@example.test"].startswith("$y$")
            and crypt_verify("alice-pw-2", u2["alice@example.test"])
            and not crypt_verify("alice-pw-1", u2["alice@example.test"]),
            (p.stderr, u2))
    r.check("passwd: bob untouched",
            u2["bob@example.test"] == u["bob@example.test"])
    st = os.stat(users_path)
    r.check("passwd: file replaced (new inode), still 0600",
            st.st_ino != ino and stat.S_IMODE(st.st_mode) == 0o600,
            (ino, st.st_ino, oct(st.st_mode)))
    r.check("no temporary files left next to the users file",
            sorted(os.listdir(os.path.dirname(users_path))) == ["users"],
            os.listdir(os.path.dirname(users_path)))
    p = ctl("user", "passwd", "nobody@example.test", "--password-stdin",
            input="x\n")
    r.check("passwd for an unknown user: non-zero exit",
            p.returncode != 0, p.stderr)
    p = ctl("user", "del", "bob@example.test")
    r.check("del bob: exit 0", p.returncode == 0, p.stderr)
    p = ctl("user", "list")
    r.check("list after del", p.stdout.split() == ["alice@example.test"],
            p.stdout)
    p = ctl("user", "del", "bob@example.test")
    r.check("del a missing user: non-zero exit", p.returncode != 0,
            p.stderr)
    for bad in ("noatsign", "../x@example.test",
                "a:b@example.test", ".x@example.test", "x@", "@example.test",
                "a\nb@example.test"):
        p = ctl("user", "add", bad, "--password-stdin", input="pw\n")
        r.check("add %r refused" % bad, p.returncode != 0,
                (p.returncode, p.stderr))
    p = ctl("user", "add", "carol@example.test", "--password-stdin",
            input="\n")
    r.check("add with an empty password refused", p.returncode != 0,
            p.stderr)
    p = ctl("user", "add", "carol@example.test", "--password-stdin",
            input="")
    r.check("add with no password line refused", p.returncode != 0,
            p.stderr)
    p = run([MAILDCTL, "-f", conf, "user", "add", "carol@example.test"],
            input="pw\npw\n")
    r.check("add without --password-stdin and no terminal refused",
            p.returncode != 0, p.stderr)
    p = ctl("user", "frobnicate")
    r.check("unknown subcommand: exit 2", p.returncode == 2, p.returncode)
    r.check("the users file is still alice only, 0600",
            list(users_file(users_path)) == ["alice@example.test"]
            and stat.S_IMODE(os.stat(users_path).st_mode) == 0o600,
            open(users_path).read())


# ---- reload while running ---------------------------------------------------

@scenario
def add_user_while_running():
    with Maild(users={"alice@example.test": "pw",
                      "postmaster@example.test": "pw"}) as m:
        r.check("before: bob unknown (550)",
                smtp_rcpt(m.port, "bob@example.test") == 550)
        p = m.ctl("user", "add", "bob@example.test", "--password-stdin",
                  input="bob-pw\n")
        r.check("maildctl says maild (pid N) reloads",
                "maild (pid %d) reloads" % m.proc.pid in p.stderr, p.stderr)
        r.check("log says reloaded", m.wait_log(r"reloaded", timeout=10),
                m.log()[-500:])
        r.check("log counts 3 users",
                m.wait_log(r"reloaded .*\(3 users\)", timeout=2),
                m.log()[-500:])
        r.check("after: bob accepted (250)",
                smtp_rcpt(m.port, "bob@example.test") == 250)
        send(m.port, "bob@example.test", b"Subject: new\r\n\r\nhi bob\r\n")
        got = m.mailbox("bob@example.test", wait=10)
        r.check("bob's first message delivered",
                len(got) == 1 and got[0].endswith(b"\r\nhi bob\r\n"), got)
        m.ctl("user", "del", "bob@example.test")
        r.check("after del: second reload logged",
                m.wait_log(r"reloaded", timeout=10, count=2),
                m.log()[-500:])
        r.check("after del: bob refused again (550)",
                smtp_rcpt(m.port, "bob@example.test") == 550)
        r.check("alice still accepted",
                smtp_rcpt(m.port, "alice@example.test") == 250)
        r.check("SIGTERM exits 0", m.stop() == 0, m.log()[-500:])
        r.check("pid file removed at exit",
                not os.path.exists(os.path.join(m.data, "maild.pid")))


@scenario
def broken_reload_keeps_running_config():
    with Maild(users={"alice@example.test": "pw",
                      "postmaster@example.test": "pw"}) as m:
        with open(m.conf) as f:
            good = f.read()
        with open(m.conf, "a") as f:
            f.write("alias info@example.test alice@example.test\n"
                    "this-is-not-a-setting 1\n")
        bad_line = good.count("\n") + 2
        m.signal(signal.SIGHUP)
        r.check("broken file: log says reload failed",
                m.wait_log(r"reload failed", timeout=10), m.log()[-500:])
        r.check("broken file: the log names file and line",
                m.wait_log(re.escape("%s:%d:" % (m.conf, bad_line)),
                           timeout=1), m.log()[-500:])
        r.check("broken file: still running",
                m.proc.poll() is None)
        refused = send(m.port, "alice@example.test",
                       b"Subject: still\r\n\r\nstill here\r\n")
        r.check("broken file: mail still accepted", refused == {}, refused)
        r.check("broken file: and delivered",
                len(m.mailbox("alice@example.test", wait=10)) == 1)
        r.check("broken file: the new alias is not active (old config)",
                smtp_rcpt(m.port, "info@example.test") == 550)
        r.check("broken file: unknown users still refused",
                smtp_rcpt(m.port, "nobody@example.test") == 550)
        with open(m.conf, "w") as f:
            f.write(good + "alias info@example.test alice@example.test\n")
        m.signal(signal.SIGHUP)
        r.check("fixed file: reloaded",
                m.wait_log(r"reloaded", timeout=10), m.log()[-500:])
        r.check("fixed file: the alias now works",
                smtp_rcpt(m.port, "info@example.test") == 250)
        # A users file that does not parse is a failed reload as well.
        users = os.path.join(m.data, "users")
        with open(users) as f:
            saved = f.read()
        with open(users, "a") as f:
            f.write("garbage line without a colon\n")
        m.signal(signal.SIGHUP)
        r.check("broken users file: reload failed, names users file",
                m.wait_log(re.escape(users) + r":\d+:.*", timeout=10)
                and m.wait_log(r"reload failed", timeout=1, count=2),
                m.log()[-500:])
        r.check("broken users file: alice still accepted",
                smtp_rcpt(m.port, "alice@example.test") == 250)
        with open(users, "w") as f:
            f.write(saved)
        r.check("SIGTERM exits 0", m.stop() == 0, m.log()[-500:])


@scenario
def slash_in_local_part():
    """'/' is legal in a local part (RFC 5321 atext). maildctl may refuse
    such an account, but if it takes it, mail to it must be delivered (and
    inside the mail root), not accepted at RCPT and lost at end of data."""
    with Maild(users={"alice@example.test": "pw",
                      "postmaster@example.test": "pw"}) as m:
        p = m.ctl("user", "add", "a/b@example.test", "--password-stdin",
                  input="pw\n", check=False)
        if p.returncode != 0:
            r.check("user a/b@example.test refused by maildctl", True)
            return
        r.check("a/b@: reloaded", m.wait_log("reloaded", timeout=10))
        with smtplib.SMTP(HOST, m.port, timeout=IO_TIMEOUT) as s:
            s.ehlo("client.example")
            s.mail("sender@remote.example")
            rc, _ = s.rcpt("a/b@example.test")
            code, text = s.data(b"Subject: slash\r\n\r\nslash\r\n") \
                if rc == 250 else (rc, b"")
        r.check("maildctl took a/b@example.test, so mail to it is accepted "
                "at RCPT and after DATA (got %d, %d %r)" % (rc, code, text),
                rc == 250 and code == 250)
        found = []
        for dirpath, _, files in os.walk(m.dir):
            for n in files:
                if ",S=" in n:
                    found.append(os.path.join(dirpath, n))
        r.check("a/b@: the message is stored under the mail root",
                len(found) == 1 and found[0].startswith(
                    os.path.join(m.data, "mail") + os.sep), found)


# ---- built-in defaults -----------------------------------------------------

def expected_default_hostname():
    h = socket.gethostname()
    label = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    if re.fullmatch(label + r"(\." + label + r")*", h) and len(h) <= 253:
        return h
    return "localhost"


class Proc:
    """maild started by hand; reads the lines it prints on stdout."""

    def __init__(self, args, cwd, env):
        self.err_path = os.path.join(TMP, "stderr-%d.log" % time.monotonic_ns())
        self.err = open(self.err_path, "wb")
        self.p = subprocess.Popen(args, cwd=cwd, env=env,
                                  stdout=subprocess.PIPE, stderr=self.err)
        self.out = []
        self.port = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.p.stdout.readline().decode(errors="replace")
            if not line:
                break
            self.out.append(line)
            m = re.search(r"smtp listening on 127\.0\.0\.1:(\d+)$",
                          line.strip())
            if m:
                self.port = int(m.group(1))
                break

    def log(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_log(self, pattern, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.log()):
                return True
            time.sleep(0.02)
        return False

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=15)
        self.p.stdout.close()
        self.err.close()
        return self.p.returncode


@scenario
def builtin_defaults():
    base = fresh_dir("defaults")
    confdir = os.path.join(base, "etc")
    cwd = os.path.join(base, "cwd")
    home = os.path.join(base, "home")
    for p in (confdir, cwd, home):
        os.makedirs(p)
    conf = os.path.join(confdir, "maild.conf")
    with open(conf, "w") as f:
        f.write("listen smtp 127.0.0.1:0\n")
    env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=home,
               XDG_DATA_HOME=home)
    data = os.path.join(confdir, "maild-data")
    hostname = expected_default_hostname()

    p = run([MAILD, "-n", "-f", conf], cwd=cwd, env=env)
    r.check("defaults -n: ok, says the users file is made on first start",
            p.returncode == 0 and "configuration ok" in p.stdout
            and os.path.join(data, "users") in p.stdout,
            (p.returncode, p.stdout, p.stderr))

    d = Proc([MAILD, "-d", "-f", conf], cwd=cwd, env=env)
    try:
        out = "".join(d.out)
        m = re.search(r"created account postmaster@localhost with password "
                      r"(\S+)", out)
        r.check("first start prints the account postmaster@localhost and "
                "its password", m is not None, out)
        r.check("first start: listening on an ephemeral port",
                d.port is not None and d.port != 0, (out, d.log()[-300:]))
        if d.port is None:
            return
        r.check("first start: log says started",
                d.wait_log(r"started as " + re.escape(hostname)),
                d.log()[-400:])
        users_path = os.path.join(data, "users")
        r.check("data directory next to the configuration file",
                os.path.isdir(os.path.join(data, "mail"))
                and os.path.isfile(users_path), os.listdir(confdir))
        u = users_file(users_path) if os.path.exists(users_path) else {}
        r.check("users file: only postmaster@localhost, mode 0600, $y$",
                list(u) == ["postmaster@localhost"]
                and u["postmaster@localhost"].startswith("$y$")
                and stat.S_IMODE(os.stat(users_path).st_mode) == 0o600, u)
        if m and u:
            r.check("the printed password verifies against the hash",
                    crypt_verify(m.group(1), u["postmaster@localhost"]))
        with smtplib.SMTP(HOST, d.port, timeout=IO_TIMEOUT) as s:
            code, msg = s.ehlo("client.example")
            r.check("defaults: EHLO names the system host name (%s)"
                    % hostname, code == 250 and msg.split(b"\n")[0].decode()
                    in (hostname, "localhost"), msg)
            refused = s.sendmail("sender@remote.example",
                                 ["postmaster@localhost"],
                                 b"Subject: hello\r\n\r\nfirst mail\r\n")
            r.check("defaults: mail to postmaster@localhost accepted",
                    refused == {}, refused)
            s.mail("sender@remote.example")
            code, _ = s.rcpt("postmaster@example.test")
            r.check("defaults: other domains are not local (554)",
                    code == 554, code)
        new = os.path.join(data, "mail", "localhost", "postmaster", "new")
        names = wait_files(new, 1)
        r.check("defaults: delivered under the configuration's maild-data",
                len(names) == 1, names)
        r.check("defaults: nothing written to the working directory",
                os.listdir(cwd) == [], os.listdir(cwd))
        r.check("defaults: nothing written to HOME", os.listdir(home) == [],
                os.listdir(home))
    finally:
        rc = d.stop()
    r.check("defaults: SIGTERM exits 0", rc == 0, d.log()[-500:])
    # A second start keeps the account and prints no password.
    before = open(os.path.join(data, "users")).read()
    d = Proc([MAILD, "-d", "-f", conf], cwd=cwd, env=env)
    try:
        out = "".join(d.out)
        r.check("second start: no new account printed",
                d.port is not None and "created account" not in out, out)
        r.check("second start: log says started",
                d.wait_log(r"started as "), d.log()[-400:])
        r.check("second start: users file unchanged",
                open(os.path.join(data, "users")).read() == before)
    finally:
        rc = d.stop()
    r.check("second start: SIGTERM exits 0", rc == 0, d.log()[-500:])

    # maild -n with no arguments at all, in an empty directory.
    empty = os.path.join(base, "empty")
    os.makedirs(empty)
    p = run([MAILD, "-n"], cwd=empty, env=env)
    r.check("maild -n (no file): exit 0, built-in defaults ok",
            p.returncode == 0 and "built-in defaults: configuration ok"
            in p.stdout, (p.returncode, p.stdout, p.stderr))
    r.check("maild -n (no file): mentions ./maild-data/users",
            "maild-data/users" in p.stdout, p.stdout)
    r.check("maild -n (no file): writes nothing", os.listdir(empty) == []
            and os.listdir(home) == [], (os.listdir(empty),
                                         os.listdir(home)))


# ---- the configured hostname everywhere ---------------------------------------

@scenario
def configured_hostname():
    name = "relay7.site.example"
    with Maild(users={"alice@example.test": "pw"}, hostname=name) as m:
        with smtplib.SMTP(HOST, m.port, timeout=IO_TIMEOUT) as s:
            code, msg = s.ehlo("client.example")
            r.check("hostname: EHLO reply names it",
                    code == 250 and msg.split(b"\n")[0] == name.encode(),
                    msg)
            s.sendmail("sender@remote.example", ["alice@example.test"],
                       b"Subject: h\r\n\r\nx\r\n")
        c = socket.create_connection((HOST, m.port), timeout=IO_TIMEOUT)
        try:
            greeting = c.makefile("rb").readline()
        finally:
            c.close()
        r.check("hostname: 220 greeting names it",
                greeting.startswith(b"220 " + name.encode() + b" "),
                greeting)
        new = os.path.join(m.mailbox_dir("alice@example.test"), "new")
        names = wait_files(new, 1)
        msgs = m.mailbox("alice@example.test")
        r.check("hostname: Received says 'by %s (maild)'" % name,
                len(msgs) == 1 and re.search(
                    rb"\r\nReceived: from client\.example \(\[127\.0\.0\.1\]"
                    rb"\)\r\n\tby " + re.escape(name.encode()) +
                    rb" \(maild\) with ESMTP id ", msgs[0]) is not None,
                msgs[:1])
        r.check("hostname: Maildir file name carries it",
                len(names) == 1 and ("." + name + ",S=") in names[0], names)
        r.check("hostname: log says started as it",
                m.wait_log("started as " + re.escape(name), timeout=1))
        r.check("hostname: SIGTERM exits 0", m.stop() == 0)


shutil.rmtree(TMP, ignore_errors=True)
print("     %.1fs in all" % (time.monotonic() - START))
sys.exit(r.finish())
