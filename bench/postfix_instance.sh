#!/bin/sh
# postfix_instance.sh -- a private Postfix instance for benchmarks.
#
# Sets up, starts, stops and removes a Postfix instance that lives entirely
# under one directory (its own config_directory, queue_directory,
# data_directory, mailboxes and log), listens on 127.0.0.1 on a port given
# at setup, and delivers mail for its virtual domain to Maildir with the
# virtual(8) agent. It never touches /etc/postfix (only reads postfix-files
# and dynamicmaps.cf there, as every instance does) nor port 25.
#
#   postfix_instance.sh setup DIR PORT DOMAIN LOCALPART...
#       create DIR/etc (main.cf, master.cf, vmailbox), DIR/queue, DIR/data,
#       DIR/mail/DOMAIN/LOCALPART/{tmp,new,cur} and DIR/log; DIR must not
#       exist yet or be empty.
#   postfix_instance.sh start DIR      start it (postfix -c DIR/etc start)
#   postfix_instance.sh stop DIR       stop it, waiting until master is gone
#   postfix_instance.sh pid DIR        print the master's process id
#   postfix_instance.sh maildir DIR ADDRESS
#                                      print the Maildir new/ of ADDRESS
#   postfix_instance.sh teardown DIR   stop it if running and remove DIR
#
# Environment: POSTFIX_PROCESS_LIMIT (default 200) sets
# default_process_limit; POSTFIX_VIRTUAL_UID (default: nobody's uid) is the
# owner of the mailboxes and the uid virtual(8) delivers as.
# POSTFIX_TLS_CERT and POSTFIX_TLS_KEY (PEM files, both or neither; read by
# setup) turn on STARTTLS in smtpd: smtpd_tls_security_level = may with
# that certificate and key (smtpd_tls_chain_files, any key type), the
# tlsmgr(8) service, everything else at Postfix's TLS defaults (no server
# session cache, tickets on, logging off). Without them there is no TLS.
#
# Durability, as Postfix does it: cleanup(8) fsyncs each queue file before
# smtpd answers 250 (Postfix has no switch to turn that off), and virtual(8)
# fsyncs each Maildir file in tmp/ before renaming it into new/
# (mail_copy() with MAIL_COPY_TOFILE). Postfix does not fsync the
# directories after the rename, neither the queue directory nor new/
# (strace -f of a running instance shows fsync on the files only); maild
# also fsyncs the directories. See bench/README.md.
#
# Must run as root (Postfix's master does). Requires the Debian package
# postfix, installed without configuration:
#   echo "postfix postfix/main_mailer_type select No configuration" \
#     | debconf-set-selections
#   DEBIAN_FRONTEND=noninteractive apt-get install -y postfix

set -eu

PROG=postfix_instance.sh
die() { echo "$PROG: $*" >&2; exit 1; }

POSTFIX=${POSTFIX:-/usr/sbin/postfix}

need_postfix() {
	[ -x "$POSTFIX" ] || die "postfix is not installed ($POSTFIX)"
	[ "$(id -u)" = 0 ] || die "must run as root"
	id postfix >/dev/null 2>&1 || die "no 'postfix' user (is the package installed?)"
	getent group postdrop >/dev/null 2>&1 || die "no 'postdrop' group"
}

abs_dir() { (cd "$1" && pwd -P); }

cmd_setup() {
	[ $# -ge 4 ] || die "usage: setup DIR PORT DOMAIN LOCALPART..."
	need_postfix
	dir=$1 port=$2 domain=$3
	shift 3
	case $port in ''|*[!0-9]*) die "bad port '$port'" ;; esac
	if [ "$port" -lt 1024 ] || [ "$port" -gt 65535 ]; then
		die "port $port: use a high port"
	fi
	case $domain in ''|*[!A-Za-z0-9.-]*) die "bad domain '$domain'" ;; esac
	mkdir -p "$dir"
	[ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
	dir=$(abs_dir "$dir")
	case $dir in *[!A-Za-z0-9/._-]*) die "$dir: path has characters main.cf would misread" ;; esac

	tls_cert=${POSTFIX_TLS_CERT:-} tls_key=${POSTFIX_TLS_KEY:-}
	if [ -n "$tls_cert$tls_key" ]; then
		[ -n "$tls_cert" ] && [ -n "$tls_key" ] ||
			die "POSTFIX_TLS_CERT and POSTFIX_TLS_KEY go together"
		[ -r "$tls_cert" ] && [ -r "$tls_key" ] ||
			die "cannot read $tls_cert or $tls_key"
		tls_cert=$(abs_dir "$(dirname "$tls_cert")")/$(basename "$tls_cert")
		tls_key=$(abs_dir "$(dirname "$tls_key")")/$(basename "$tls_key")
		case $tls_cert$tls_key in *[!A-Za-z0-9/._-]*) die "TLS file paths have characters main.cf would misread" ;; esac
	fi

	uid=${POSTFIX_VIRTUAL_UID:-$(id -u nobody)}
	gid=$(id -g "$uid" 2>/dev/null || id -g nobody)
	limit=${POSTFIX_PROCESS_LIMIT:-200}

	# Postfix's daemons run as 'postfix' and virtual(8) as $uid: every
	# directory on the way must be searchable by them.
	chmod 755 "$dir"
	if command -v runuser >/dev/null 2>&1; then
		runuser -u postfix -- test -x "$dir" ||
			die "$dir is not reachable by user postfix (chmod a+x its parents)"
	fi
	mkdir -p "$dir/etc" "$dir/queue" "$dir/data" "$dir/log" "$dir/mail/$domain"
	chown root:root "$dir/etc" "$dir/queue"
	chmod 755 "$dir/etc" "$dir/queue" "$dir/log"
	chown postfix:postfix "$dir/data"
	chmod 700 "$dir/data"

	: >"$dir/etc/vmailbox"
	for lp in "$@"; do
		case $lp in ''|*[!A-Za-z0-9._+-]*) die "bad local part '$lp'" ;; esac
		mkdir -p "$dir/mail/$domain/$lp/tmp" "$dir/mail/$domain/$lp/new" \
			"$dir/mail/$domain/$lp/cur"
		echo "$lp@$domain $domain/$lp/" >>"$dir/etc/vmailbox"
	done
	chown -R "$uid:$gid" "$dir/mail"
	chmod -R u+rwX,go+rX "$dir/mail"

	cat >"$dir/etc/main.cf" <<EOF
# Private benchmark instance made by bench/postfix_instance.sh.
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop

myhostname = mx.$domain
mydomain = $domain
myorigin = \$myhostname
mydestination =
relay_domains =
mynetworks = 127.0.0.0/8
inet_interfaces = loopback-only
inet_protocols = ipv4
smtpd_banner = \$myhostname ESMTP

# No local(8) delivery and no aliases: everything is virtual.
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
local_recipient_maps =
biff = no

# Deliver to Maildir: a mailbox path ending in / is a Maildir.
virtual_mailbox_domains = $domain
virtual_mailbox_base = $dir/mail
virtual_mailbox_maps = texthash:$dir/etc/vmailbox
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
virtual_minimum_uid = 1

# Enough processes for 50 concurrent clients plus cleanup and delivery.
default_process_limit = $limit
# Like maild's bench config: no per-client connection cap at c=50, no
# reverse DNS of 127.0.0.1 (maild does none).
smtpd_client_connection_count_limit = 0
smtpd_peername_lookup = no

# Log to a file through postlogd (no syslog daemon needed).
maillog_file = $dir/log/maillog
maillog_file_prefixes = $dir/log
EOF
	if [ -n "$tls_cert" ]; then
		cat >>"$dir/etc/main.cf" <<EOF

# STARTTLS (POSTFIX_TLS_CERT/POSTFIX_TLS_KEY at setup): offered, not
# required; private key first, then the certificate.
smtpd_tls_security_level = may
smtpd_tls_chain_files = $tls_key, $tls_cert
smtpd_tls_loglevel = 0
EOF
	fi

	cat >"$dir/etc/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:$port inet n  -       n       -       -       smtpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
	if [ -n "$tls_cert" ]; then
		echo "tlsmgr    unix  -       -       n       1000?   1       tlsmgr" \
			>>"$dir/etc/master.cf"
	fi
	chmod 644 "$dir/etc/main.cf" "$dir/etc/master.cf" "$dir/etc/vmailbox"

	# Create the queue directories with their owners and modes.
	"$POSTFIX" -c "$dir/etc" set-permissions >/dev/null 2>&1 ||
		"$POSTFIX" -c "$dir/etc" check >/dev/null 2>&1 || true
	"$POSTFIX" -c "$dir/etc" check || die "postfix check failed for $dir/etc"
}

master_pid() {
	f=$1/queue/pid/master.pid
	[ -r "$f" ] || return 1
	p=$(tr -dc 0-9 <"$f")
	[ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 1
	# Only if that process really is a master of this instance.
	tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q master || return 1
	echo "$p"
}

cmd_start() {
	[ $# -eq 1 ] || die "usage: start DIR"
	need_postfix
	dir=$(abs_dir "$1")
	[ -f "$dir/etc/main.cf" ] || die "$dir: not set up"
	"$POSTFIX" -c "$dir/etc" start >/dev/null 2>"$dir/log/start.err" || {
		cat "$dir/log/start.err" >&2
		die "postfix start failed"
	}
	i=0
	while ! master_pid "$dir" >/dev/null; do
		i=$((i + 1))
		[ $i -le 100 ] || die "master did not start (see $dir/log)"
		sleep 0.1
	done
}

cmd_stop() {
	[ $# -eq 1 ] || die "usage: stop DIR"
	dir=$(abs_dir "$1")
	p=$(master_pid "$dir") || return 0
	"$POSTFIX" -c "$dir/etc" stop >/dev/null 2>&1 || kill -TERM "$p" 2>/dev/null || true
	i=0
	while kill -0 "$p" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -eq 100 ]; then
			# The master did not go in 10 s: kill it and its children.
			pkill -KILL -P "$p" 2>/dev/null || true
			kill -KILL "$p" 2>/dev/null || true
		fi
		[ $i -le 150 ] || die "master $p does not exit"
		sleep 0.1
	done
	# Children that outlive the master (they exit on their own once it
	# is gone; wait a little, then kill any left).
	i=0
	while [ -n "$(instance_children "$dir")" ]; do
		i=$((i + 1))
		[ $i -le 50 ] || break
		sleep 0.1
	done
	for c in $(instance_children "$dir"); do kill -KILL "$c" 2>/dev/null || true; done
}

# Processes whose environment names this instance's config directory
# (master passes MAIL_CONFIG to every child).
instance_children() {
	grep -lzxF "MAIL_CONFIG=$1/etc" /proc/[0-9]*/environ 2>/dev/null |
		sed -n 's,^/proc/\([0-9]*\)/environ$,\1,p'
	return 0
}

cmd_pid() {
	[ $# -eq 1 ] || die "usage: pid DIR"
	master_pid "$(abs_dir "$1")" || die "not running"
}

cmd_maildir() {
	[ $# -eq 2 ] || die "usage: maildir DIR ADDRESS"
	dir=$(abs_dir "$1")
	lp=${2%@*} domain=${2##*@}
	echo "$dir/mail/$domain/$lp/new"
}

cmd_teardown() {
	[ $# -eq 1 ] || die "usage: teardown DIR"
	[ -d "$1" ] || return 0
	dir=$(abs_dir "$1")
	[ -f "$dir/etc/main.cf" ] || [ -z "$(ls -A "$dir")" ] ||
		die "$dir does not look like an instance; not removing it"
	cmd_stop "$dir"
	rm -rf "$dir"
}

[ $# -ge 1 ] || die "usage: $PROG setup|start|stop|pid|maildir|teardown DIR ..."
cmd=$1
shift
case $cmd in
setup) cmd_setup "$@" ;;
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
pid) cmd_pid "$@" ;;
maildir) cmd_maildir "$@" ;;
teardown) cmd_teardown "$@" ;;
*) die "unknown command '$cmd'" ;;
esac
