# Sourced by scripts/run and scripts/test: installs the Debian 12 packages
# the build needs, and only those that are missing.
maild_install_deps() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' ||
      missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # Postfix is only a test peer (smtp-source, smtp-sink) and a benchmark
  # baseline: install it unconfigured, so it takes no port and starts
  # nothing.
  echo "postfix postfix/main_mailer_type select No configuration" |
    $sudo debconf-set-selections
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
}

MAILD_BUILD_DEPS=(cmake ninja-build gcc pkg-config libuv1-dev libmbedtls-dev
  libldns-dev libcmocka-dev libcrypt-dev)
MAILD_TEST_DEPS=(clang libclang-rt-14-dev python3 swaks curl strace postfix
  openssl unbound)
