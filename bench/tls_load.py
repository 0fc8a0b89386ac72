#!/usr/bin/env python3
"""tls_load.py -- maild against Postfix over STARTTLS, side by side.

The TLS companion of smtp_load.py (whose server set-up, /proc accounting
and clean-up it reuses): both servers offer STARTTLS with the SAME
certificate and key (by default the self-signed ECDSA P-256 certificate
maild generates in <data-dir>/tls/ on its first start; --cert/--key to
give another), and bench/tls_client (C, OpenSSL, one thread, epoll) is the
load generator, since smtp-source has no TLS. Cases, each run alternately
A B A B ... after a warm-up, median and min-max reported:

  handshake  -s sessions in parallel, each a new connection doing
             220, EHLO, STARTTLS, TLS handshake, EHLO, QUIT, until -m
             sessions are done: handshakes per second (client-measured,
             first connect to last close), server CPU ms per handshake
             (the whole session, TCP and SMTP included), the client's
             own CPU per handshake, handshake latency (STARTTLS reply to
             handshake done) p50/p99.
  message    the same with one message of --size octets per session
             (MAIL, RCPT, DATA after the EHLO over TLS): messages per
             second until the last one is in the Maildir (files in new/,
             as smtp_load.py counts), 250/s, server CPU ms per message.
  plain      (only with --modes ...,plain) like message, same client,
             no STARTTLS: the baseline that shows what TLS costs.

and the peak PSS summed over all the server's processes during each run.
The client offers every server the same handshake: TLS 1.2, one suite
(ECDHE-ECDSA-AES256-GCM-SHA384, maild's first choice), groups X25519 then
P-256, no session resumption, no tickets, no certificate verification
(--verify to check the chain too). The negotiated protocol, suite and group
of each server are printed.

Must run as root for Postfix (see smtp_load.py); without it, or without
Postfix, only maild is measured and the script says so. Everything lives
in one temporary directory, removed at the end, also on Ctrl-C/SIGTERM.

  bench/tls_load.py --quick       # ~1 minute
  bench/tls_load.py               # 5 runs per server and case
  bench/tls_load.py --modes handshake,message,plain --runs 7
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import smtp_load as sl  # noqa: E402  (the shared machinery)

ROOT = sl.ROOT
CLK_TCK = sl.CLK_TCK
log = sl.log

MODES = ("handshake", "message", "plain")


class TlsMaild(sl.Maild):
    """maild with its smtp listener offering STARTTLS: its generated
    certificate, or the given one."""

    def __init__(self, workdir, build, mailboxes, env=None, cert=None,
                 key=None):
        super().__init__(workdir, build, mailboxes, env)
        if cert:
            with open(self.conf, "a") as f:
                f.write("tls-cert %s\ntls-key %s\n" % (cert, key))
        self.cert = cert or os.path.join(self.data, "tls", "cert.pem")
        self.key = key or os.path.join(self.data, "tls", "key.pem")


def client_command(args, mode, port, conc, n, rcpt):
    cmd = [args.client, "-s", str(conc), "-m", str(n), "-T",
           str(args.session_timeout), "-C", args.cipher, "-G", args.groups]
    if args.tls13:
        cmd.append("--tls13")
    if args.verify:
        cmd += ["--ca", args.cert]
    if mode != "handshake":
        cmd += ["-l", str(args.size), "-t", rcpt]
    if mode == "plain":
        cmd.append("-P")
    return cmd + ["127.0.0.1:%d" % port]


def run_once(args, server, mode, conc, n, mailbox):
    """One batch of n sessions; returns a result dict."""
    rcpt = "%s@%s" % (mailbox, sl.DOMAIN)
    newdir = server.newdir(mailbox)
    counting = mode != "handshake"
    if counting and sl.count_files(newdir):
        raise RuntimeError("%s is not empty before its run" % newdir)
    root = server.root_pid()
    cpu0 = sl.cpu_ticks(root)
    sampler = sl.Sampler(root, args.sample_interval)
    sampler.sample()
    sampler.start()
    out_path = os.path.join(args.workdir, "client.out")
    err_path = os.path.join(args.workdir, "client.err")
    with open(out_path, "wb") as outf, open(err_path, "wb") as errf:
        t0 = time.monotonic()
        cl = subprocess.Popen(client_command(args, mode, server.port, conc,
                                             n, rcpt),
                              stdout=outf, stderr=errf,
                              stdin=subprocess.DEVNULL,
                              start_new_session=True)
        args.live_client = cl
        deadline = t0 + args.timeout_base + n / args.min_rate
        t_done = t_del = None
        count, last_change = 0, t0
        try:
            while True:
                now = time.monotonic()
                if t_done is None and cl.poll() is not None:
                    t_done = now
                    if not counting:
                        break
                if counting:
                    c = sl.count_files(newdir)
                    if c != count:
                        count, last_change = c, now
                    if c >= n:
                        t_del = now
                        if t_done is not None:
                            break
                if now > deadline:
                    break
                if (t_done is not None
                        and now - max(last_change, t_done) > args.stall):
                    break
                time.sleep(args.poll)
            try:
                cl.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        finally:
            if cl.poll() is None:
                cl.kill()
                cl.wait(timeout=10)
            args.live_client = None
    # As smtp_load.py: wait until the server's CPU time stops moving.
    cpu1, still = sl.cpu_ticks(root), time.monotonic()
    q_end = still + 3
    while time.monotonic() < q_end:
        time.sleep(0.1)
        c = sl.cpu_ticks(root)
        if c != cpu1:
            cpu1, still = c, time.monotonic()
        elif time.monotonic() - still >= 0.3:
            break
    sampler.stop()
    with open(out_path, "rb") as f:
        out_text = f.read().decode(errors="replace").strip()
    with open(err_path, "rb") as f:
        err_text = f.read().decode(errors="replace").strip()
    try:
        cj = json.loads(out_text.splitlines()[-1])
    except (ValueError, IndexError):
        cj = {}
    problems = []
    if cl.returncode != 0:
        problems.append("tls_client exit %s: %s"
                        % (cl.returncode, err_text[-400:]))
    if cj.get("ok", -1) != n:
        problems.append("%s of %d sessions completed"
                        % (cj.get("ok", "?"), n))
    final = sl.count_files(newdir) if counting else 0
    if counting:
        if final < n:
            problems.append("%d of %d messages delivered" % (final, n))
        elif final > n:
            problems.append("%d deliveries for %d messages (duplicates)"
                            % (final, n))
        args.final_counts[(server.name, mailbox)] = final
        args.box_mode[(server.name, mailbox)] = mode
    if not server.alive():
        problems.append("server is not running any more")
    elapsed = cj.get("elapsed_s") or None
    hs = cj.get("handshakes", 0)
    cpu_s = (cpu1 - cpu0) / CLK_TCK
    res = {
        "server": server.name, "mode": mode, "conc": conc, "n": n,
        "size": args.size if counting else 0,
        "ok": cj.get("ok"), "failed": cj.get("failed"),
        "handshakes": hs, "client_elapsed_s": elapsed,
        "hs_per_s": (hs / elapsed if (mode == "handshake" and elapsed
                                      and hs) else None),
        "msgs_per_s": n / (t_del - t0) if (counting and t_del) else None,
        "accept_per_s": (cj.get("ok", 0) / elapsed
                         if (counting and elapsed) else None),
        "server_cpu_s": cpu_s,
        "cpu_ms": cpu_s * 1000.0 / n,
        "client_cpu_ms": (cj.get("client_cpu_s", 0) * 1000.0 / n
                          if cj else None),
        "hs_ms_p50": cj.get("hs_ms_p50") if hs else None,
        "hs_ms_p99": cj.get("hs_ms_p99") if hs else None,
        "protocol": cj.get("protocol"), "suite": cj.get("suite"),
        "group": cj.get("group"),
        "peak_pss_mib": sampler.peak_kib / 1024.0,
        "peak_procs": sampler.peak_procs,
        "delivered": final,
        "problems": problems,
    }
    return res


def fmt_run(r):
    what = "c=%d %s" % (r["conc"], r["mode"])
    if r["mode"] == "handshake":
        s = ("  %-7s %-15s %6.0f handshakes/s  %5.2f CPU ms/hs  client "
             "%4.2f ms/hs  p50 %5.1f ms p99 %5.1f ms  %6.1f MiB PSS (%d procs)"
             % (r["server"], what, r["hs_per_s"] or 0, r["cpu_ms"],
                r["client_cpu_ms"] or 0, r["hs_ms_p50"] or 0,
                r["hs_ms_p99"] or 0, r["peak_pss_mib"], r["peak_procs"]))
    else:
        s = ("  %-7s %-15s %6.0f msgs/s delivered  %6.0f 250/s  %5.2f CPU "
             "ms/msg  client %4.2f ms/msg  %6.1f MiB PSS (%d procs)"
             % (r["server"], what, r["msgs_per_s"] or 0,
                r["accept_per_s"] or 0, r["cpu_ms"], r["client_cpu_ms"] or 0,
                r["peak_pss_mib"], r["peak_procs"]))
    if r["problems"]:
        s += "  PROBLEM: " + "; ".join(r["problems"])
    return s


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def summarize(results, names, cases):
    by = {}
    for r in results:
        by.setdefault((r["server"], r["mode"], r["conc"]), []).append(r)
    out = []
    metrics = [("handshakes/s", "hs_per_s", "%.0f"),
               ("msgs/s delivered", "msgs_per_s", "%.0f"),
               ("250/s", "accept_per_s", "%.0f"),
               ("server CPU ms per session", "cpu_ms", "%.2f"),
               ("client CPU ms per session", "client_cpu_ms", "%.2f"),
               ("handshake p50 ms", "hs_ms_p50", "%.1f"),
               ("peak PSS MiB", "peak_pss_mib", "%.1f")]
    out.append("| case | server | " + " | ".join(m[0] for m in metrics)
               + " |")
    out.append("|" + "---|" * (2 + len(metrics)))
    for mode, conc in cases:
        for n in names:
            rs = by.get((n, mode, conc), [])
            row = ["c=%d %s" % (conc, mode), n]
            for _, key, fmt in metrics:
                row.append(sl.med_range([r[key] for r in rs], fmt))
            bad = sum(1 for r in rs if r["problems"])
            if bad:
                row[1] += " (%d of %d runs had problems)" % (bad, len(rs))
            out.append("| " + " | ".join(row) + " |")
    if len(names) == 2:
        out.append("")
        out.append("Ratios of medians (%s / %s):" % tuple(names))
        out.append("")
        out.append("| case | rate | server CPU per session | peak PSS |")
        out.append("|---|---|---|---|")
        for mode, conc in cases:
            key = "hs_per_s" if mode == "handshake" else "msgs_per_s"
            cells = []
            for k in (key, "cpu_ms", "peak_pss_mib"):
                a = med(r[k] for r in by.get((names[0], mode, conc), []))
                b = med(r[k] for r in by.get((names[1], mode, conc), []))
                cells.append("%.2f×" % (a / b) if a and b else "-")
            out.append("| c=%d %s | %s |" % (conc, mode, " | ".join(cells)))
    return "\n".join(out)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="maild vs Postfix over STARTTLS: handshakes/s, "
                    "messages/s until delivered, CPU, peak PSS.")
    p.add_argument("--quick", action="store_true",
                   help="few sessions, one run, no warm-up (~1 minute)")
    p.add_argument("--runs", type=int,
                   help="runs per server and case (default 5; quick: 1)")
    p.add_argument("--modes", default="handshake,message",
                   help="comma-separated: handshake, message, plain "
                        "(default handshake,message)")
    p.add_argument("--concurrency", default="50",
                   help="comma-separated session counts (default 50)")
    p.add_argument("--handshakes", type=int,
                   help="sessions per handshake run (default 2000; "
                        "quick: 400)")
    p.add_argument("--messages", type=int,
                   help="messages per message/plain run (default 2000; "
                        "quick: 400)")
    p.add_argument("--size", type=int, default=1024,
                   help="message payload octets (default 1024)")
    p.add_argument("--servers", default="maild,postfix")
    p.add_argument("--build", default=os.path.join(ROOT, "build-rel"),
                   help="build directory with daemon/maild and "
                        "bench/tls_client (default: build-rel)")
    p.add_argument("--client", help="tls_client binary (default: "
                   "BUILD/bench/tls_client)")
    p.add_argument("--cert", help="PEM certificate for both servers "
                   "(default: the one maild generates)")
    p.add_argument("--key", help="PEM private key to go with --cert")
    p.add_argument("--cipher", default="ECDHE-ECDSA-AES256-GCM-SHA384",
                   help="OpenSSL cipher list the client offers")
    p.add_argument("--groups", default="X25519:P-256",
                   help="ECDHE groups the client offers, in order")
    p.add_argument("--tls13", action="store_true",
                   help="let the client negotiate TLS 1.3 (Postfix will; "
                        "maild is TLS 1.2 only)")
    p.add_argument("--verify", action="store_true",
                   help="client verifies the certificate chain")
    p.add_argument("--tmpdir", default=None)
    p.add_argument("--json", help="also write every run's numbers here")
    p.add_argument("--maild-env", action="append", default=[],
                   metavar="VAR=VALUE")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary directory (logs) at the end")
    p.add_argument("--session-timeout", type=float, default=60.0,
                   help=argparse.SUPPRESS)
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
    if a.handshakes is None:
        a.handshakes = 400 if a.quick else 2000
    if a.messages is None:
        a.messages = 400 if a.quick else 2000
    a.mode_list = [m.strip() for m in a.modes.split(",") if m.strip()]
    try:
        a.conc_list = [int(x) for x in a.concurrency.split(",") if x]
    except ValueError:
        p.error("--concurrency takes comma-separated numbers")
    if (not a.mode_list or not set(a.mode_list) <= set(MODES)
            or not a.conc_list or min(a.conc_list) < 1
            or max(a.conc_list) > 500 or a.runs < 1 or a.size < 0
            or a.handshakes < 1 or a.messages < 1):
        p.error("bad --modes, --concurrency, --runs, --size or counts")
    if bool(a.cert) != bool(a.key):
        p.error("--cert and --key go together")
    if a.cert:
        a.cert, a.key = os.path.abspath(a.cert), os.path.abspath(a.key)
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
    a.client = a.client or os.path.join(os.path.abspath(a.build), "bench",
                                        "tls_client")
    return a


def main(argv):
    args = parse_args(argv)

    sl.trap_signals()

    if not os.access(args.client, os.X_OK):
        raise SystemExit("no %s: build it (ninja -C build-rel; needs "
                         "libssl-dev) or give --client" % args.client)
    notes = []
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
    if "maild" not in args.server_list and not args.cert:
        raise SystemExit("without maild, give --cert and --key")

    cases = [(m, c) for m in args.mode_list for c in args.conc_list]
    warm = not args.quick
    per_case = args.runs + (1 if warm else 0)
    mailboxes = ["r%03d" % i for i in range(len(cases) * per_case)]
    args.workdir = tempfile.mkdtemp(prefix="maild-tlsbench-",
                                    dir=args.tmpdir or None)
    os.chmod(args.workdir, 0o755)  # Postfix's daemons must reach it
    args.final_counts = {}
    args.box_mode = {}
    args.live_client = None
    servers, results, rc = [], [], 0
    try:
        for n in notes:
            log("NOTE: " + n)
        if "maild" in args.server_list:
            m = TlsMaild(args.workdir, os.path.abspath(args.build),
                         mailboxes, args.maild_env, args.cert, args.key)
            # First start: maild makes its certificate (unless given one).
            m.start()
            m.stop()
            if not args.cert:
                args.cert, args.key = m.cert, m.key
            servers.append(m)
        for f in (args.cert, args.key):
            if not os.path.isfile(f):
                raise RuntimeError("no %s (maild did not create it?)" % f)
        if want_pf:
            servers.append(sl.Postfix(args.workdir, mailboxes,
                                      {"POSTFIX_TLS_CERT": args.cert,
                                       "POSTFIX_TLS_KEY": args.key}))
        r = subprocess.run(["openssl", "x509", "-noout", "-subject",
                            "-text", "-in", args.cert],
                           capture_output=True, text=True)
        keyinfo = ""
        for line in r.stdout.splitlines():
            line = line.strip()
            if line.startswith(("Public Key Algorithm", "NIST CURVE",
                                "ASN1 OID")):
                keyinfo += (", " if keyinfo else "") + line
        names = [s.name for s in servers]
        log("servers: " + ", ".join(s.version() for s in servers))
        log("certificate (both servers): %s%s" % (
            args.cert, " (%s)" % keyinfo if keyinfo else ""))
        log("disk: " + sl.filesystem(args.workdir))
        log("load: %s, %d run(s) per server and case%s; workdir %s"
            % (" ".join(client_command(args, "handshake", 0, 0, 0, "")[:1]
                        + ["-C", args.cipher, "-G", args.groups]
                        + (["--tls13"] if args.tls13 else [])),
               args.runs, ", after a warm-up" if warm else "",
               args.workdir))
        mb = iter(mailboxes)
        negotiated = {}
        for mode, conc in cases:
            n = args.handshakes if mode == "handshake" else args.messages
            log("== c=%d %s, %d sessions per run" % (conc, mode, n))
            for s in servers:
                s.start()
            try:
                if warm:
                    box = next(mb)
                    for s in servers:
                        r = run_once(args, s, mode, conc,
                                     max(50, min(n // 4, 500)), box)
                        if r["problems"]:
                            log("  warm-up %s: %s"
                                % (s.name, "; ".join(r["problems"])))
                for i in range(args.runs):
                    box = next(mb)
                    for s in servers:  # A B A B ...
                        r = run_once(args, s, mode, conc, n, box)
                        r["run"] = i + 1
                        results.append(r)
                        log(fmt_run(r))
                        if r["protocol"]:
                            negotiated.setdefault(s.name, "%s %s %s" % (
                                r["protocol"], r["suite"], r["group"]))
                        if r["problems"]:
                            rc = 1
                            log("  (server log: %s)" % s.logfile())
            finally:
                for s in servers:
                    s.stop()
        for s in servers:
            late = sum(sl.count_files(s.newdir(b))
                       - args.final_counts.get((s.name, b), 0)
                       for b in mailboxes
                       if (s.name, b) in args.final_counts)
            if late:
                rc = 1
                log("PROBLEM: %s delivered %d message(s) after their run "
                    "ended" % (s.name, late))
        # Did the messages say they came over TLS? (RFC 3848: ESMTPS)
        esmtps = {}
        for s in servers:
            for (sn, b), cnt in args.final_counts.items():
                if (sn != s.name or not cnt
                        or args.box_mode.get((sn, b)) != "message"):
                    continue
                d = s.newdir(b)
                try:
                    f0 = sorted(os.listdir(d))[0]
                    with open(os.path.join(d, f0), "rb") as f:
                        head = f.read(4096)
                    esmtps.setdefault(s.name, []).append(
                        b"ESMTPS" in head.split(b"\n\n")[0])
                except (OSError, IndexError):
                    pass
        print()
        print("%s over STARTTLS, %s; %d run(s) per server and case, "
              "alternating, median (min–max)." % (
                  " vs ".join(s.version().split(" (")[0] for s in servers),
                  time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  args.runs))
        print("Servers: " + "; ".join(s.version() for s in servers) + ".")
        print("Certificate, the same for both: %s%s." % (
            args.cert, " (%s)" % keyinfo if keyinfo else ""))
        print("Negotiated: " + "; ".join(
            "%s %s" % (k, v) for k, v in negotiated.items()) + ".")
        print("Client: bench/tls_client, one connection per session, "
              "%d sessions per handshake run, %d per message run of %d "
              "octets." % (args.handshakes, args.messages, args.size))
        print("Disk: " + sl.filesystem(args.workdir) + ".")
        for k, v in esmtps.items():
            print("Received: ... with ESMTPS in %s's messages: %s"
                  % (k, "yes" if all(v) else "NO (%d of %d mailboxes)"
                     % (v.count(False), len(v))))
        for n in notes:
            print("NOTE: " + n)
        print()
        print(summarize(results, names, cases))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                           "argv": sys.argv, "notes": notes,
                           "negotiated": negotiated, "runs": results}, f,
                          indent=1)
        return rc
    except (KeyboardInterrupt, sl.Interrupted) as e:
        log("interrupted (%s): cleaning up" % (e or "Ctrl-C"))
        return 130
    finally:
        sl.clean_up(args, servers, args.live_client)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
