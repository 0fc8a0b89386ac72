#!/usr/bin/env python3
"""maild over TLS with real clients, each verifying the server certificate
against a CA file:

  * the certificate maild generates on first start (<data-dir>/tls/,
    self-signed, its own trust anchor; names: hostname, localhost,
    127.0.0.1), and
  * a configured tls-cert/tls-key pair: an RSA server certificate for
    mx.example.test/127.0.0.1 issued by an intermediate of a test root CA
    made here with openssl (tls-cert holds the chain).

Clients: Python smtplib starttls() and SMTP_SSL, curl --ssl-reqd smtp://
and smtps://, swaks --tls and --tls-on-connect (--tls-verify), openssl
s_client -starttls smtp and s_client to the smtps port. Each message must
land in the mailbox with a Received header saying "with ESMTPS" and
"(using TLSv1.2 with cipher ...)".

Also: STARTTLS offered on smtp/submission before TLS and never after it
nor on smtps; a second STARTTLS gets 554 5.5.1; close_notify after QUIT;
a returning client resumes its session with the server's ticket;
a 5 MiB message and 1-octet records survive the record layer; the key file
is 0600 and a restart keeps the generated certificate; SIGHUP swaps in a
new configured certificate for new connections while an old TLS session
and a handshake halfway through keep working, a storm of reloads under
client load serves only valid pairs, and a broken or mismatched pair is
refused at reload without losing the running one; SIGTERM tells an open
TLS session 421 over TLS and exits 0.
"""
import base64
import hashlib
import os
import re
import select
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from maildtest import Maild, Results, have  # noqa: E402

RCPT = "alice@example.test"
PASSWORD = "pw"
SENDER = "sender@remote.example"
HOST = "mx.example.test"
r = Results()


# ---- helpers ---------------------------------------------------------------

def run(cmd, input=None, timeout=30):
    """(returncode, stdout, stderr) as text; returncode None on timeout."""
    try:
        p = subprocess.run(cmd, input=input, capture_output=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"").decode(errors="replace"), \
            (e.stderr or b"").decode(errors="replace")
    return p.returncode, p.stdout.decode(errors="replace"), \
        p.stderr.decode(errors="replace")


def openssl(*args):
    rc, out, err = run(["openssl"] + list(args), timeout=60)
    if rc != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), err))
    return out


def delivered(m, marker, wait=10):
    """The delivered message containing `marker` (bytes), or None."""
    deadline = time.time() + wait
    while True:
        for msg in m.mailbox(RCPT):
            if marker in msg:
                return msg
        if time.time() >= deadline:
            return None
        time.sleep(0.05)


def check_received(name, msg, cipher=None):
    """The Received header maild added records the TLS session."""
    if not r.check(name + ": delivered", msg is not None):
        return
    head = msg.split(b"\r\n\r\n", 1)[0]
    # ESMTPSA when the client also logged in (RFC 3848).
    r.check(name + ": Received says with ESMTPS",
            b" with ESMTPS " in head or b" with ESMTPSA " in head,
            head[:400])
    want = b"(using TLSv1.2 with cipher "
    if cipher:
        want += cipher.encode() + b")"
    r.check(name + ": Received names TLSv1.2 and the cipher", want in head,
            (want, head[:400]))


def sha256(der):
    return hashlib.sha256(der).hexdigest()


def pem_fingerprint(path):
    with open(path) as f:
        text = f.read()
    end = "-----END CERTIFICATE-----"
    first = text[:text.index(end) + len(end)] + "\n"
    return sha256(ssl.PEM_cert_to_DER_cert(first))


def ctx_for(ca):
    return ssl.create_default_context(cafile=ca)


def read_reply(f):
    """One (possibly multi-line) SMTP reply from a file object."""
    lines = []
    while True:
        line = f.readline()
        if not line:
            break
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            break
    return b"".join(lines)


def tls_connect(port, ca, implicit, server_hostname="127.0.0.1", ctx=None,
                session=None):
    """A verified TLS socket, after the greeting (and EHLO/STARTTLS for a
    STARTTLS port); returns (ssl socket, file). `ctx` and `session` let a
    client offer an earlier session for resumption."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    if not implicit:
        f = raw.makefile("rb")
        read_reply(f)
        raw.sendall(b"EHLO fp.example\r\n")
        read_reply(f)
        raw.sendall(b"STARTTLS\r\n")
        rep = read_reply(f)
        if not rep.startswith(b"220"):
            raise RuntimeError("STARTTLS: %r" % rep)
        f.close()
    s = (ctx or ctx_for(ca)).wrap_socket(raw, server_hostname=server_hostname,
                                         suppress_ragged_eofs=False,
                                         session=session)
    f = s.makefile("rb")
    if implicit:
        read_reply(f)
    return s, f


def fingerprint_seen(port, ca, implicit, server_hostname="127.0.0.1"):
    s, f = tls_connect(port, ca, implicit, server_hostname)
    try:
        return sha256(s.getpeercert(binary_form=True))
    finally:
        f.close()
        s.close()


class Driver:
    """Drives an interactive client (openssl s_client) through pipes, with
    a deadline on every wait."""

    def __init__(self, cmd):
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.out = b""

    def send(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def wait_for(self, token, timeout=10):
        deadline = time.time() + timeout
        while token not in self.out:
            left = deadline - time.time()
            if left <= 0:
                return False
            ready, _, _ = select.select([self.p.stdout], [], [], left)
            if not ready:
                return False
            chunk = os.read(self.p.stdout.fileno(), 65536)
            if not chunk:
                return token in self.out
            self.out += chunk
        return True

    def finish(self, timeout=10):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        self.p.stdin = None  # communicate() must not touch it again
        try:
            _, err = self.p.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            self.p.kill()
            _, err = self.p.communicate(timeout=10)
            timed_out = True
        return timed_out, err.decode(errors="replace")


# ---- the clients -------------------------------------------------------------

def smtplib_clients(m, ca, tag):
    smtp, smtps = m.ports["smtp"][0], m.ports["smtps"][0]
    ctx = ctx_for(ca)

    # STARTTLS
    marker = ("smtplib-starttls-%s" % tag).encode()
    with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as s:
        s.ehlo("client.example")
        r.check(tag + " smtplib: STARTTLS advertised before TLS",
                s.has_extn("starttls"), s.esmtp_features)
        code, msg = s.starttls(context=ctx)
        r.check(tag + " smtplib starttls: 220", code == 220, (code, msg))
        version, cipher = s.sock.version(), s.sock.cipher()[0]
        r.check(tag + " smtplib starttls: TLSv1.2", version == "TLSv1.2",
                version)
        r.check(tag + " smtplib starttls: certificate verified",
                s.sock.getpeercert() is not None)
        s.ehlo("client.example")
        r.check(tag + " smtplib: STARTTLS not advertised after TLS",
                not s.has_extn("starttls"), s.esmtp_features)
        refused = s.sendmail(SENDER, [RCPT],
                             b"Subject: " + marker + b"\r\n\r\nbody\r\n")
        r.check(tag + " smtplib starttls: sendmail accepted", refused == {},
                refused)
        code, msg = s.docmd("STARTTLS")
        r.check(tag + " second STARTTLS gets 554 5.5.1",
                code == 554 and msg.startswith(b"5.5.1"), (code, msg))
        code, msg = s.noop()
        r.check(tag + " session usable after refused STARTTLS", code == 250,
                (code, msg))
    check_received(tag + " smtplib starttls", delivered(m, marker), cipher)

    # Implicit TLS
    marker = ("smtplib-smtps-%s" % tag).encode()
    with smtplib.SMTP_SSL("127.0.0.1", smtps, timeout=30, context=ctx) as s:
        version, cipher = s.sock.version(), s.sock.cipher()[0]
        r.check(tag + " SMTP_SSL: TLSv1.2", version == "TLSv1.2", version)
        s.ehlo("client.example")
        r.check(tag + " SMTP_SSL: no STARTTLS offered on smtps",
                not s.has_extn("starttls"), s.esmtp_features)
        code, msg = s.docmd("STARTTLS")
        r.check(tag + " SMTP_SSL: STARTTLS on smtps gets 554 5.5.1",
                code == 554 and msg.startswith(b"5.5.1"), (code, msg))
        # smtps is submission (RFC 8314): log in, send as yourself.
        s.login(RCPT, PASSWORD)
        refused = s.sendmail(RCPT, [RCPT],
                             b"Subject: " + marker + b"\r\n\r\nbody\r\n")
        r.check(tag + " SMTP_SSL: sendmail accepted", refused == {}, refused)
    check_received(tag + " SMTP_SSL", delivered(m, marker), cipher)


def name_checks(m, ca, tag, good_names):
    """The certificate verifies for the names it carries, and the checks
    are real: a wrong name and the system trust store both fail."""
    smtps = m.ports["smtps"][0]
    for name in good_names:
        try:
            fingerprint_seen(smtps, ca, True, server_hostname=name)
            ok, why = True, ""
        except (ssl.SSLError, OSError) as e:
            ok, why = False, e
        r.check(tag + " verifies as " + name, ok, why)
    try:
        fingerprint_seen(smtps, ca, True, server_hostname="wrong.example")
        ok = False
    except ssl.SSLCertVerificationError:
        ok = True
    except (ssl.SSLError, OSError):
        ok = False
    r.check(tag + " wrong host name fails verification", ok)
    try:
        s = ssl.create_default_context().wrap_socket(
            socket.create_connection(("127.0.0.1", smtps), timeout=10),
            server_hostname=HOST)
        s.close()
        ok = False
    except ssl.SSLCertVerificationError:
        ok = True
    except (ssl.SSLError, OSError):
        ok = False
    r.check(tag + " not trusted without the CA file", ok)


def close_notify_checks(m, ca, tag):
    """After 221 the server ends TLS with close_notify, not a bare FIN."""
    for implicit, port in ((True, m.ports["smtps"][0]),
                           (False, m.ports["smtp"][0])):
        kind = "smtps" if implicit else "starttls"
        s, f = tls_connect(port, ca, implicit)
        try:
            s.sendall(b"QUIT\r\n")
            rep = read_reply(f)
            r.check("%s %s: QUIT answered 221" % (tag, kind),
                    rep.startswith(b"221"), rep)
            try:
                rest = s.recv(100)
                outcome = "close_notify" if rest == b"" else repr(rest)
            except ssl.SSLEOFError:
                outcome = "TCP close without close_notify"
            except (ssl.SSLError, OSError) as e:
                outcome = repr(e)
            r.check("%s %s: close_notify after 221" % (tag, kind),
                    outcome == "close_notify", outcome)
        finally:
            f.close()
            s.close()


def resumption_checks(m, ca, tag):
    """A returning client resumes with the session ticket it was given
    (RFC 5077: no key exchange, no signature), on smtps and after
    STARTTLS, and the resumed session carries mail."""
    for implicit, port in ((True, m.ports["smtps"][0]),
                           (False, m.ports["smtp"][0])):
        kind = "smtps" if implicit else "starttls"
        ctx = ctx_for(ca)
        resumed_before = m.log().count("(resumed)")
        s, f = tls_connect(port, ca, implicit, ctx=ctx)
        s.sendall(b"QUIT\r\n")
        read_reply(f)
        first = s.session
        f.close()
        s.close()
        r.check("%s %s: the server issues a session ticket" % (tag, kind),
                first is not None and first.has_ticket)
        s, f = tls_connect(port, ca, implicit, ctx=ctx, session=first)
        try:
            reused = s.session_reused
            # smtps is for submission: log in first.
            auth = b"AUTH PLAIN %s\r\n" % base64.b64encode(
                b"\0" + RCPT.encode() + b"\0pw") if implicit else b""
            s.sendall(b"EHLO again.example\r\n" + auth +
                      b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n"
                      % (RCPT.encode(), RCPT.encode()))
            reps = [read_reply(f) for _ in range(5 if implicit else 4)]
            if implicit:
                r.check("%s smtps: AUTH over the resumed session" % tag,
                        reps.pop(1).startswith(b"235"))
            s.sendall(b"Subject: resumed-%s\r\n\r\nhi\r\n.\r\nQUIT\r\n"
                      % kind.encode())
            reps += [read_reply(f), read_reply(f)]
        finally:
            f.close()
            s.close()
        r.check("%s %s: a second connection resumes the session" % (tag, kind),
                reused)
        r.check("%s %s: maild logs the second handshake, only it, as resumed"
                % (tag, kind), m.log().count("(resumed)") == resumed_before + 1,
                m.log()[-600:])
        r.check("%s %s: mail over the resumed session is accepted" % (tag, kind),
                [x[:3] for x in reps] ==
                [b"250", b"250", b"250", b"354", b"250", b"221"], reps)
        r.check("%s %s: the resumed message is delivered" % (tag, kind),
                delivered(m, b"resumed-" + kind.encode(), wait=20) is not None)


def curl_clients(m, ca, tag, tmp):
    if not have("curl"):
        print("skipped: curl not installed")
        return
    for scheme, port in (("smtp", m.ports["smtp"][0]),
                         ("smtps", m.ports["smtps"][0])):
        marker = "curl-%s-%s" % (scheme, tag)
        path = os.path.join(tmp, marker + ".eml")
        with open(path, "wb") as f:
            f.write(("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\n"
                     "sent by curl\r\n" % (SENDER, RCPT, marker)).encode())
        cmd = ["curl", "-sS", "--max-time", "30", "--cacert", ca,
               "--mail-from", SENDER, "--mail-rcpt", RCPT,
               "--upload-file", path, "%s://127.0.0.1:%d" % (scheme, port)]
        if scheme == "smtp":
            cmd.insert(1, "--ssl-reqd")
        else:  # smtps is submission: log in, send as yourself
            cmd[cmd.index("--mail-from") + 1] = RCPT
            cmd[1:1] = ["--user", "%s:%s" % (RCPT, PASSWORD)]
        rc, out, err = run(cmd, timeout=40)
        r.check("%s curl %s://: exit 0" % (tag, scheme), rc == 0,
                (rc, err[-500:]))
        check_received("%s curl %s://" % (tag, scheme),
                       delivered(m, marker.encode()))
    # And curl does verify: with another CA it refuses (exit 60).
    other = os.path.join(tmp, "other.pem")
    openssl_selfsigned(tmp)
    rc, out, err = run(["curl", "-sS", "--max-time", "30", "--cacert", other,
                        "--mail-from", SENDER, "--mail-rcpt", RCPT,
                        "--upload-file", path,
                        "smtps://127.0.0.1:%d" % m.ports["smtps"][0]],
                       timeout=40)
    r.check(tag + " curl with another CA refuses the server (exit 60)",
            rc == 60, (rc, err[-300:]))


def openssl_selfsigned(tmp):
    """An unrelated self-signed certificate (PEM text)."""
    key = os.path.join(tmp, "other.key")
    crt = os.path.join(tmp, "other.pem")
    if not os.path.exists(crt):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out",
                crt, "-days", "30", "-subj", "/CN=other.example")
    with open(crt) as f:
        return f.read()


def swaks_clients(m, ca, tag, tmp):
    if not have("swaks"):
        print("skipped: swaks not installed")
        return
    for opt, port in (("--tls", m.ports["smtp"][0]),
                      ("--tls-on-connect", m.ports["smtps"][0])):
        marker = "swaks%s-%s" % (opt, tag)
        login = [] if opt == "--tls" else [
            "--auth", "PLAIN", "--auth-user", RCPT, "--auth-password",
            PASSWORD]  # smtps is submission: log in, send as yourself
        rc, out, err = run(["swaks", opt, "--tls-verify", "--tls-ca-path", ca,
                            "--server", "127.0.0.1", "--port", str(port),
                            "--from", SENDER if opt == "--tls" else RCPT,
                            "--to", RCPT, "--helo",
                            "swaks.example", "--header", "Subject: " + marker,
                            "--timeout", "20"] + login, timeout=60)
        text = out + err
        r.check("%s swaks %s: exit 0" % (tag, opt), rc == 0,
                (rc, text[-800:]))
        r.check("%s swaks %s: TLS started" % (tag, opt),
                "TLS started with cipher TLSv1.2" in text, text[-800:])
        r.check("%s swaks %s: 250 queued" % (tag, opt),
                "250 2.0.0 Ok: queued" in text, text[-800:])
        check_received("%s swaks %s" % (tag, opt),
                       delivered(m, marker.encode()))
    # swaks does verify: another CA makes STARTTLS fail.
    other = os.path.join(tmp, "other.pem")
    openssl_selfsigned(tmp)
    rc, out, err = run(["swaks", "--tls", "--tls-verify", "--tls-ca-path",
                        other, "--server", "127.0.0.1", "--port",
                        str(m.ports["smtp"][0]), "--from", SENDER, "--to",
                        RCPT, "--timeout", "20"], timeout=60)
    r.check(tag + " swaks with another CA: verification fails",
            rc != 0 and "certificate verify failed" in out + err,
            (rc, (out + err)[-400:]))


def s_client_session(tag, kind, cmd, m, implicit):
    marker = ("s_client-%s-%s" % (kind, tag)).encode()
    d = Driver(cmd)
    steps = []
    if implicit:
        steps.append((None, b"220 "))
    steps.append((b"EHLO s-client.example\r\n", b"250 "))
    sender = SENDER
    if implicit:  # smtps is submission: log in, send as yourself
        token = base64.b64encode(("\0%s\0%s" % (RCPT, PASSWORD)).encode())
        steps.append((b"AUTH PLAIN " + token + b"\r\n", b"235 "))
        sender = RCPT
    steps += [(b"MAIL FROM:<" + sender.encode() + b">\r\n", b"250 2.1.0"),
              (b"RCPT TO:<" + RCPT.encode() + b">\r\n", b"250 2.1.5"),
              (b"DATA\r\n", b"354 "),
              (b"Subject: " + marker + b"\r\n\r\nvia s_client\r\n.\r\n",
               b"250 2.0.0"),
              (b"QUIT\r\n", b"221 ")]
    ok = True
    for send, want in steps:
        if send is not None:
            try:
                d.send(send)
            except OSError:
                ok = False
                break
        if not d.wait_for(want, timeout=15):
            ok = False
            break
    timed_out, err = d.finish()
    r.check("%s s_client %s: dialogue completed" % (tag, kind), ok,
            (d.out[-400:], err[-600:]))
    r.check("%s s_client %s: exits after QUIT" % (tag, kind), not timed_out,
            err[-300:])
    r.check("%s s_client %s: Verification: OK" % (tag, kind),
            "Verification: OK" in err and "Protocol version: TLSv1.2" in err,
            err[-600:])
    if implicit:
        r.check("%s s_client %s: no STARTTLS offered" % (tag, kind),
                b"STARTTLS" not in d.out, d.out[:300])
    else:
        r.check("%s s_client %s: EHLO after TLS has no STARTTLS" % (tag, kind),
                b"250" in d.out and b"STARTTLS" not in d.out, d.out[:300])
    check_received("%s s_client %s" % (tag, kind), delivered(m, marker))


def s_client_clients(m, ca, tag, dnsnames):
    if not have("openssl"):
        print("skipped: openssl not installed")
        return
    smtp, smtps = m.ports["smtp"][0], m.ports["smtps"][0]
    base = ["openssl", "s_client", "-CAfile", ca, "-verify_return_error",
            "-brief", "-quiet"]
    s_client_session(tag, "starttls", base + [
        "-starttls", "smtp", "-connect", "127.0.0.1:%d" % smtp,
        "-verify_ip", "127.0.0.1"], m, False)
    s_client_session(tag, "starttls-sni", base + [
        "-starttls", "smtp", "-connect", "127.0.0.1:%d" % smtp,
        "-servername", dnsnames[0], "-verify_hostname", dnsnames[0]], m,
        False)
    s_client_session(tag, "smtps", base + [
        "-connect", "127.0.0.1:%d" % smtps, "-servername", dnsnames[-1],
        "-verify_hostname", dnsnames[-1]], m, True)


def record_layer_checks(m, ca, tag):
    """A 5 MiB message arrives byte for byte; commands sent one octet per
    TLS record are reassembled."""
    marker = ("big-%s" % tag).encode()
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" \
           b"0123456789\r\n"
    body = b"Subject: " + marker + b"\r\n\r\n" + line * (5 * 1024 * 1024 //
                                                         len(line))
    with smtplib.SMTP("127.0.0.1", m.ports["smtp"][0], timeout=60) as s:
        s.starttls(context=ctx_for(ca))
        s.ehlo("big.example")
        s.sendmail(SENDER, [RCPT], body)
    msg = delivered(m, marker, wait=20)
    r.check(tag + " 5 MiB over STARTTLS delivered intact",
            msg is not None and msg.endswith(body), len(msg or b""))

    s, f = tls_connect(m.ports["smtps"][0], ca, True)
    try:
        for b in b"EHLO tiny.example\r\nNOOP\r\n":
            s.sendall(bytes([b]))  # one record per octet
        rep = read_reply(f)
        rep2 = read_reply(f)
        r.check(tag + " commands in 1-octet records",
                rep.startswith(b"250-") and rep2.startswith(b"250"),
                (rep, rep2))
        s.sendall(b"NOOP\r\n" * 2000)  # pipelined, many records of replies
        n = 0
        while n < 2000:
            line = f.readline()
            if not line.startswith(b"250"):
                break
            n += 1
        r.check(tag + " 2000 pipelined NOOPs answered over TLS", n == 2000, n)
    finally:
        f.close()
        s.close()


def submission_check(m, ca, tag):
    if "submission" not in m.ports:
        return
    with smtplib.SMTP("127.0.0.1", m.ports["submission"][0],
                      timeout=30) as s:
        s.ehlo("client.example")
        r.check(tag + " submission: STARTTLS advertised",
                s.has_extn("starttls"), s.esmtp_features)
        code, _ = s.starttls(context=ctx_for(ca))
        s.ehlo("client.example")
        r.check(tag + " submission: verified TLS, no STARTTLS after",
                code == 220 and s.sock.version() == "TLSv1.2" and
                not s.has_extn("starttls"), s.esmtp_features)


def all_clients(m, ca, tag, dnsnames, tmp):
    smtplib_clients(m, ca, tag)
    name_checks(m, ca, tag, dnsnames + ["127.0.0.1"])
    close_notify_checks(m, ca, tag)
    resumption_checks(m, ca, tag)
    curl_clients(m, ca, tag, tmp)
    swaks_clients(m, ca, tag, tmp)
    s_client_clients(m, ca, tag, dnsnames)
    record_layer_checks(m, ca, tag)
    submission_check(m, ca, tag)


def sanitizer_clean(m, tag):
    rc = m.stop()
    log = m.log()
    r.check(tag + " maild exits 0", rc == 0, (rc, log[-800:]))
    r.check(tag + " no sanitizer reports",
            "Sanitizer" not in log and "runtime error:" not in log,
            log[-2000:])


def shutdown_checks(m, ca):
    """SIGTERM with an idle TLS session and a handshake in progress: the
    session is told 421 over TLS, the handshake is dropped, and maild
    exits 0 at once."""
    s, f = tls_connect(m.ports["smtp"][0], ca, False)
    s.sendall(b"EHLO idle.example\r\n")
    read_reply(f)
    half = socket.create_connection(("127.0.0.1", m.ports["smtps"][0]),
                                    timeout=10)
    start = time.time()
    sanitizer_clean(m, "configured")
    r.check("SIGTERM with TLS sessions open: exits within 10 s",
            time.time() - start < 10, time.time() - start)
    try:
        rep = read_reply(f)
    except (ssl.SSLError, OSError) as e:
        rep = repr(e).encode()
    r.check("SIGTERM: the TLS session gets 421 4.3.2 over TLS",
            rep.startswith(b"421 4.3.2"), rep)
    half.settimeout(5)
    try:
        rest = half.recv(100)
    except OSError as e:
        rest = repr(e).encode()
    r.check("SIGTERM: the unfinished handshake is closed, no plaintext",
            rest == b"" or rest[:1] == b"\x15", rest)
    for x in (f, s, half):
        x.close()


# ---- a test CA -----------------------------------------------------------------

def make_pki(d):
    """Root CA -> intermediate CA -> RSA server certificate for
    mx.example.test and 127.0.0.1; a second (ECDSA) server certificate
    from the same intermediate for the reload test."""
    p = lambda n: os.path.join(d, n)  # noqa: E731
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", p("root.key"),
            "-out", p("root.pem"), "-days", "3650", "-subj",
            "/CN=maild test root CA", "-addext",
            "basicConstraints=critical,CA:TRUE", "-addext",
            "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", p("int.key"),
            "-out", p("int.csr"), "-subj", "/CN=maild test intermediate")
    with open(p("int.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:TRUE,pathlen:0\n"
                "keyUsage=critical,keyCertSign,cRLSign\n")
    openssl("x509", "-req", "-in", p("int.csr"), "-CA", p("root.pem"),
            "-CAkey", p("root.key"), "-CAcreateserial", "-out", p("int.pem"),
            "-days", "3650", "-extfile", p("int.ext"))
    with open(p("srv.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:%s,IP:127.0.0.1\n" % HOST)
    for name, newkey in (("srv", ["rsa:2048"]),
                         ("srv2", ["ec", "-pkeyopt",
                                   "ec_paramgen_curve:P-256"])):
        openssl("req", "-new", "-newkey", *newkey, "-nodes", "-keyout",
                p(name + ".key"), "-out", p(name + ".csr"), "-subj",
                "/CN=" + HOST)
        openssl("x509", "-req", "-in", p(name + ".csr"), "-CA", p("int.pem"),
                "-CAkey", p("int.key"), "-CAcreateserial", "-out",
                p(name + ".pem"), "-days", "365", "-extfile", p("srv.ext"))
        with open(p(name + "-chain.pem"), "w") as out:
            for part in (name + ".pem", "int.pem"):
                with open(p(part)) as f:
                    out.write(f.read())
    return p


def replace_file(src, dst):
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def reload_checks(m, p, certdir):
    ca = p("root.pem")
    cert, key = os.path.join(certdir, "cert.pem"), os.path.join(certdir,
                                                                "key.pem")
    smtp = m.ports["smtp"][0]
    old_fp = pem_fingerprint(p("srv.pem"))
    new_fp = pem_fingerprint(p("srv2.pem"))
    r.check("reload: served certificate is the configured one",
            fingerprint_seen(smtp, ca, False) == old_fp)

    old = smtplib.SMTP("127.0.0.1", smtp, timeout=30)
    old.ehlo("old.example")
    old.starttls(context=ctx_for(ca))
    old.ehlo("old.example")

    # A handshake halfway through when the certificate changes.
    mid_raw = socket.create_connection(("127.0.0.1", m.ports["smtps"][0]),
                                       timeout=10)
    mid_in, mid_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    mid = ctx_for(ca).wrap_bio(mid_in, mid_out, server_hostname=HOST)
    mid_flight = b""
    try:
        mid.do_handshake()
    except ssl.SSLWantReadError:
        pass
    mid_raw.sendall(mid_out.read())
    while not mid_flight:
        data = mid_raw.recv(65536)
        if not data:
            break
        mid_in.write(data)
        try:
            mid.do_handshake()
        except ssl.SSLWantReadError:
            pass
        mid_flight = mid_out.read()

    reloads = len(re.findall("reloaded users", m.log()))
    replace_file(p("srv2-chain.pem"), cert)
    replace_file(p("srv2.key"), key)
    m.signal(signal.SIGHUP)
    r.check("reload: 'reloaded' logged after SIGHUP",
            m.wait_log("reloaded users, domains, aliases and certificate",
                       timeout=15, count=reloads + 1), m.log()[-500:])
    for implicit, port in ((False, smtp), (True, m.ports["smtps"][0])):
        fp = fingerprint_seen(port, ca, implicit)
        r.check("reload: new %s connection sees the new certificate" %
                ("smtps" if implicit else "STARTTLS"), fp == new_fp,
                (fp, new_fp, old_fp))
    try:
        mid_raw.sendall(mid_flight)
        while True:
            try:
                mid.do_handshake()
                break
            except ssl.SSLWantReadError:
                data = mid_raw.recv(65536)
                if not data:
                    raise OSError("closed")
                mid_in.write(data)
        mid.write(b"EHLO mid.example\r\n")
        mid_raw.sendall(mid_out.read())
        got = b""
        while b"250 " not in got:
            try:
                got += mid.read(65536)
            except ssl.SSLWantReadError:
                data = mid_raw.recv(65536)
                if not data:
                    break
                mid_in.write(data)
        ok = sha256(mid.getpeercert(binary_form=True)) == old_fp and \
            b"250 " in got
    except (ssl.SSLError, OSError) as e:
        ok = e
    mid_raw.close()
    r.check("reload: a handshake halfway through completes (old "
            "certificate) and the session works", ok is True, ok)
    r.check("reload: old TLS session still has the old certificate",
            sha256(old.sock.getpeercert(binary_form=True)) == old_fp)
    try:
        refused = old.sendmail(SENDER, [RCPT],
                               b"Subject: old-session\r\n\r\nstill here\r\n")
        old.quit()
        ok = refused == {}
    except (smtplib.SMTPException, OSError) as e:
        ok = e
    r.check("reload: old TLS session keeps working", ok is True, ok)
    check_received("reload: old session's message",
                   delivered(m, b"old-session"))

    # A storm of reloads, alternating the two pairs, while clients keep
    # connecting: every handshake verifies and sees one of the two.
    stop = []
    seen, errors = {}, []

    def client_loop():
        while not stop:
            try:
                fp = fingerprint_seen(m.ports["smtps"][0], ca, True)
                seen[fp] = seen.get(fp, 0) + 1
            except (ssl.SSLError, OSError) as e:
                errors.append(repr(e))
    threads = [threading.Thread(target=client_loop) for _ in range(4)]
    for t in threads:
        t.start()
    pairs = [("srv-chain.pem", "srv.key"), ("srv2-chain.pem", "srv2.key")]
    for i in range(12):
        before = len(re.findall("reloaded users|reload failed", m.log()))
        c, k = pairs[i % 2]
        # key first, then certificate: a reload between the two writes
        # sees a mismatched pair and must refuse it, not serve it.
        replace_file(p(k), key)
        replace_file(p(c), cert)
        m.signal(signal.SIGHUP)
        m.wait_log("reloaded users|reload failed", timeout=15,
                   count=before + 1)
    stop.append(1)
    for t in threads:
        t.join(timeout=30)
    r.check("reload storm: every client handshake verified",
            errors == [], errors[:3])
    r.check("reload storm: only the two certificates were served",
            set(seen) <= {old_fp, new_fp} and sum(seen.values()) > 0, seen)
    r.check("reload storm: maild alive", m.proc.poll() is None)
    # It ended on the second pair (12 is even: the last one was srv2).
    m.wait_log("reloaded users", timeout=5)
    before = len(re.findall("reloaded users", m.log()))
    m.signal(signal.SIGHUP)
    m.wait_log("reloaded users", timeout=15, count=before + 1)
    r.check("reload storm: the last pair is served",
            fingerprint_seen(smtp, ca, False) == new_fp)

    # A broken certificate, then a key that does not match: each reload
    # fails, is logged, and the running certificate stays.
    for what, action in (
            ("garbage certificate",
             lambda: open(cert, "w").write("not a certificate\n")),
            ("key of another pair",
             lambda: (replace_file(p("srv2-chain.pem"), cert),
                      replace_file(p("srv.key"), key)))):
        failures = len(re.findall("reload failed", m.log()))
        action()
        m.signal(signal.SIGHUP)
        r.check("reload with %s: 'reload failed' logged" % what,
                m.wait_log("reload failed", timeout=15, count=failures + 1),
                m.log()[-500:])
        try:
            fp = fingerprint_seen(smtp, ca, False)
        except (ssl.SSLError, OSError) as e:
            fp = e
        r.check("reload with %s: still serving the previous certificate" %
                what, fp == new_fp, fp)
    # Back to a good pair.
    replace_file(p("srv2-chain.pem"), cert)
    replace_file(p("srv2.key"), key)


# ---- 1. the generated certificate ---------------------------------------------

tmp = tempfile.mkdtemp(prefix="maild-tls-it-")
try:
    # The record-layer checks pipeline 2000 NOOPs: past the junk limit.
    with Maild(users={RCPT: "pw"}, extra="max-junk-commands 100000",
               listen=("smtp", "smtps", "submission")) as m:
        ca = os.path.join(m.data, "tls", "cert.pem")
        key = os.path.join(m.data, "tls", "key.pem")
        r.check("generated: cert.pem and key.pem exist",
                os.path.isfile(ca) and os.path.isfile(key))
        r.check("generated: key file mode 0600",
                os.stat(key).st_mode & 0o7777 == 0o600,
                oct(os.stat(key).st_mode))
        fp_file = pem_fingerprint(ca)
        r.check("generated: served certificate is the file's",
                fingerprint_seen(m.ports["smtps"][0], ca, True) == fp_file)
        all_clients(m, ca, "generated", [HOST, "localhost"], tmp)

        # SIGHUP with the generated certificate: same certificate after.
        m.signal(signal.SIGHUP)
        r.check("generated: SIGHUP reloads",
                m.wait_log("reloaded users, domains, aliases and certificate",
                           timeout=15), m.log()[-500:])
        r.check("generated: same certificate after SIGHUP",
                fingerprint_seen(m.ports["smtp"][0], ca, False) == fp_file)

        # Restart: the certificate is reused, not made again.
        with open(ca, "rb") as f:
            cert_bytes = f.read()
        with open(key, "rb") as f:
            key_bytes = f.read()
        sanitizer_clean(m, "generated")
        m.start()
        r.check("restart: same certificate file",
                open(ca, "rb").read() == cert_bytes)
        r.check("restart: same key file", open(key, "rb").read() == key_bytes)
        r.check("restart: key still 0600",
                os.stat(key).st_mode & 0o7777 == 0o600)
        fp = fingerprint_seen(m.ports["smtps"][0], ca, True)
        r.check("restart: same fingerprint served", fp == fp_file,
                (fp, fp_file))
        sanitizer_clean(m, "generated after restart")

    # ---- 2. a configured certificate from a CA ---------------------------------

    if not have("openssl"):
        print("skipped: configured certificate tests need openssl")
    else:
        p = make_pki(tmp)
        certdir = os.path.join(tmp, "conf")
        os.mkdir(certdir)
        replace_file(p("srv-chain.pem"), os.path.join(certdir, "cert.pem"))
        replace_file(p("srv.key"), os.path.join(certdir, "key.pem"))
        os.chmod(os.path.join(certdir, "key.pem"), 0o600)
        extra = ("tls-cert %s\ntls-key %s\ntimeout-tls 10s\n"
                 "max-junk-commands 100000\n") % (
            os.path.join(certdir, "cert.pem"),
            os.path.join(certdir, "key.pem"))
        with Maild(users={RCPT: "pw"}, listen=("smtp", "smtps"),
                   extra=extra) as m:
            r.check("configured: no certificate generated",
                    not os.path.exists(os.path.join(m.data, "tls",
                                                    "cert.pem")))
            all_clients(m, p("root.pem"), "configured", [HOST], tmp)
            reload_checks(m, p, certdir)
            r.check("configured: daemon alive", m.proc.poll() is None)
            shutdown_checks(m, p("root.pem"))
finally:
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(r.finish())
