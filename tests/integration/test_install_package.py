#!/usr/bin/env python3
"""Packaging: the library installs, and a program finds it the two ways an
embedder would (CMake's find_package(maild) and pkg-config), links, and
runs. Also checks the shared library's SONAME and that it exports only the
public maild_ API (hidden symbols by default).

Builds a plain copy of the library (no sanitizers) in a temporary
directory, so the consumer needs no special flags."""
import os
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ.get("MAILD_SOURCE_DIR",
                     os.path.join(os.path.dirname(__file__), "..", ".."))
passed = failed = 0

CONSUMER_C = r"""
#include <maild/maild.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  maild_smtp_server *s;
  const uint8_t *out;
  maild_ssize n;
  const char *cmd = "EHLO consumer.example\r\nQUIT\r\n";
  char all[4096] = "";

  if (maild_smtp_server_new(&s, NULL, NULL, NULL, NULL) != 0)
    return 1;
  n = maild_smtp_server_send(s, &out);
  strncat(all, (const char *)out, (size_t)n);
  if (maild_smtp_server_recv(s, (const uint8_t *)cmd, strlen(cmd)) < 0)
    return 2;
  while ((n = maild_smtp_server_send(s, &out)) > 0)
    strncat(all, (const char *)out, (size_t)n);
  maild_smtp_server_del(s);
  printf("%s", all);
  return strstr(all, "221 2.0.0") != NULL ? 0 : 3;
}
"""

# A libuv program embedding the server, linked statically: pulls in the
# runtime and so every dependency of the static library.
CONSUMER_UV_C = r"""
#include <maild/maild.h>
#include <maild/server.h>

int main(void) {
  maild_server *srv;
  uv_loop_t *loop = uv_default_loop();
  int port = 0;

  if (maild_server_new(&srv, loop, NULL, NULL, NULL, NULL) != 0 ||
      maild_server_listen(srv, MAILD_SERVICE_SMTP, "127.0.0.1", 0, &port))
    return 1;
  maild_server_close(srv, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  return port > 0 && uv_loop_close(loop) == 0 ? 0 : 2;
}
"""

CONSUMER_CMAKE = """
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(maild REQUIRED)
add_executable(consumer consumer.c)
target_link_libraries(consumer PRIVATE maild::maild)
add_executable(consumer_uv consumer_uv.c)
target_link_libraries(consumer_uv PRIVATE maild::maild_static)
"""


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True,
                          timeout=600, **kw)


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   " + name)
    else:
        failed += 1
        print("FAIL " + name + (": " + detail if detail else ""))


def main():
    tmp = tempfile.mkdtemp(prefix="maild-install-")
    try:
        build = os.path.join(tmp, "build")
        prefix = os.path.join(tmp, "prefix")
        env = dict(os.environ, CC="cc")
        run(["cmake", "-S", SRC, "-B", build, "-G", "Ninja",
             "-DCMAKE_BUILD_TYPE=Release", "-DMAILD_BUILD_TESTS=OFF",
             "-DMAILD_BUILD_EXAMPLES=OFF", "-DMAILD_BUILD_FUZZ=OFF",
             "-DMAILD_BUILD_BENCH=OFF", "-DMAILD_BUILD_DAEMON=OFF"], env=env)
        run(["cmake", "--build", build])
        run(["cmake", "--install", build, "--prefix", prefix])
        libdir = next(os.path.join(prefix, d) for d in ("lib", "lib64",
                      "lib/x86_64-linux-gnu")
                      if os.path.exists(os.path.join(prefix, d,
                                                     "libmaild.so")))
        so = os.path.realpath(os.path.join(libdir, "libmaild.so"))

        dyn = run(["objdump", "-p", so]).stdout
        soname = [l.split()[1] for l in dyn.split("\n")
                  if l.strip().startswith("SONAME")]
        check("SONAME is libmaild.so.0", soname == ["libmaild.so.0"],
              repr(soname))

        syms = run(["nm", "-D", "--defined-only", so]).stdout.split("\n")
        exported = [l.split()[-1] for l in syms if l.strip() and
                    l.split()[1] in ("T", "D", "B", "R")]
        bad = [s for s in exported if not s.startswith("maild_")
               or s.startswith("maild__")]
        check("only public maild_ symbols exported", not bad and
              "maild_smtp_server_new" in exported, " ".join(bad[:10]))

        src = os.path.join(tmp, "consumer")
        os.makedirs(src)
        with open(os.path.join(src, "consumer.c"), "w") as f:
            f.write(CONSUMER_C)
        with open(os.path.join(src, "consumer_uv.c"), "w") as f:
            f.write(CONSUMER_UV_C)
        with open(os.path.join(src, "CMakeLists.txt"), "w") as f:
            f.write(CONSUMER_CMAKE)
        cb = os.path.join(tmp, "cbuild")
        run(["cmake", "-S", src, "-B", cb, "-G", "Ninja",
             "-DCMAKE_PREFIX_PATH=" + prefix], env=env)
        run(["cmake", "--build", cb])
        runenv = dict(os.environ, LD_LIBRARY_PATH=libdir)
        out = subprocess.run([os.path.join(cb, "consumer")], env=runenv,
                             capture_output=True, text=True, timeout=60)
        check("find_package(maild) consumer runs", out.returncode == 0 and
              out.stdout.startswith("220 "), out.stdout + out.stderr)
        out = subprocess.run([os.path.join(cb, "consumer_uv")],
                             capture_output=True, text=True, timeout=60)
        check("static libuv consumer runs the server", out.returncode == 0,
              out.stdout + out.stderr)

        pcenv = dict(os.environ,
                     PKG_CONFIG_PATH=os.path.join(libdir, "pkgconfig"))
        flags = run(["pkg-config", "--cflags", "--libs", "maild"],
                    env=pcenv).stdout.split()
        exe = os.path.join(tmp, "consumer-pc")
        run(["cc", "-o", exe, os.path.join(src, "consumer.c")] + flags)
        static_flags = run(["pkg-config", "--static", "--libs", "maild"],
                           env=pcenv).stdout.split()
        check("pkg-config --static lists the dependencies",
              "-luv" in static_flags and "-lcrypt" in static_flags,
              " ".join(static_flags))
        out = subprocess.run([exe], env=runenv, capture_output=True,
                             text=True, timeout=60)
        check("pkg-config consumer runs", out.returncode == 0,
              out.stdout + out.stderr)
    except subprocess.CalledProcessError as e:
        check("build step " + " ".join(e.cmd[:3]), False,
              (e.stdout or "")[-2000:] + (e.stderr or "")[-2000:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
