/*
 * The daemon's configuration file parser (see config.h for the syntax).
 *
 * Settings are rows of one table: a keyword, the kind of value it takes,
 * where the value goes in maild_config and, for settings the library also
 * knows, the maild_option it becomes. The kind gives the arity, the parser
 * and the formatter of a value, so a new setting of an existing kind
 * (another path, size, count, duration or word) is a struct field plus one
 * row. Numeric settings are checked against the option's range from the
 * MAILD_OPTION_MAP table while the file is read, so a value the library
 * would refuse is an error with the file's line number, and `maild -n`
 * finds it.
 *
 * A file is parsed into a fresh configuration and swapped in only when the
 * whole file is good, so a reload with a broken file changes nothing.
 * Nothing here prints or exits: the first error becomes a
 * "FILE:LINE: message" in the caller's buffer.
 */
#include "config.h"
#include "maild/cidr.h"
#include "maild/address.h"
#include "maild/error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct parser parser;

/* What a setting's values are; each kind has an arity and a handler. */
typedef enum value_kind {
  K_WORD,     /* one word, checked by the row's check function */
  K_WORDS,    /* a list of words, accumulating over repeated lines */
  K_PATH,     /* a path, relative to the configuration file */
  K_SIZE,     /* octets: digits and K/M/G/T/P/E */
  K_COUNT,    /* a plain number */
  K_DURATION, /* milliseconds, written with ms/s/m/h/d */
  K_CHOICE,   /* one of the row's words; the field holds its index */
  K_LISTEN,   /* SERVICE ADDRESS:PORT */
  K_ALIAS,    /* ADDRESS TARGET... */
  K_ROUTE     /* DOMAIN|* ADDRESS[:PORT] */
} value_kind;

/* The maild_option a setting maps to, plus one; 0 = none. */
#define OPT(name)   (MAILD_OPT_##name + 1)
#define FIELD(name) offsetof(maild_config, name)

typedef struct setting {
  const char *name;
  value_kind kind;
  size_t field; /* offset in maild_config */
  size_t count; /* K_WORDS: offset of the element count */
  int option;   /* OPT(NAME) or 0 */
  /* K_WORD, K_WORDS: validates a value and may normalize it in place. */
  int (*check)(parser *p, char *value);
  /* K_CHOICE: the accepted words, NULL-terminated. */
  const char *const *choices;
  /* K_SIZE, K_COUNT, K_DURATION: accepted range when max > 0; else the
     option's range, else anything. */
  uint64_t min, max;
} setting;

typedef struct kind_spec {
  int (*handle)(parser *p, const setting *s, char **v, size_t n);
  unsigned min_values;
  unsigned max_values;
  int repeats; /* may be given on several lines */
} kind_spec;

static int set_word(parser *p, const setting *s, char **v, size_t n);
static int set_words(parser *p, const setting *s, char **v, size_t n);
static int set_path(parser *p, const setting *s, char **v, size_t n);
static int set_number(parser *p, const setting *s, char **v, size_t n);
static int set_choice(parser *p, const setting *s, char **v, size_t n);
static int set_listen(parser *p, const setting *s, char **v, size_t n);
static int set_alias(parser *p, const setting *s, char **v, size_t n);
static int set_route(parser *p, const setting *s, char **v, size_t n);
static int check_hostname(parser *p, char *value);
static int check_domain(parser *p, char *value);
static int check_user(parser *p, char *value);
static int check_cidr(parser *p, char *value);
static int check_dns_server(parser *p, char *value);

static const kind_spec kinds[] = {
    [K_WORD] = {set_word, 1, 1, 0},
    [K_WORDS] = {set_words, 1, UINT_MAX, 1},
    [K_PATH] = {set_path, 1, 1, 0},
    [K_SIZE] = {set_number, 1, 1, 0},
    [K_COUNT] = {set_number, 1, 1, 0},
    [K_DURATION] = {set_number, 1, 1, 0},
    [K_CHOICE] = {set_choice, 1, 1, 0},
    [K_LISTEN] = {set_listen, 2, 2, 1},
    [K_ALIAS] = {set_alias, 2, UINT_MAX, 1},
    [K_ROUTE] = {set_route, 2, 4, 1},
};

static const char *const quota_answers[] = {"452", "552", NULL};
static const char *const log_targets[] = {"stderr", "syslog", NULL};
static const char *const yes_no[] = {"no", "yes", NULL};
static const char *const service_names[] = {"smtp", "submission", "smtps",
                                            "pop3", "pop3s",      NULL};

/*
 * Every setting; docs/maild.conf.example documents each one. A new setting
 * of an existing kind is one row here plus its field in maild_config.
 */
/* clang-format off */
static const setting settings[] = {
  {.name = "hostname", .kind = K_WORD, .field = FIELD(hostname),
   .option = OPT(HOSTNAME), .check = check_hostname},
  {.name = "domains", .kind = K_WORDS, .field = FIELD(domains),
   .count = FIELD(ndomains), .check = check_domain},
  {.name = "data-dir", .kind = K_PATH, .field = FIELD(data_dir)},
  {.name = "users", .kind = K_PATH, .field = FIELD(users_path)},
  {.name = "user", .kind = K_WORD, .field = FIELD(run_user),
   .check = check_user},
  {.name = "listen", .kind = K_LISTEN},
  {.name = "alias", .kind = K_ALIAS},
  {.name = "max-message-size", .kind = K_SIZE,
   .field = FIELD(max_message_size), .option = OPT(MAX_MESSAGE_SIZE)},
  {.name = "quota", .kind = K_SIZE, .field = FIELD(quota)},
  {.name = "spool-min-free", .kind = K_SIZE, .field = FIELD(spool_min_free),
   .option = OPT(SPOOL_MIN_FREE)},
  {.name = "quota-answer", .kind = K_CHOICE, .field = FIELD(quota_permanent),
   .option = OPT(QUOTA_PERMANENT), .choices = quota_answers},
  {.name = "max-recipients", .kind = K_COUNT, .field = FIELD(max_recipients),
   .option = OPT(MAX_RECIPIENTS)},
  {.name = "max-junk-commands", .kind = K_COUNT,
   .field = FIELD(max_junk_commands), .option = OPT(MAX_JUNK_COMMANDS)},
  {.name = "max-connections", .kind = K_COUNT, .field = FIELD(max_connections),
   .option = OPT(MAX_CONNECTIONS)},
  {.name = "max-connections-per-ip", .kind = K_COUNT,
   .field = FIELD(max_connections_per_ip),
   .option = OPT(MAX_CONNECTIONS_PER_IP)},
  {.name = "timeout-command", .kind = K_DURATION,
   .field = FIELD(timeout_command_ms), .option = OPT(TIMEOUT_COMMAND)},
  {.name = "timeout-data", .kind = K_DURATION, .field = FIELD(timeout_data_ms),
   .option = OPT(TIMEOUT_DATA)},
  {.name = "timeout-tls", .kind = K_DURATION, .field = FIELD(timeout_tls_ms),
   .option = OPT(TIMEOUT_TLS)},
  {.name = "trusted-networks", .kind = K_WORDS,
   .field = FIELD(trusted_networks), .count = FIELD(ntrusted),
   .check = check_cidr},
  {.name = "any-sender", .kind = K_CHOICE, .field = FIELD(any_sender),
   .option = OPT(ANY_SENDER), .choices = yes_no},
  {.name = "tls-cert", .kind = K_PATH, .field = FIELD(tls_cert)},
  {.name = "tls-key", .kind = K_PATH, .field = FIELD(tls_key)},
  {.name = "log", .kind = K_CHOICE, .field = FIELD(log),
   .choices = log_targets},
  {.name = "route", .kind = K_ROUTE},
  {.name = "dns-servers", .kind = K_WORDS, .field = FIELD(dns_servers),
   .count = FIELD(ndns_servers), .check = check_dns_server},
  {.name = "outbound-port", .kind = K_COUNT, .field = FIELD(outbound_port),
   .option = OPT(OUTBOUND_PORT)},
  {.name = "outbound-connections", .kind = K_COUNT,
   .field = FIELD(outbound_connections), .option = OPT(OUTBOUND_CONNECTIONS)},
  {.name = "retry-first", .kind = K_DURATION, .field = FIELD(retry_first_ms),
   .option = OPT(RETRY_FIRST)},
  {.name = "retry-max", .kind = K_DURATION, .field = FIELD(retry_max_ms),
   .option = OPT(RETRY_MAX)},
  {.name = "queue-lifetime", .kind = K_DURATION,
   .field = FIELD(queue_lifetime_ms), .option = OPT(QUEUE_LIFETIME)},
  {.name = "timeout-connect", .kind = K_DURATION,
   .field = FIELD(timeout_connect_ms), .option = OPT(TIMEOUT_CONNECT)},
  {.name = "timeout-outbound", .kind = K_DURATION,
   .field = FIELD(timeout_outbound_ms), .option = OPT(TIMEOUT_OUTBOUND)},
  {.name = "delay-warning", .kind = K_DURATION,
   .field = FIELD(delay_warning_ms), .option = OPT(DELAY_WARNING)},
  {.name = "queue-window", .kind = K_COUNT, .field = FIELD(queue_window),
   .option = OPT(QUEUE_WINDOW)},
};
/* clang-format on */

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

/* The ranges of the library's options, from the same table it uses. */
static const struct {
  uint64_t min, max;
} option_ranges[] = {
#define OPTION_RANGE_(name, kind, def, min, max) {min, max},
    MAILD_OPTION_MAP(OPTION_RANGE_)
#undef OPTION_RANGE_
};

/* The listeners used when the file has no `listen` line. */
static const struct {
  maild_config_service service;
  const char *address;
  uint16_t port;
} default_listeners[] = {
    {MAILD_CONFIG_SMTP, "127.0.0.1", 2525},
    {MAILD_CONFIG_POP3, "127.0.0.1", 1110},
};

struct parser {
  maild_config *cfg;        /* the configuration being built */
  const char *name;         /* file name for messages */
  unsigned line;            /* current line, 1-based */
  unsigned seen[NSETTINGS]; /* line of a setting's first use, or 0 */
  int first;                /* the current line is its setting's first */
  char *err;
  size_t errlen;
};

/* ---- Small helpers ---- */

static void *field_at(maild_config *cfg, size_t offset) {
  return (char *)cfg + offset;
}

static const void *field_of(const maild_config *cfg, size_t offset) {
  return (const char *)cfg + offset;
}

static char *dup_string(const char *s, size_t len) {
  char *copy = malloc(len + 1);

  if (copy != NULL) {
    memcpy(copy, s, len);
    copy[len] = '\0';
  }
  return copy;
}

static void ascii_lower(char *s) {
  for (; *s != '\0'; s++) {
    if (*s >= 'A' && *s <= 'Z')
      *s = (char)(*s + ('a' - 'A'));
  }
}

static void free_strings(char **v, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

/* Appends `s` (taken over on success) to the array `*v` of `*n` strings. */
static int push_string(char ***v, size_t *n, char *s) {
  char **grown = realloc(*v, (*n + 1) * sizeof(**v));

  if (grown == NULL)
    return MAILD_ERR_NOMEM;
  grown[(*n)++] = s;
  *v = grown;
  return 0;
}

static void set_message(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_message(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;

  if (err == NULL || errlen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Writes "NAME:LINE: message" and returns MAILD_ERR_SYNTAX. */
static int fail(parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(parser *p, const char *fmt, ...) {
  va_list ap;
  int n;

  if (p->err == NULL || p->errlen == 0)
    return MAILD_ERR_SYNTAX;
  n = snprintf(p->err, p->errlen, "%s:%u: ", p->name, p->line);
  if (n >= 0 && (size_t)n < p->errlen) {
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
  }
  return MAILD_ERR_SYNTAX;
}

static int fail_nomem(parser *p) {
  fail(p, "out of memory");
  return MAILD_ERR_NOMEM;
}

/* ---- Numbers: sizes, counts, durations ---- */

/* Reads decimal digits at `*s` into `*out` and moves `*s` past them.
   Returns 1, 0 if there are none, or -1 on overflow. */
static int read_digits(const char **s, uint64_t *out) {
  const char *c = *s;
  uint64_t v = 0;

  for (; *c >= '0' && *c <= '9'; c++) {
    unsigned d = (unsigned)(*c - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  *out = v;
  if (c == *s)
    return 0;
  *s = c;
  return 1;
}

/* Multiplies `*v` by `factor`; -1 on overflow. */
static int scale(uint64_t *v, uint64_t factor) {
  if (*v != 0 && factor > UINT64_MAX / *v)
    return -1;
  *v *= factor;
  return 0;
}

static const char size_suffixes[] = "KMGTPE";

/* "25M" -> 26214400. 0, MAILD_ERR_SYNTAX or MAILD_ERR_RANGE (overflow). */
static int parse_size(const char *s, uint64_t *out) {
  const char *suffix;
  uint64_t factor = 1;
  int rc = read_digits(&s, out);

  if (rc < 0)
    return MAILD_ERR_RANGE;
  if (rc == 0)
    return MAILD_ERR_SYNTAX;
  if (*s == '\0')
    return 0;
  if (s[1] != '\0' || *s == '\0')
    return MAILD_ERR_SYNTAX;
  suffix = strchr(size_suffixes, *s >= 'a' && *s <= 'z' ? *s - 'a' + 'A' : *s);
  if (suffix == NULL)
    return MAILD_ERR_SYNTAX;
  factor <<= 10 * (suffix - size_suffixes + 1);
  return scale(out, factor) < 0 ? MAILD_ERR_RANGE : 0;
}

static const struct {
  const char *unit;
  uint64_t ms;
} duration_units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
};

/* "5m" -> 300000 (milliseconds); a bare number is seconds. */
static int parse_duration(const char *s, uint64_t *out) {
  uint64_t factor = 1000;
  size_t i;
  int rc = read_digits(&s, out);

  if (rc < 0)
    return MAILD_ERR_RANGE;
  if (rc == 0)
    return MAILD_ERR_SYNTAX;
  if (*s != '\0') {
    for (i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++) {
      if (strcmp(s, duration_units[i].unit) == 0)
        break;
    }
    if (i == sizeof(duration_units) / sizeof(duration_units[0]))
      return MAILD_ERR_SYNTAX;
    factor = duration_units[i].ms;
  }
  return scale(out, factor) < 0 ? MAILD_ERR_RANGE : 0;
}

static int parse_count(const char *s, uint64_t *out) {
  int rc = read_digits(&s, out);

  if (rc < 0)
    return MAILD_ERR_RANGE;
  return rc == 0 || *s != '\0' ? MAILD_ERR_SYNTAX : 0;
}

/* Writes `v` the way the admin would: "25M", "5m", "100". */
static void format_value(value_kind kind, uint64_t v, char *buf, size_t size) {
  int i;

  if (kind == K_SIZE && v != 0) {
    for (i = 5; i >= 0; i--) {
      if (v % (UINT64_C(1) << (10 * (i + 1))) == 0) {
        snprintf(buf, size, "%llu%c", (unsigned long long)(v >> (10 * (i + 1))),
                 size_suffixes[i]);
        return;
      }
    }
  } else if (kind == K_DURATION && v != 0) {
    for (i = 4; i > 0; i--) {
      if (v % duration_units[i].ms == 0) {
        snprintf(buf, size, "%llu%s",
                 (unsigned long long)(v / duration_units[i].ms),
                 duration_units[i].unit);
        return;
      }
    }
    snprintf(buf, size, "%llums", (unsigned long long)v);
    return;
  }
  snprintf(buf, size, "%llu", (unsigned long long)v);
}

static void range_of(const setting *s, uint64_t *min, uint64_t *max) {
  *min = 0;
  *max = UINT64_MAX;
  if (s->max > 0) {
    *min = s->min;
    *max = s->max;
  } else if (s->option > 0) {
    *min = option_ranges[s->option - 1].min;
    *max = option_ranges[s->option - 1].max;
  }
}

static int check_range(parser *p, const setting *s, const char *text,
                       uint64_t v) {
  char lo[32], hi[32];
  uint64_t min, max;

  range_of(s, &min, &max);
  if (v >= min && v <= max)
    return 0;
  format_value(s->kind, min, lo, sizeof(lo));
  format_value(s->kind, max, hi, sizeof(hi));
  return fail(p, "%s: '%s' is out of range (%s to %s)", s->name, text, lo, hi);
}

static int set_number(parser *p, const setting *s, char **v, size_t n) {
  uint64_t value;
  int rc;
  (void)n;

  if (s->kind == K_SIZE)
    rc = parse_size(v[0], &value);
  else if (s->kind == K_DURATION)
    rc = parse_duration(v[0], &value);
  else
    rc = parse_count(v[0], &value);
  if (rc == MAILD_ERR_RANGE)
    return fail(p, "%s: '%s' is too large", s->name, v[0]);
  if (rc < 0 && s->kind == K_SIZE)
    return fail(p,
                "%s: bad size '%s' (digits with an optional K, M, G, T, P "
                "or E suffix)",
                s->name, v[0]);
  if (rc < 0 && s->kind == K_DURATION)
    return fail(p,
                "%s: bad duration '%s' (digits with an optional unit ms, s, "
                "m, h or d)",
                s->name, v[0]);
  if (rc < 0)
    return fail(p, "%s: bad number '%s'", s->name, v[0]);
  rc = check_range(p, s, v[0], value);
  if (rc == 0)
    *(uint64_t *)field_at(p->cfg, s->field) = value;
  return rc;
}

/* ---- Words, paths and choices ---- */

static int check_hostname(parser *p, char *value) {
  if (maild_domain_check(value, strlen(value), 0, 0) < 0)
    return fail(p, "hostname: bad host name '%s'", value);
  return 0;
}

/* A network in CIDR notation, checked by the library that will use it. */
static int check_cidr(parser *p, char *value) {
  maild_cidr_set *set;
  int rc = maild_cidr_set_new(&set, NULL);

  if (rc == 0)
    rc = maild_cidr_set_add(set, value);
  maild_cidr_set_del(set);
  if (rc == MAILD_ERR_NOMEM)
    return fail_nomem(p);
  if (rc != 0)
    return fail(p,
                "trusted-networks: '%s' is not a network (e.g. 192.0.2.0/24,"
                " 2001:db8::/32)%s",
                value, rc == MAILD_ERR_INVAL ? ": host bits are set" : "");
  return 0;
}

static int check_domain(parser *p, char *value) {
  ascii_lower(value);
  if (maild_domain_check(value, strlen(value), MAILD_PATH_ALLOW_UTF8, 0) < 0)
    return fail(p, "domains: bad domain '%s'", value);
  return 0;
}

/* POSIX portable user names: letters, digits, '.', '_', '-', no leading
   '-'. */
static int check_user(parser *p, char *value) {
  const char *c;

  for (c = value; *c != '\0'; c++) {
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
          (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' ||
          (*c == '-' && c != value)))
      return fail(p, "user: bad user name '%s'", value);
  }
  return 0;
}

static int replace_string(parser *p, size_t field, const char *value,
                          size_t len) {
  char **slot = field_at(p->cfg, field);
  char *copy = dup_string(value, len);

  if (copy == NULL)
    return fail_nomem(p);
  free(*slot);
  *slot = copy;
  return 0;
}

static int set_word(parser *p, const setting *s, char **v, size_t n) {
  int rc = s->check != NULL ? s->check(p, v[0]) : 0;
  (void)n;

  return rc < 0 ? rc : replace_string(p, s->field, v[0], strlen(v[0]));
}

static int set_words(parser *p, const setting *s, char **v, size_t n) {
  char ***list = field_at(p->cfg, s->field);
  size_t *count = field_at(p->cfg, s->count);
  size_t i, j;
  char *copy;
  int rc;

  if (p->first) { /* the file's list replaces the built-in one */
    free_strings(*list, *count);
    *list = NULL;
    *count = 0;
  }
  for (i = 0; i < n; i++) {
    rc = s->check != NULL ? s->check(p, v[i]) : 0;
    if (rc < 0)
      return rc;
    for (j = 0; j < *count; j++) {
      if (strcmp((*list)[j], v[i]) == 0)
        return fail(p, "%s: '%s' is listed twice", s->name, v[i]);
    }
    copy = dup_string(v[i], strlen(v[i]));
    if (copy == NULL || push_string(list, count, copy) < 0) {
      free(copy);
      return fail_nomem(p);
    }
  }
  return 0;
}

static int set_path(parser *p, const setting *s, char **v, size_t n) {
  size_t len = strlen(v[0]);
  (void)n;

  while (len > 1 && v[0][len - 1] == '/') /* "/var/maild/" */
    len--;
  return replace_string(p, s->field, v[0], len);
}

static int set_choice(parser *p, const setting *s, char **v, size_t n) {
  char list[128] = "";
  size_t i, used = 0;
  (void)n;

  for (i = 0; s->choices[i] != NULL; i++) {
    if (strcmp(v[0], s->choices[i]) == 0) {
      *(int *)field_at(p->cfg, s->field) = (int)i;
      return 0;
    }
  }
  for (i = 0; s->choices[i] != NULL && used < sizeof(list); i++) {
    int w = snprintf(list + used, sizeof(list) - used, "%s%s",
                     i == 0                      ? ""
                     : s->choices[i + 1] == NULL ? " or "
                                                 : ", ",
                     s->choices[i]);
    used += w > 0 ? (size_t)w : 0;
  }
  return fail(p, "%s: '%s' is not %s", s->name, v[0], list);
}

/* ---- listen SERVICE ADDRESS:PORT ---- */

static int parse_port(const char *s, uint16_t *port) {
  uint64_t v;

  if (strlen(s) > 5 || parse_count(s, &v) < 0 || v > 65535)
    return -1;
  *port = (uint16_t)v;
  return 0;
}

/*
 * Splits "127.0.0.1:25" or "[::1]:25" into a canonical numeric address
 * (written to `addr`) and a port. Host names are refused: the daemon does
 * no DNS at start.
 */
static int parse_listen_address(parser *p, char *text, maild_config_listener *l,
                                char *addr, size_t addrlen) {
  unsigned char bin[16];
  char *host = text, *colon, *port;

  if (text[0] == '[') {
    host = text + 1;
    colon = strchr(host, ']');
    if (colon == NULL || colon[1] != ':')
      return fail(p, "listen: bad address '%s' (write [IPv6]:PORT)", text);
    *colon = '\0';
    port = colon + 2;
    l->family = AF_INET6;
  } else {
    colon = strrchr(text, ':');
    if (colon == NULL)
      return fail(p, "listen: missing port in '%s' (write ADDRESS:PORT)", text);
    *colon = '\0';
    port = colon + 1;
    if (strchr(text, ':') != NULL) {
      *colon = ':';
      return fail(p,
                  "listen: IPv6 address needs brackets in '%s' (write "
                  "[::1]:PORT)",
                  text);
    }
    l->family = AF_INET;
  }
  if (inet_pton(l->family, host, bin) != 1)
    return fail(
        p, "listen: bad address '%s' (a numeric IPv4 or [IPv6] address)", host);
  if (parse_port(port, &l->port) < 0)
    return fail(p, "listen: bad port '%s'", port);
  if (inet_ntop(l->family, bin, addr, (socklen_t)addrlen) == NULL)
    return fail(p, "listen: bad address '%s'", host);
  return 0;
}

static void free_listeners(maild_config *cfg) {
  size_t i;

  for (i = 0; i < cfg->nlisteners; i++)
    free(cfg->listeners[i].address);
  free(cfg->listeners);
  cfg->listeners = NULL;
  cfg->nlisteners = 0;
}

/* Appends `l` with a copy of `address`. */
static int add_listener(maild_config *cfg, const maild_config_listener *l,
                        const char *address_text) {
  maild_config_listener *grown;
  char *address = dup_string(address_text, strlen(address_text));

  grown = address == NULL
              ? NULL
              : realloc(cfg->listeners, (cfg->nlisteners + 1) * sizeof(*grown));
  if (grown == NULL) {
    free(address);
    return MAILD_ERR_NOMEM;
  }
  grown[cfg->nlisteners] = *l;
  grown[cfg->nlisteners++].address = address;
  cfg->listeners = grown;
  return 0;
}

static int set_listen(parser *p, const setting *s, char **v, size_t n) {
  char addr[INET6_ADDRSTRLEN];
  maild_config_listener l = {0};
  size_t i;
  int rc;
  (void)s, (void)n;

  for (i = 0; service_names[i] != NULL; i++) {
    if (strcmp(v[0], service_names[i]) == 0)
      break;
  }
  if (service_names[i] == NULL)
    return fail(p,
                "listen: unknown service '%s' (smtp, submission, smtps, pop3 "
                "or pop3s)",
                v[0]);
  l.service = (maild_config_service)i;
  rc = parse_listen_address(p, v[1], &l, addr, sizeof(addr));
  if (rc < 0)
    return rc;
  if (p->first)
    free_listeners(p->cfg);
  for (i = 0; i < p->cfg->nlisteners; i++) {
    const maild_config_listener *o = &p->cfg->listeners[i];
    if (l.port != 0 && o->port == l.port && o->family == l.family &&
        strcmp(o->address, addr) == 0)
      return fail(p, "listen: %s%s%s:%u is already used on line %u",
                  l.family == AF_INET6 ? "[" : "", addr,
                  l.family == AF_INET6 ? "]" : "", l.port, o->line);
  }
  l.line = p->line;
  return add_listener(p->cfg, &l, addr) < 0 ? fail_nomem(p) : 0;
}

/* ---- alias ADDRESS TARGET... ---- */

/*
 * Reads "local@domain" with maild_path_parse() (SMTPUTF8 syntax allowed)
 * into a new canonical string: the local-part in the parser's canonical
 * form, lower-cased too when `lower_local`, and the domain lower-cased.
 * Returns the string, or NULL with `*rc` set.
 */
static char *canonical_address(const char *text, int lower_local, int *rc) {
  char buf[MAILD_PATH_MAX + 3], out[MAILD_PATH_MAX + 1];
  size_t len = strlen(text);
  maild_path path;
  maild_ssize got;
  char *copy;

  *rc = MAILD_ERR_TOO_LONG;
  if (len > MAILD_PATH_MAX)
    return NULL;
  buf[0] = '<';
  memcpy(buf + 1, text, len);
  buf[len + 1] = '>';
  got = maild_path_parse(&path, buf, len + 2, MAILD_PATH_ALLOW_UTF8);
  *rc = got < 0 ? (int)got : MAILD_ERR_SYNTAX;
  if (got != (maild_ssize)(len + 2) || path.domain_len == 0)
    return NULL;
  ascii_lower(path.domain);
  if (lower_local)
    ascii_lower(path.local);
  *rc = MAILD_ERR_TOO_LONG;
  if (maild_path_format(&path, out, sizeof(out)) < 0)
    return NULL;
  copy = dup_string(out, strlen(out));
  *rc = copy != NULL ? 0 : MAILD_ERR_NOMEM;
  return copy;
}

/* The alias address: "local@domain", or "@domain" for a catch-all. */
static char *alias_address(const char *text, int *rc) {
  char *copy;

  if (text[0] != '@')
    return canonical_address(text, 1, rc);
  *rc =
      maild_domain_check(text + 1, strlen(text + 1), MAILD_PATH_ALLOW_UTF8, 0);
  if (*rc < 0)
    return NULL;
  copy = dup_string(text, strlen(text));
  if (copy == NULL)
    *rc = MAILD_ERR_NOMEM;
  else
    ascii_lower(copy);
  return copy;
}

static const char *address_problem(int rc, const char *expected) {
  return rc == MAILD_ERR_SYNTAX ? expected : maild_strerror(rc);
}

static void free_alias(maild_config_alias *a) {
  free(a->address);
  free_strings(a->targets, a->ntargets);
}

static int read_alias(parser *p, char **v, size_t n, maild_config_alias *a) {
  size_t i, j;
  char *t;
  int rc;

  a->address = alias_address(v[0], &rc);
  if (rc == MAILD_ERR_NOMEM)
    return fail_nomem(p);
  if (rc < 0)
    return fail(p, "alias: bad address '%s' (%s)", v[0],
                address_problem(rc, "expected local@domain or @domain"));
  for (i = 1; i < n; i++) {
    t = canonical_address(v[i], 0, &rc);
    if (rc == MAILD_ERR_NOMEM)
      return fail_nomem(p);
    if (rc < 0)
      return fail(p, "alias: bad target '%s' (%s)", v[i],
                  address_problem(rc, "expected local@domain"));
    for (j = 0; j < a->ntargets && strcmp(a->targets[j], t) != 0; j++)
      continue;
    if (j < a->ntargets) {
      free(t);
      return fail(p, "alias: target '%s' is given twice", v[i]);
    }
    if (push_string(&a->targets, &a->ntargets, t) < 0) {
      free(t);
      return fail_nomem(p);
    }
  }
  return 0;
}

static int set_alias(parser *p, const setting *s, char **v, size_t n) {
  maild_config *cfg = p->cfg;
  maild_config_alias a = {0}, *grown;
  size_t i;
  int rc;
  (void)s;

  a.line = p->line;
  rc = read_alias(p, v, n, &a);
  for (i = 0; rc == 0 && i < cfg->naliases; i++) {
    if (strcmp(cfg->aliases[i].address, a.address) == 0)
      rc = fail(p, "alias: %s is already defined on line %u", a.address,
                cfg->aliases[i].line);
  }
  grown =
      rc < 0 ? NULL : realloc(cfg->aliases, (cfg->naliases + 1) * sizeof(a));
  if (grown == NULL) {
    free_alias(&a);
    return rc < 0 ? rc : fail_nomem(p);
  }
  grown[cfg->naliases++] = a;
  cfg->aliases = grown;
  return 0;
}

/*
 * Splits "HOST", "HOST:PORT", "[IPv6]" or "[IPv6]:PORT" in place into
 * `*host` and `*port` (NULL when none). Returns the address family the
 * host must be (AF_INET6 in brackets, or for a bare IPv6 address: more
 * than one ':' and then no port), or -1 for an unclosed bracket.
 */
static int split_host_port(char *text, char **host, char **port) {
  char *end;

  *host = text;
  *port = NULL;
  if (text[0] == '[') {
    *host = text + 1;
    end = strchr(*host, ']');
    if (end == NULL || (end[1] != '\0' && end[1] != ':'))
      return -1;
    *end = '\0';
    *port = end[1] == ':' ? end + 2 : NULL;
    return AF_INET6;
  }
  end = strchr(text, ':');
  if (end == NULL)
    return AF_INET;
  if (strchr(end + 1, ':') != NULL)
    return AF_INET6; /* a bare IPv6 address */
  *end = '\0';
  *port = end + 1;
  return AF_INET;
}

/* ---- dns-servers ADDRESS[:PORT]... ---- */

static int check_dns_server(parser *p, char *value) {
  char copy[80], *host, *port;
  unsigned char bin[16];
  uint16_t pn;
  int family;

  if (strlen(value) >= sizeof(copy))
    return fail(p, "dns-servers: '%s' is too long", value);
  strcpy(copy, value);
  family = split_host_port(copy, &host, &port);
  if (family < 0)
    return fail(p, "dns-servers: bad address '%s'", value);
  if (inet_pton(family, host, bin) != 1)
    return fail(p, "dns-servers: '%s' is not a numeric IPv4 or [IPv6] address",
                value);
  if (port != NULL && (parse_port(port, &pn) < 0 || pn == 0))
    return fail(p, "dns-servers: bad port in '%s'", value);
  return 0;
}

/* ---- route DOMAIN|* ADDRESS[:PORT] ---- */

static void free_routes(maild_config *cfg) {
  size_t i;

  for (i = 0; i < cfg->nroutes; i++) {
    free(cfg->routes[i].domain);
    free(cfg->routes[i].address);
    free(cfg->routes[i].user);
    if (cfg->routes[i].password != NULL)
      memset(cfg->routes[i].password, 0, strlen(cfg->routes[i].password));
    free(cfg->routes[i].password);
  }
  free(cfg->routes);
  cfg->routes = NULL;
  cfg->nroutes = 0;
}

/* The login for a route: FILE's first line, "USER PASSWORD" (the password
   is the rest of the line). A relative FILE is taken from the directory
   of the configuration file. */
static int read_route_auth(parser *p, const char *file, maild_config_route *r) {
  char path[4096], line[1024], *sp, *end;
  const char *slash = strrchr(p->name, '/');
  FILE *f;

  if (file[0] != '/' && slash != NULL)
    snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - p->name), p->name,
             file);
  else
    snprintf(path, sizeof(path), "%s", file);
  f = fopen(path, "r");
  if (f == NULL)
    return fail(p, "route: cannot read %s: %s", path, strerror(errno));
  if (fgets(line, sizeof(line), f) == NULL)
    line[0] = '\0';
  fclose(f);
  end = line + strcspn(line, "\r\n");
  *end = '\0';
  sp = strchr(line, ' ');
  if (sp == NULL || sp == line || sp[1] == '\0') {
    memset(line, 0, sizeof(line));
    return fail(p, "route: %s: expected one line \"USER PASSWORD\"", path);
  }
  *sp = '\0';
  r->user = strdup(line);
  r->password = strdup(sp + 1);
  memset(line, 0, sizeof(line));
  if (r->user == NULL || r->password == NULL)
    return fail_nomem(p);
  return 0;
}

static int set_route(parser *p, const setting *s, char **v, size_t n) {
  maild_config *cfg = p->cfg;
  maild_config_route r = {0}, *grown;
  char addr[INET6_ADDRSTRLEN], *host, *port;
  unsigned char bin[16];
  int family, rc;
  size_t i;
  (void)s;

  if (n == 3 || (n == 4 && strcmp(v[2], "auth") != 0))
    return fail(p, "route: expected DOMAIN HOST[:PORT] [auth FILE]");
  if (strcmp(v[0], "*") != 0 && (rc = check_domain(p, v[0])) < 0)
    return rc;
  family = split_host_port(v[1], &host, &port);
  if (family < 0)
    return fail(p, "route: bad address '%s' (write [IPv6]:PORT)", v[1]);
  if (family == AF_INET6 && host == v[1])
    return fail(p, "route: IPv6 address needs brackets in '%s'", v[1]);
  if (inet_pton(family, host, bin) == 1) {
    if (inet_ntop(family, bin, addr, sizeof(addr)) == NULL)
      return fail(p, "route: bad address '%s'", host);
  } else if (family == AF_INET && strlen(host) < sizeof(addr) &&
             maild_domain_check(host, strlen(host), 0, 0) >= 0) {
    strcpy(addr, host); /* a host name: looked up when used (no MX) */
  } else {
    return fail(p,
                "route: '%s' is neither a host name nor a numeric IPv4 or "
                "[IPv6] address",
                host);
  }
  if (port != NULL && (parse_port(port, &r.port) < 0 || r.port == 0))
    return fail(p, "route: bad port '%s'", port);
  if (p->first)
    free_routes(cfg);
  for (i = 0; i < cfg->nroutes; i++) {
    if (strcmp(cfg->routes[i].domain, v[0]) == 0)
      return fail(p, "route: %s already has a route on line %u", v[0],
                  cfg->routes[i].line);
  }
  if (n == 4 && (rc = read_route_auth(p, v[3], &r)) < 0) {
    free(r.user);
    free(r.password);
    return rc;
  }
  r.domain = strdup(v[0]);
  r.address = strdup(addr);
  r.line = p->line;
  grown = realloc(cfg->routes, (cfg->nroutes + 1) * sizeof(r));
  if (r.domain == NULL || r.address == NULL || grown == NULL) {
    free(r.domain);
    free(r.address);
    free(r.user);
    free(r.password);
    if (grown != NULL)
      cfg->routes = grown;
    return fail_nomem(p);
  }
  grown[cfg->nroutes++] = r;
  cfg->routes = grown;
  return 0;
}

/* ---- Lines ---- */

static const setting *find_setting(const char *name) {
  size_t i;

  for (i = 0; i < NSETTINGS; i++) {
    if (strcmp(settings[i].name, name) == 0)
      return &settings[i];
  }
  return NULL;
}

static int run_setting(parser *p, char **argv, size_t argc) {
  const setting *s = find_setting(argv[0]);
  const kind_spec *k;
  size_t idx, n = argc - 1;

  if (s == NULL)
    return fail(p, "unknown setting '%s'", argv[0]);
  k = &kinds[s->kind];
  idx = (size_t)(s - settings);
  if (n < k->min_values && k->min_values == k->max_values)
    return fail(p, "%s takes %u value%s, got %zu", s->name, k->min_values,
                k->min_values == 1 ? "" : "s", n);
  if (n < k->min_values)
    return fail(p, "%s takes at least %u value%s, got %zu", s->name,
                k->min_values, k->min_values == 1 ? "" : "s", n);
  if (n > k->max_values)
    return fail(p, "%s takes %u value%s, got %zu", s->name, k->max_values,
                k->max_values == 1 ? "" : "s", n);
  if (!k->repeats && p->seen[idx] != 0)
    return fail(p, "%s already set on line %u", s->name, p->seen[idx]);
  p->first = p->seen[idx] == 0;
  if (p->first)
    p->seen[idx] = p->line;
  return k->handle(p, s, argv + 1, n);
}

/* Octets a line may not hold: NUL, and controls other than tab. */
static int check_line(parser *p, const char *line, size_t len) {
  size_t i;

  if (len > MAILD_CONFIG_LINE_MAX)
    return fail(p, "line longer than %d octets", MAILD_CONFIG_LINE_MAX);
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)line[i];
    if (c == 0)
      return fail(p, "NUL byte in line");
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return fail(p, "control character 0x%02x in line", c);
  }
  if (maild_utf8_check(line, len) < 0)
    return fail(p, "invalid UTF-8");
  return 0;
}

/* Splits one line into words in `buf`, stopping at a comment. */
static size_t split_words(char *buf, char **argv) {
  size_t argc = 0;
  char *c = buf;

  for (;;) {
    while (*c == ' ' || *c == '\t')
      c++;
    if (*c == '\0' || *c == '#')
      return argc;
    argv[argc++] = c;
    while (*c != '\0' && *c != ' ' && *c != '\t')
      c++;
    if (*c == '\0')
      return argc;
    *c++ = '\0';
  }
}

static int parse_line(parser *p, const char *line, size_t len) {
  char buf[MAILD_CONFIG_LINE_MAX + 1];
  char *argv[MAILD_CONFIG_LINE_MAX / 2 + 1];
  size_t argc;
  int rc;

  if (len > 0 && line[len - 1] == '\r')
    len--;
  rc = check_line(p, line, len);
  if (rc < 0)
    return rc;
  memcpy(buf, line, len);
  buf[len] = '\0';
  argc = split_words(buf, argv);
  return argc == 0 ? 0 : run_setting(p, argv, argc);
}

/* ---- After the last line ---- */

static int domain_is_local(const maild_config *cfg, const char *domain) {
  size_t i;

  for (i = 0; i < cfg->ndomains; i++) {
    if (strcmp(cfg->domains[i], domain) == 0)
      return 1;
  }
  return 0;
}

static int check_alias_domains(parser *p) {
  const maild_config *cfg = p->cfg;
  const char *domain;
  size_t i;

  for (i = 0; i < cfg->naliases; i++) {
    domain = strrchr(cfg->aliases[i].address, '@') + 1;
    if (!domain_is_local(cfg, domain)) {
      p->line = cfg->aliases[i].line;
      return fail(p, "alias: domain '%s' of %s is not in domains", domain,
                  cfg->aliases[i].address);
    }
  }
  return 0;
}

/* `base`/`path`, without a leading "./" in `path`; NULL on no memory. */
static char *join_path(const char *base, const char *path) {
  size_t blen = strlen(base), plen;
  char *joined;

  while (path[0] == '.' && path[1] == '/')
    path += 2;
  if (path[0] == '.' && path[1] == '\0')
    return dup_string(base, blen);
  plen = strlen(path);
  if (blen > 0 && base[blen - 1] == '/')
    blen--;
  joined = malloc(blen + 1 + plen + 1);
  if (joined != NULL) {
    memcpy(joined, base, blen);
    joined[blen] = '/';
    memcpy(joined + blen + 1, path, plen + 1);
  }
  return joined;
}

/* Makes relative paths relative to `base`; the users file defaults to
   data-dir/users. */
static int resolve_paths(parser *p, const char *base) {
  const setting *users = find_setting("users");
  char **slot, *joined;
  size_t i;

  for (i = 0; base != NULL && i < NSETTINGS; i++) {
    slot = field_at(p->cfg, settings[i].field);
    if (settings[i].kind != K_PATH || *slot == NULL || (*slot)[0] == '/')
      continue;
    joined = join_path(base, *slot);
    if (joined == NULL)
      return fail_nomem(p);
    free(*slot);
    *slot = joined;
  }
  if (p->seen[(size_t)(users - settings)] != 0)
    return 0;
  joined = join_path(p->cfg->data_dir, "users");
  if (joined == NULL)
    return fail_nomem(p);
  free(p->cfg->users_path);
  p->cfg->users_path = joined;
  return 0;
}

/* ---- Whole configurations ---- */

static int system_hostname(maild_config *cfg) {
  char name[MAILD_DOMAIN_MAX + 1];

  if (gethostname(name, sizeof(name)) != 0)
    name[0] = '\0';
  name[sizeof(name) - 1] = '\0';
  if (maild_domain_check(name, strlen(name), 0, 0) < 0)
    strcpy(name, "localhost");
  cfg->hostname = dup_string(name, strlen(name));
  return cfg->hostname != NULL ? 0 : MAILD_ERR_NOMEM;
}

static void option_defaults(maild_config *cfg) {
  size_t i;
  uint64_t def;

  for (i = 0; i < NSETTINGS; i++) {
    if (settings[i].option == 0 || settings[i].kind == K_WORD)
      continue;
    def = maild_options_get_uint(NULL, (maild_option)(settings[i].option - 1));
    if (settings[i].kind == K_CHOICE)
      *(int *)field_at(cfg, settings[i].field) = (int)def;
    else
      *(uint64_t *)field_at(cfg, settings[i].field) = def;
  }
}

static int default_lists(maild_config *cfg) {
  maild_config_listener l = {0};
  char *domain = dup_string("localhost", 9);
  size_t i;

  if (domain == NULL || push_string(&cfg->domains, &cfg->ndomains, domain)) {
    free(domain);
    return MAILD_ERR_NOMEM;
  }
  for (i = 0; i < sizeof(default_listeners) / sizeof(default_listeners[0]);
       i++) {
    l.service = default_listeners[i].service;
    l.family = strchr(default_listeners[i].address, ':') ? AF_INET6 : AF_INET;
    l.port = default_listeners[i].port;
    if (add_listener(cfg, &l, default_listeners[i].address) < 0)
      return MAILD_ERR_NOMEM;
  }
  return 0;
}

int maild_config_defaults(maild_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  option_defaults(cfg);
  cfg->quota = 0;
  cfg->log = MAILD_CONFIG_LOG_AUTO;
  cfg->data_dir = dup_string("./maild-data", 12);
  cfg->users_path = dup_string("./maild-data/users", 18);
  if (cfg->data_dir == NULL || cfg->users_path == NULL ||
      system_hostname(cfg) < 0 || default_lists(cfg) < 0) {
    maild_config_free(cfg);
    return MAILD_ERR_NOMEM;
  }
  return 0;
}

void maild_config_free(maild_config *cfg) {
  size_t i;

  if (cfg == NULL)
    return;
  free(cfg->hostname);
  free_strings(cfg->domains, cfg->ndomains);
  free_strings(cfg->trusted_networks, cfg->ntrusted);
  free_strings(cfg->dns_servers, cfg->ndns_servers);
  free(cfg->data_dir);
  free(cfg->users_path);
  free(cfg->run_user);
  free(cfg->tls_cert);
  free(cfg->tls_key);
  free_listeners(cfg);
  free_routes(cfg);
  for (i = 0; i < cfg->naliases; i++)
    free_alias(&cfg->aliases[i]);
  free(cfg->aliases);
  memset(cfg, 0, sizeof(*cfg));
}

static int parse_lines(parser *p, const char *text, size_t len) {
  const char *end = text + len, *nl;
  int rc;

  if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
    text += 3;
  for (p->line = 1; text < end; p->line++) {
    nl = memchr(text, '\n', (size_t)(end - text));
    if (nl == NULL)
      nl = end;
    rc = parse_line(p, text, (size_t)(nl - text));
    if (rc < 0)
      return rc;
    text = nl + 1;
  }
  return 0;
}

/* Parses `text` into a fresh configuration and swaps it into `cfg`. */
static int parse_config(maild_config *cfg, const char *name, const char *base,
                        const char *text, size_t len, char *err,
                        size_t errlen) {
  maild_config fresh;
  parser p;
  int rc;

  memset(&p, 0, sizeof(p));
  p.cfg = &fresh;
  p.name = name;
  p.err = err;
  p.errlen = errlen;
  if (maild_config_defaults(&fresh) < 0) {
    set_message(err, errlen, "%s: out of memory", name);
    return MAILD_ERR_NOMEM;
  }
  rc = parse_lines(&p, text, len);
  if (rc == 0)
    rc = check_alias_domains(&p);
  if (rc == 0)
    rc = resolve_paths(&p, base);
  if (rc < 0) {
    maild_config_free(&fresh);
    return rc;
  }
  maild_config_free(cfg);
  *cfg = fresh;
  return 0;
}

/* The directory part of `path`: "a/b.conf" -> "a", "b.conf" -> NULL. */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');

  if (slash == NULL)
    return NULL;
  return dup_string(path, slash == path ? 1 : (size_t)(slash - path));
}

int maild_config_parse(maild_config *cfg, const char *name, const char *text,
                       size_t len, char *err, size_t errlen) {
  char *base = dir_of(name);
  int rc;

  if (base == NULL && strchr(name, '/') != NULL) {
    set_message(err, errlen, "%s: out of memory", name);
    return MAILD_ERR_NOMEM;
  }
  rc = parse_config(cfg, name, base, text, len, err, errlen);
  free(base);
  return rc;
}

/* Reads the whole file into `*out`; messages name `path`. */
static int read_file(const char *path, char **out, size_t *len, char *err,
                     size_t errlen) {
  const size_t limit = (size_t)MAILD_CONFIG_FILE_MAX + 1;
  FILE *f = fopen(path, "rb");
  char *buf = NULL, *grown;
  size_t cap = 0, n;
  int rc = 0;

  *len = 0;
  if (f == NULL) {
    set_message(err, errlen, "%s: %s", path, strerror(errno));
    return MAILD_ERR_IO;
  }
  do { /* read until EOF or one octet past the limit */
    if (*len == cap) {
      cap = cap == 0 ? 4096 : cap * 2 < limit ? cap * 2 : limit;
      grown = realloc(buf, cap);
      if (grown == NULL) {
        rc = MAILD_ERR_NOMEM;
        set_message(err, errlen, "%s: out of memory", path);
        break;
      }
      buf = grown;
    }
    n = fread(buf + *len, 1, cap - *len, f);
    *len += n;
  } while (n > 0 && *len < limit);
  if (rc == 0 && ferror(f)) {
    set_message(err, errlen, "%s: %s", path, strerror(errno));
    rc = MAILD_ERR_IO;
  } else if (rc == 0 && *len >= limit) {
    set_message(err, errlen, "%s: file larger than %d octets", path,
                MAILD_CONFIG_FILE_MAX);
    rc = MAILD_ERR_TOO_LONG;
  }
  fclose(f);
  if (rc < 0)
    free(buf);
  else
    *out = buf;
  return rc;
}

int maild_config_load(maild_config *cfg, const char *path, char *err,
                      size_t errlen) {
  char *dir, *base, *text = NULL;
  size_t len;
  int rc, saved_errno;

  rc = read_file(path, &text, &len, err, errlen);
  if (rc < 0)
    return rc;
  dir = dir_of(path);
  base = realpath(dir != NULL ? dir : ".", NULL);
  saved_errno = errno;
  free(dir);
  if (base == NULL) {
    rc = saved_errno == ENOMEM ? MAILD_ERR_NOMEM : MAILD_ERR_IO;
    set_message(err, errlen, "%s: cannot find its directory: %s", path,
                strerror(saved_errno));
  } else {
    rc = parse_config(cfg, path, base, text, len, err, errlen);
  }
  free(text);
  free(base);
  return rc;
}

/* ---- Into the library's options ---- */

/* A numeric setting's value as the library takes it. */
static uint64_t numeric_value(const maild_config *cfg, const setting *s) {
  const void *field = field_of(cfg, s->field);

  if (s->kind == K_CHOICE)
    return (uint64_t) * (const int *)field;
  return *(const uint64_t *)field;
}

int maild_config_apply_options(const maild_config *cfg, maild_options *opt,
                               char *err, size_t errlen) {
  char text[32], lo[32], hi[32];
  const setting *s;
  maild_option key;
  uint64_t v;
  size_t i;
  int rc;

  for (i = 0; i < NSETTINGS; i++) {
    s = &settings[i];
    if (s->option == 0)
      continue;
    key = (maild_option)(s->option - 1);
    if (s->kind == K_WORD) {
      rc = maild_options_set_string(opt, key,
                                    *(char *const *)field_of(cfg, s->field));
      if (rc < 0) {
        set_message(err, errlen, "%s: %s", s->name, maild_strerror(rc));
        return rc;
      }
      continue;
    }
    v = numeric_value(cfg, s);
    rc = maild_options_set_uint(opt, key, v);
    if (rc < 0) {
      format_value(s->kind, v, text, sizeof(text));
      format_value(s->kind, option_ranges[key].min, lo, sizeof(lo));
      format_value(s->kind, option_ranges[key].max, hi, sizeof(hi));
      if (rc == MAILD_ERR_RANGE)
        set_message(err, errlen, "%s: %s is out of range (%s to %s)", s->name,
                    text, lo, hi);
      else
        set_message(err, errlen, "%s: %s", s->name, maild_strerror(rc));
      return rc;
    }
  }
  return 0;
}

const char *maild_config_service_name(maild_config_service service) {
  if ((unsigned)service >= MAILD_CONFIG_SERVICE__COUNT)
    return "?";
  return service_names[service];
}
