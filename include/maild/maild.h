/* libmaild umbrella header: everything an embedder without libuv needs.
   The libuv runtime is in maild/server.h. */
#ifndef MAILD_H
#define MAILD_H

#include "maild/common.h"
#include "maild/error.h"
#include "maild/options.h"
#include "maild/line.h"
#include "maild/dotstuff.h"
#include "maild/address.h"
#include "maild/esmtp.h"
#include "maild/reply.h"
#include "maild/base64.h"
#include "maild/smtp_client.h"
#include "maild/smtp_server.h"
#include "maild/sasl.h"
#include "maild/pop3_server.h"
#include "maild/store.h"
#include "maild/users.h"
#include "maild/directory.h"
#include "maild/cidr.h"

#endif
