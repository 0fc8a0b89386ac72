/*
 * smtp_sink: an SMTP server that accepts every message and throws it away,
 * printing one line per message. It drives the libmaild SMTP engine from a
 * plain poll() loop, with no libuv and no TLS, to show that the engine needs
 * nothing but bytes: the program owns the sockets, hands the engine what the
 * client sent and writes back what the engine gives it. Copy the loop below
 * into whatever event loop you already have.
 *
 *   smtp_sink [-l ADDR] [-p PORT] [-n MAXMSGS]
 *
 * prints "listening on ADDR:PORT" (port 0 picks a free port), then for each
 * message "message from=<SENDER> to=<R1>,<R2> size=BODYBYTES". With -n it
 * exits once MAXMSGS messages were reported and every client has gone.
 */
#include <maild/maild.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS   256
#define INBUF_SIZE    16384
#define SINK_HOSTNAME "smtp-sink.localhost"

typedef struct client {
  int fd;
  maild_smtp_server *smtp;
  /* Octets read from the socket that the engine has not taken yet: it
     consumes less than offered while it waits for its output to drain. */
  uint8_t in[INBUF_SIZE];
  size_t in_len;
  /* Output the engine handed over that the kernel has not taken yet. The
     pointer is the engine's own, valid until the next call on the session,
     so the session is left alone until this is written. */
  const uint8_t *out;
  size_t out_len;
  /* The envelope of the open transaction, for the report line. */
  char from[MAILD_PATH_MAX + 1];
  char *to; /* "<r1>,<r2>", grown with each RCPT */
  size_t to_len, to_cap;
  uint64_t body_size;
} client;

static unsigned long messages_seen;

static void tx_reset(client *c) {
  c->from[0] = '\0';
  c->to_len = 0;
  c->body_size = 0;
}

static int on_mail(maild_smtp_server *s, const maild_smtp_mail *mail,
                   maild_reply *reply, void *user_data) {
  client *c = user_data;
  (void)s;
  (void)reply;
  tx_reset(c);
  /* A path is at most 256 octets, so the buffer always fits. */
  return maild_path_format(mail->from, c->from, sizeof(c->from)) < 0 ? -1 : 0;
}

static int on_rcpt(maild_smtp_server *s, const maild_smtp_rcpt *rcpt,
                   maild_reply *reply, void *user_data) {
  client *c = user_data;
  char addr[MAILD_PATH_MAX + 1];
  maild_ssize n = maild_path_format(rcpt->to, addr, sizeof(addr));
  (void)s;
  if (n < 0)
    return -1;
  size_t need = c->to_len + (size_t)n + 4; /* ",<" ">" NUL */
  if (need > c->to_cap) {
    char *p = realloc(c->to, need * 2);
    if (p == NULL) {
      /* Refusing this recipient is kinder than dropping the client. */
      static const maild_reply busy = {452, "4.3.1", "Out of memory"};
      *reply = busy;
      return 0;
    }
    c->to = p;
    c->to_cap = need * 2;
  }
  c->to_len += (size_t)snprintf(c->to + c->to_len, c->to_cap - c->to_len,
                                "%s<%s>", c->to_len ? "," : "", addr);
  return 0;
}

static int on_data_chunk(maild_smtp_server *s, const uint8_t *data, size_t len,
                         void *user_data) {
  client *c = user_data;
  (void)s;
  (void)data; /* a sink: count the octets, keep none of them */
  c->body_size += len;
  return 0;
}

static int on_data_end(maild_smtp_server *s, maild_reply *reply,
                       void *user_data) {
  client *c = user_data;
  (void)s;
  (void)reply; /* code 0: the engine's default 250 */
  printf("message from=<%s> to=%.*s size=%" PRIu64 "\n", c->from,
         (int)c->to_len, c->to ? c->to : "", c->body_size);
  /* Whoever reads us through a pipe must see the line now, not at exit. */
  fflush(stdout);
  messages_seen++;
  tx_reset(c);
  return 0;
}

static void on_tx_abort(maild_smtp_server *s, maild_smtp_abort why,
                        void *user_data) {
  (void)s;
  (void)why;
  tx_reset(user_data);
}

/* A non-blocking socket that cannot move octets now is not an error. */
static int would_block(void) {
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

static void client_free(client *c) {
  close(c->fd);
  maild_smtp_server_del(c->smtp);
  free(c->to);
  free(c);
}

/*
 * Moves octets between the socket and the engine until neither can make
 * progress. Returns -1 when the connection should be closed.
 */
static int client_pump(client *c) {
  for (;;) {
    if (c->out_len > 0) {
      ssize_t w = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
      if (w < 0)
        return would_block() ? 0 : -1;
      c->out += w;
      c->out_len -= (size_t)w;
      if (c->out_len > 0)
        return 0; /* the kernel is full: wait for POLLOUT */
    }
    const uint8_t *out;
    maild_ssize m = maild_smtp_server_send(c->smtp, &out);
    if (m > 0) {
      c->out = out;
      c->out_len = (size_t)m;
      continue;
    }
    if (c->in_len == 0 || !maild_smtp_server_want_read(c->smtp))
      break;
    maild_ssize n = maild_smtp_server_recv(c->smtp, c->in, c->in_len);
    if (n < 0)
      return -1; /* our callbacks never fail, so this is out of memory */
    if (n == 0)
      break;
    /* Keep the rest: it is offered again once the output has drained. */
    memmove(c->in, c->in + n, c->in_len - (size_t)n);
    c->in_len -= (size_t)n;
  }
  /* QUIT answered, 421 sent, or too many errors: the engine is done. */
  if (!maild_smtp_server_want_read(c->smtp) &&
      !maild_smtp_server_want_write(c->smtp))
    return -1;
  return 0;
}

/* Returns -1 when the connection should be closed. */
static int client_readable(client *c) {
  ssize_t r = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
  if (r < 0)
    return would_block() ? 0 : -1;
  if (r == 0) {
    /* The client is gone, but what it sent before leaving still counts:
       "printf 'EHLO...QUIT' | nc" must deliver its message. */
    client_pump(c);
    return -1;
  }
  c->in_len += (size_t)r;
  return client_pump(c);
}

/* Asks the engine only when no output of its is held (see client.out). */
static short client_events(const client *c) {
  if (c->out_len > 0)
    return POLLOUT;
  /* No POLLIN while the engine refuses input or our buffer is full: this
     is what pushes back on a client that sends faster than we answer. */
  if (maild_smtp_server_want_read(c->smtp) && c->in_len < sizeof(c->in))
    return POLLIN;
  return 0;
}

static int set_nonblocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static client *client_new(int fd, const maild_options *opt) {
  static const maild_smtp_server_callbacks cb = {
      .on_mail = on_mail,
      .on_rcpt = on_rcpt,
      .on_data_chunk = on_data_chunk,
      .on_data_end = on_data_end,
      .on_tx_abort = on_tx_abort,
  };
  client *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  c->fd = fd;
  if (set_nonblocking(fd) < 0 ||
      maild_smtp_server_new(&c->smtp, &cb, c, opt, NULL) < 0) {
    free(c);
    return NULL;
  }
  return c;
}

/* Binds ADDR:PORT and prints where we listen. Returns the socket or -1. */
static int listen_on(const char *addr, const char *port) {
  struct addrinfo hints = {0}, *ai;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  int err = getaddrinfo(addr, port, &hints, &ai);
  if (err != 0) {
    fprintf(stderr, "smtp_sink: %s:%s: %s\n", addr, port, gai_strerror(err));
    return -1;
  }
  int one = 1, fd = socket(ai->ai_family, SOCK_STREAM, 0);
  if (fd < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
      bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0 ||
      set_nonblocking(fd) < 0) {
    perror("smtp_sink: listen");
    freeaddrinfo(ai);
    if (fd >= 0)
      close(fd);
    return -1;
  }
  freeaddrinfo(ai);

  /* Port 0 means "any free port": tell the caller which one it got. */
  struct sockaddr_storage ss;
  socklen_t sslen = sizeof(ss);
  char host[64], serv[8];
  if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0 ||
      getnameinfo((struct sockaddr *)&ss, sslen, host, sizeof(host), serv,
                  sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    close(fd);
    return -1;
  }
  int v6 = ss.ss_family == AF_INET6;
  printf("listening on %s%s%s:%s\n", v6 ? "[" : "", host, v6 ? "]" : "", serv);
  fflush(stdout);
  return fd;
}

/* Parses a decimal number up to `max`; returns -1 for anything else. */
static int parse_uint(const char *s, unsigned long max, unsigned long *out) {
  char *end;
  errno = 0;
  *out = strtoul(s, &end, 10);
  if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || *out > max)
    return -1;
  return 0;
}

int main(int argc, char **argv) {
  const char *addr = "127.0.0.1", *port = "2525";
  unsigned long max_msgs = 0, num; /* 0: run forever */
  int ch, bad = 0;
  while ((ch = getopt(argc, argv, "l:p:n:")) != -1) {
    if (ch == 'l')
      addr = optarg;
    else if (ch == 'p')
      bad |= parse_uint(port = optarg, 65535, &num);
    else if (ch == 'n')
      bad |= parse_uint(optarg, ULONG_MAX, &max_msgs);
    else
      bad = -1;
  }
  if (bad || optind != argc) {
    fprintf(stderr, "usage: smtp_sink [-l ADDR] [-p PORT] [-n MAXMSGS]\n");
    return 2;
  }

  /* One options object serves every session: the engine copies it. */
  maild_options *opt = NULL;
  int lfd = -1;
  if (maild_options_new(&opt, NULL) == 0 &&
      maild_options_set_string(opt, MAILD_OPT_HOSTNAME, SINK_HOSTNAME) == 0)
    lfd = listen_on(addr, port);
  if (lfd < 0) {
    maild_options_del(opt);
    return 1;
  }

  /* fds[0] is the listener; fds[i] belongs to clients[i] for i > 0. */
  struct pollfd fds[MAX_CLIENTS + 1];
  client *clients[MAX_CLIENTS + 1];
  nfds_t n = 1;
  fds[0].fd = lfd;
  while (lfd >= 0 || n > 1) {
    /* When full, new clients wait in the listen backlog. */
    fds[0].events = n <= MAX_CLIENTS ? POLLIN : 0;
    for (nfds_t i = 1; i < n; i++)
      fds[i].events = client_events(clients[i]);
    if (poll(fds, n, -1) < 0) {
      if (errno == EINTR)
        continue;
      perror("smtp_sink: poll");
      break;
    }
    for (nfds_t i = n - 1; i > 0; i--) {
      short re = fds[i].revents;
      client *c = clients[i];
      int rc = 0;
      if (re & POLLIN)
        rc = client_readable(c);
      else if (re & POLLOUT)
        rc = client_pump(c);
      else if (re & (POLLERR | POLLHUP | POLLNVAL))
        rc = -1;
      if (rc < 0) {
        /* Walking backwards lets the last entry fill this slot. */
        client_free(c);
        n--;
        fds[i] = fds[n];
        clients[i] = clients[n];
      }
    }
    if (lfd >= 0 && (fds[0].revents & POLLIN)) {
      int fd;
      while (n <= MAX_CLIENTS && (fd = accept(lfd, NULL, NULL)) >= 0) {
        client *c = client_new(fd, opt);
        if (c == NULL) {
          close(fd);
          continue;
        }
        fds[n].fd = fd;
        clients[n++] = c;
        /* Send the greeting now; the client talks only after it. */
        if (client_pump(c) < 0) {
          client_free(c);
          n--;
        }
      }
    }
    if (max_msgs > 0 && messages_seen >= max_msgs && lfd >= 0) {
      /* Enough: take no new clients, let the connected ones finish. */
      close(lfd);
      lfd = -1;
      fds[0].fd = -1;
    }
  }
  if (lfd >= 0)
    close(lfd);
  maild_options_del(opt);
  return 0;
}
