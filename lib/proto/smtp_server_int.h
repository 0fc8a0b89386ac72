/*
 * Private state of the SMTP server engine, shared by its three files:
 * smtp_server.c (session, input loop, output, decisions), smtp_server_cmd.c
 * (the command table and one handler per command) and smtp_server_data.c
 * (DATA and BDAT bodies). The session and the transaction are separate
 * objects (OpenSMTPD's smtp_tx), so RSET is simply "drop the tx".
 */
#ifndef MAILD_PROTO_SMTP_SERVER_INT_H
#define MAILD_PROTO_SMTP_SERVER_INT_H

#include "maild/smtp_server.h"
#include "maild/dotstuff.h"
#include "maild/line.h"
#include "core/buf.h"

/* What the input is currently read as. */
typedef enum smtp_input {
  IN_COMMAND,   /* command lines */
  IN_AUTH,      /* SASL response lines (RFC 4954 4) */
  IN_DATA,      /* dot-stuffed DATA body */
  IN_BDAT,      /* BDAT chunk octets for the open transaction */
  IN_BDAT_SKIP, /* BDAT chunk octets to drop (no usable transaction) */
  IN_TLS,       /* after 220 to STARTTLS: plaintext is discarded */
} smtp_input;

/* A callback decision the engine is waiting for. */
typedef enum smtp_pending {
  PEND_NONE,
  PEND_HELO,
  PEND_MAIL,
  PEND_RCPT,
  PEND_DATA_START,
  PEND_BDAT_START,
  PEND_CHUNK,
  PEND_DATA_END,
  PEND_STARTTLS,
  PEND_AUTH,
} smtp_pending;

/* Why the body of a transaction will be refused at its end. */
enum smtp_body_fault { BODY_OK = 0, BODY_TOO_BIG, BODY_LOOP };

typedef struct smtp_tx {
  maild_path from;
  int smtputf8;         /* MAIL had SMTPUTF8 */
  size_t rcpt_accepted; /* RCPTs answered 2xx */
  size_t rcpt_seen;     /* RCPTs handed to on_rcpt */
  int body_started;     /* on_data_start accepted (DATA or first BDAT) */
  int used_bdat;        /* the body is coming in BDAT chunks */
  uint64_t body_size;   /* octets passed to on_data_chunk */
  int fault;            /* smtp_body_fault */
  /* Header scan for the loop check (RFC 5321 6.3): counts "Received:"
     lines until the empty line that ends the header section. */
  int in_headers;
  size_t line_len;   /* octets of the current header line, CR excluded */
  int line_match;    /* the line so far matches "received:" */
  uint64_t received; /* Received: headers seen */
} smtp_tx;

struct maild_smtp_server {
  maild_mem mem;
  maild_smtp_server_callbacks cb;
  void *user_data;

  /* Options copied at construction. */
  char *hostname;
  char *auth_mechs; /* NULL: AUTH not offered */
  uint64_t max_command_line, max_params_extra, max_auth_line;
  uint64_t max_recipients, max_message_size, max_errors, max_received;
  uint64_t max_junk;
  uint64_t output_backlog;
  int opt_starttls, opt_auth_plaintext, opt_smtputf8, opt_chunking, opt_dsn;
  int opt_lenient_spaces;

  maild_linereader *lr;
  maild_buf out;
  size_t out_taken; /* octets returned by the last _send() */

  smtp_input input;
  smtp_pending pending;
  int greeted;       /* greeting queued */
  int greeting_sent; /* greeting handed to the embedder by _send() */
  int closing;

  /* Session state (forgotten by STARTTLS). */
  char *helo_name;
  int esmtp;
  int tls;
  char *tls_info;
  int authenticated;
  unsigned errors;
  uint64_t junk; /* NOOP/RSET/VRFY/HELP since the last accepted message */

  /* The command line being handled, for on_error (valid only then). */
  const char *line;
  size_t line_len;

  smtp_tx *tx;
  smtp_tx *pending_tx; /* MAIL decision pending */
  char *pending_helo;  /* HELO decision pending */
  int pending_helo_esmtp;
  char *auth_mech; /* SASL exchange in progress */
  unsigned auth_step;

  /* DATA decoding and BDAT chunk state. */
  maild_dot_decoder dot;
  uint64_t bdat_left;
  int bdat_last;
  int body_done;       /* the body ended while a chunk was deferred */
  int bdat_reply_code; /* IN_BDAT_SKIP: reply after the chunk */
  const char *bdat_reply_enh;
  const char *bdat_reply_text;
  uint8_t scratch[4096 + MAILD_DOT_DECODE_SLACK];
};

/* smtp_server.c */
int maild__smtp_reply(maild_smtp_server *s, int code, const char *enh,
                      const char *text);
int maild__smtp_junk_reply(maild_smtp_server *s, int code, const char *enh,
                           const char *text);
void maild__smtp_normalize(const maild_reply *r, int def_code,
                           const char *def_enh, const char *def_text,
                           maild_reply *out, char enh_buf[8]);
int maild__smtp_answer(maild_smtp_server *s, const maild_reply *r, int def_code,
                       const char *def_enh, const char *def_text);
int maild__smtp_decide(maild_smtp_server *s, smtp_pending kind, int rc,
                       maild_reply *r);
void maild__smtp_tx_free(maild_smtp_server *s, smtp_tx *tx);
void maild__smtp_tx_end(maild_smtp_server *s, maild_smtp_abort why);
int maild__smtp_close(maild_smtp_server *s, int code, const char *enh,
                      const char *text);
const char *maild__smtp_host(const maild_smtp_server *s);

/* smtp_server_cmd.c */
int maild__smtp_error(maild_smtp_server *s, int code, const char *enh,
                      const char *text);
int maild__smtp_command(maild_smtp_server *s, const maild_line *line);
int maild__smtp_auth_line(maild_smtp_server *s, const maild_line *line);
int maild__smtp_finish(maild_smtp_server *s, smtp_pending kind,
                       const maild_reply *r);

/* smtp_server_data.c */
maild_ssize maild__smtp_data_input(maild_smtp_server *s, const uint8_t *in,
                                   size_t len);
maild_ssize maild__smtp_bdat_input(maild_smtp_server *s, const uint8_t *in,
                                   size_t len);
int maild__smtp_cmd_data(maild_smtp_server *s, const char *arg, size_t len);
int maild__smtp_cmd_bdat(maild_smtp_server *s, const char *arg, size_t len);
int maild__smtp_data_start_done(maild_smtp_server *s, smtp_pending kind,
                                const maild_reply *r);
int maild__smtp_data_end_done(maild_smtp_server *s, const maild_reply *r);
int maild__smtp_chunk_done(maild_smtp_server *s);

#endif
