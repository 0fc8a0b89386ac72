/*
 * The daemon's configuration: what `maild -f FILE` reads and `maild -n -f
 * FILE` checks. docs/maild.conf.example is the reference an administrator
 * reads; this header is the one a programmer reads.
 *
 * The file is line-oriented, UTF-8:
 *
 *   # comment
 *   hostname mx.example.com
 *   domains example.com example.net     # a comment after whitespace
 *   listen smtp [::1]:2525
 *
 * - One setting per line: a keyword, then values separated by spaces or
 *   tabs. Values cannot contain whitespace; there is no quoting.
 * - '#' at the start of a line or after whitespace starts a comment that
 *   runs to the end of the line ("a#b" is a value, "a #b" is not).
 * - Blank lines are ignored; a CR before the LF is dropped; a UTF-8 byte
 *   order mark before the first line is skipped.
 * - A line over MAILD_CONFIG_LINE_MAX octets, a NUL, a control character
 *   other than tab, or invalid UTF-8 is an error naming the line.
 * - An unknown keyword, a wrong number of values, a bad value and a second
 *   line for a single-valued setting are errors. `domains`, `listen` and
 *   `alias` may repeat: the lines of a list setting add up, and replace
 *   that list's built-in default.
 * - Sizes are digits with an optional suffix K, M, G, T, P or E (powers of
 *   1024, either case): "25M" is 26214400. Durations are digits with an
 *   optional unit ms, s (the default), m, h or d: "5m" is 300 seconds.
 * - Relative paths (data-dir, users, and the default data-dir) are
 *   relative to the directory of the configuration file, made absolute when
 *   the file is loaded, so the daemon may change directory later. Without a
 *   configuration file, the defaults are relative to the current directory.
 *
 * Errors are reported as "FILE:LINE: message", for example
 * "maild.conf:7: unknown setting 'hostnam'"; the file is accepted whole or
 * not at all. This module never prints and never exits: messages go into a
 * caller's buffer for the daemon to print.
 */
#ifndef MAILD_DAEMON_CONFIG_H
#define MAILD_DAEMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "maild/options.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest line, without its line end. */
#define MAILD_CONFIG_LINE_MAX 4096
/* Largest configuration file maild_config_load() reads. */
#define MAILD_CONFIG_FILE_MAX (16 * 1024 * 1024)

/* What a listening socket serves (`listen SERVICE ADDRESS:PORT`). */
typedef enum maild_config_service {
  MAILD_CONFIG_SMTP,       /* "smtp": MX, port 25 */
  MAILD_CONFIG_SUBMISSION, /* "submission": STARTTLS + AUTH, port 587 */
  MAILD_CONFIG_SMTPS,      /* "smtps": implicit TLS submission, port 465 */
  MAILD_CONFIG_POP3,       /* "pop3": port 110 with STLS */
  MAILD_CONFIG_POP3S,      /* "pop3s": implicit TLS, port 995 */
  MAILD_CONFIG_SERVICE__COUNT
} maild_config_service;

/* Where the daemon logs (`log stderr|syslog`). Unset (AUTO): stderr when
   maild runs in the foreground (-d), else syslog, facility mail. */
typedef enum maild_config_log {
  MAILD_CONFIG_LOG_STDERR, /* values in the order of the choices */
  MAILD_CONFIG_LOG_SYSLOG,
  MAILD_CONFIG_LOG_AUTO
} maild_config_log;

typedef struct maild_config_listener {
  maild_config_service service;
  char *address; /* numeric IPv4 or IPv6 address, no brackets: "::1" */
  int family;    /* AF_INET or AF_INET6 */
  uint16_t port; /* 0: an ephemeral port (tests) */
  unsigned line; /* line of the file, 0 for a built-in default */
} maild_config_listener;

typedef struct maild_config_alias {
  /* "local@domain", or "@domain" for a catch-all; ASCII letters
     lower-cased, local-part in maild_path_parse()'s canonical form. The
     domain is one of the configuration's domains. */
  char *address;
  /* Full addresses, local or external: canonical local-part, domain
     lower-cased. At least one. */
  char **targets;
  size_t ntargets;
  unsigned line;
} maild_config_alias;

/* `route DOMAIN|* ADDRESS[:PORT] [auth FILE]`: where mail for other
   domains goes, and the login there (FILE: one line "USER PASSWORD"). */
typedef struct maild_config_route {
  char *domain;  /* lower-cased, or "*" */
  char *address; /* numeric IPv4 or IPv6 address (no brackets), or a host
                    name */
  uint16_t port; /* 0: outbound-port */
  char *user;    /* from the auth file, or NULL */
  char *password;
  unsigned line;
} maild_config_route;

/*
 * A whole configuration. Every pointer is owned by the struct and freed by
 * maild_config_free(). Numeric settings that the library also knows hold
 * the value maild_config_apply_options() gives it.
 */
typedef struct maild_config {
  char *hostname;   /* default: gethostname(), else "localhost" */
  char **domains;   /* lower-cased; default: {"localhost"} */
  size_t ndomains;  /* at least 1 */
  char *data_dir;   /* default: "./maild-data" (see above) */
  char *users_path; /* default: data_dir + "/users" */
  char *run_user;   /* `user`: NULL = do not change user */
  maild_config_listener *listeners; /* default: smtp 127.0.0.1:2525 */
  size_t nlisteners;                /* at least 1 */
  maild_config_alias *aliases;      /* default: none */
  size_t naliases;
  uint64_t max_message_size;       /* octets; MAILD_OPT_MAX_MESSAGE_SIZE */
  uint64_t spool_min_free;         /* octets; MAILD_OPT_SPOOL_MIN_FREE */
  uint64_t quota;                  /* octets per mailbox; 0 = no quota */
  int quota_permanent;             /* `quota-answer 552`: 1; 452 (default): 0 */
  int log;                         /* maild_config_log; default AUTO */
  uint64_t max_connections;        /* MAILD_OPT_MAX_CONNECTIONS */
  uint64_t max_connections_per_ip; /* MAILD_OPT_MAX_CONNECTIONS_PER_IP */
  uint64_t max_recipients;         /* MAILD_OPT_MAX_RECIPIENTS */
  uint64_t max_junk_commands;      /* MAILD_OPT_MAX_JUNK_COMMANDS */
  uint64_t timeout_command_ms;     /* MAILD_OPT_TIMEOUT_COMMAND */
  uint64_t timeout_data_ms;        /* MAILD_OPT_TIMEOUT_DATA */
  uint64_t timeout_tls_ms;         /* MAILD_OPT_TIMEOUT_TLS */
  int any_sender;                  /* `any-sender yes`: MAILD_OPT_ANY_SENDER */
  char **trusted_networks; /* `trusted-networks`: may relay without AUTH */
  size_t ntrusted;
  char *tls_cert; /* `tls-cert`: PEM chain; NULL: generated in data-dir */
  char *tls_key;  /* `tls-key`: PEM key; NULL: generated in data-dir */
  maild_config_route *routes; /* default: none */
  size_t nroutes;
  uint64_t outbound_port;        /* MAILD_OPT_OUTBOUND_PORT */
  uint64_t outbound_connections; /* MAILD_OPT_OUTBOUND_CONNECTIONS */
  uint64_t retry_first_ms;       /* MAILD_OPT_RETRY_FIRST */
  uint64_t retry_max_ms;         /* MAILD_OPT_RETRY_MAX */
  uint64_t queue_lifetime_ms;    /* MAILD_OPT_QUEUE_LIFETIME */
  uint64_t timeout_connect_ms;   /* MAILD_OPT_TIMEOUT_CONNECT */
  uint64_t timeout_outbound_ms;  /* MAILD_OPT_TIMEOUT_OUTBOUND */
  uint64_t queue_window;         /* MAILD_OPT_QUEUE_WINDOW */
  uint64_t delay_warning_ms;     /* MAILD_OPT_DELAY_WARNING */
  char **dns_servers;            /* `dns-servers`; none: /etc/resolv.conf */
  size_t ndns_servers;
} maild_config;

/*
 * Fills `*cfg` with the built-in defaults (its previous contents, if any,
 * are not freed). Returns 0 or MAILD_ERR_NOMEM (then `*cfg` is zeroed, safe
 * to free).
 */
int maild_config_defaults(maild_config *cfg);

/*
 * Reads the configuration file `path`. `*cfg` must hold a configuration
 * (from maild_config_defaults() or an earlier load); on success its old
 * contents are freed and replaced by the defaults plus the file's settings.
 * On error `*cfg` is unchanged and `err` (if errlen > 0) holds a
 * NUL-terminated message "PATH:LINE: message", or "PATH: message" for an
 * error about the whole file.
 * Returns 0, MAILD_ERR_SYNTAX (a mistake in the file), MAILD_ERR_IO (cannot
 * open or read it, or find its directory), MAILD_ERR_TOO_LONG (over
 * MAILD_CONFIG_FILE_MAX) or MAILD_ERR_NOMEM.
 */
int maild_config_load(maild_config *cfg, const char *path, char *err,
                      size_t errlen);

/*
 * The same on `text[0..len)`, named `name` in messages. Relative paths are
 * taken relative to the directory part of `name` ("etc/maild.conf": "etc";
 * no '/': left relative). Returns 0, MAILD_ERR_SYNTAX or MAILD_ERR_NOMEM.
 */
int maild_config_parse(maild_config *cfg, const char *name, const char *text,
                       size_t len, char *err, size_t errlen);

/* Frees everything `cfg` owns and zeroes it; NULL is a no-op. */
void maild_config_free(maild_config *cfg);

/*
 * Sets the library options that the configuration covers: HOSTNAME,
 * MAX_MESSAGE_SIZE, QUOTA_PERMANENT, MAX_CONNECTIONS,
 * MAX_CONNECTIONS_PER_IP, MAX_RECIPIENTS, MAX_JUNK_COMMANDS, TIMEOUT_COMMAND,
 * TIMEOUT_DATA.
 * A parsed configuration always fits the options' ranges; for one edited
 * by hand, returns the first refusal (MAILD_ERR_RANGE, MAILD_ERR_INVAL or
 * MAILD_ERR_NOMEM) with a message such as "max-recipients: 5 is out of
 * range (100 to 1000000)" in `err`.
 */
int maild_config_apply_options(const maild_config *cfg, maild_options *opt,
                               char *err, size_t errlen);

/* "smtp", "submission", ...; "?" for an unknown value. Static string. */
const char *maild_config_service_name(maild_config_service service);

#ifdef __cplusplus
}
#endif
#endif
