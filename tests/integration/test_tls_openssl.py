#!/usr/bin/env python3
"""The self-signed certificate libmaild generates (lib/io/tls_cert.c), as
OpenSSL sees it: X.509 v3, ECDSA P-256 with SHA-256, CN and subjectAltName
(DNS:hostname, DNS:localhost, IP:127.0.0.1), CA:TRUE, keyUsage and
extendedKeyUsage fit for a TLS server, valid from a day ago for ten years;
`openssl verify` accepts it as its own trust anchor for those names; the
key file is 0600, matches the certificate, and neither file is replaced on
a second run. The certificate is written by `test_tls --generate` (the unit
test binary), since the daemon does not generate one yet."""
import calendar
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from maildtest import BUILD, Results, have  # noqa: E402

TEST_TLS = os.path.join(BUILD, "tests", "test_tls")
HOST = "mx.example.test"


def openssl(*args):
    p = subprocess.run(["openssl"] + list(args), capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def openssl_time(text):
    """'notBefore=Nov 26 04:26:14 2026 GMT' -> seconds since the epoch."""
    value = text.strip().split("=", 1)[1]
    return calendar.timegm(time.strptime(value, "%b %d %H:%M:%S %Y %Z"))


r = Results()
if not have("openssl") or not os.access(TEST_TLS, os.X_OK):
    print("skipped: needs openssl and %s" % TEST_TLS)
    sys.exit(r.finish())

with tempfile.TemporaryDirectory(prefix="maild-tls-") as d:
    cert = os.path.join(d, "cert.pem")
    key = os.path.join(d, "key.pem")
    p = subprocess.run([TEST_TLS, "--generate", cert, key, HOST],
                       capture_output=True, text=True, timeout=60)
    r.check("generated", p.returncode == 0, p.stderr)
    r.check("key mode 0600", os.stat(key).st_mode & 0o7777 == 0o600,
            oct(os.stat(key).st_mode))
    r.check("certificate mode 0644", os.stat(cert).st_mode & 0o7777 == 0o644,
            oct(os.stat(cert).st_mode))
    r.check("no temporary files", sorted(os.listdir(d)) ==
            ["cert.pem", "key.pem"], os.listdir(d))

    rc, text = openssl("x509", "-in", cert, "-noout", "-text")
    r.check("openssl parses the certificate", rc == 0, text)
    for want in ("Version: 3 (0x2)", "ecdsa-with-SHA256", "NIST CURVE: P-256",
                 "Subject: CN = " + HOST, "Issuer: CN = " + HOST,
                 "CA:TRUE", "Digital Signature, Certificate Sign",
                 "TLS Web Server Authentication",
                 "DNS:%s, DNS:localhost, IP Address:127.0.0.1" % HOST,
                 "X509v3 Subject Key Identifier",
                 "X509v3 Authority Key Identifier"):
        r.check("certificate shows " + want, want in text, text[:2000])

    rc, start = openssl("x509", "-in", cert, "-noout", "-startdate")
    rc2, end = openssl("x509", "-in", cert, "-noout", "-enddate")
    if r.check("validity readable", rc == 0 and rc2 == 0, start + end):
        now = time.time()
        nb, na = openssl_time(start), openssl_time(end)
        r.check("valid from about a day ago",
                now - 2 * 86400 < nb <= now - 86400 + 60, (nb, now))
        years = (na - nb) / (365.25 * 86400)
        r.check("valid for ten years", 9.99 < years < 10.01, years)

    rc, text = openssl("verify", "-CAfile", cert, cert)
    r.check("openssl verify -CAfile cert cert", rc == 0 and ": OK" in text,
            text)
    for opt, name in (("-verify_hostname", HOST),
                      ("-verify_hostname", "localhost"),
                      ("-verify_ip", "127.0.0.1")):
        rc, text = openssl("verify", "-purpose", "sslserver", opt, name,
                           "-CAfile", cert, cert)
        r.check("verifies as a TLS server for " + name, rc == 0, text)
    rc, text = openssl("verify", "-verify_hostname", "other.example",
                       "-CAfile", cert, cert)
    r.check("does not verify for another name", rc != 0, text)

    rc, text = openssl("pkey", "-in", key, "-check", "-noout")
    r.check("key is a valid private key", rc == 0, text)
    rc, pub_key = openssl("pkey", "-in", key, "-pubout")
    rc2, pub_cert = openssl("x509", "-in", cert, "-noout", "-pubkey")
    r.check("key matches certificate", rc == 0 and rc2 == 0 and
            pub_key == pub_cert, (pub_key, pub_cert))

    before = open(cert, "rb").read(), open(key, "rb").read()
    p = subprocess.run([TEST_TLS, "--generate", cert, key, HOST],
                       capture_output=True, text=True, timeout=60)
    r.check("second run refuses to overwrite", p.returncode != 0 and
            "already exists" in p.stderr, p.stderr)
    after = open(cert, "rb").read(), open(key, "rb").read()
    r.check("files unchanged", before == after)

sys.exit(r.finish())
