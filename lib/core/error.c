/*
 * maild_strerror() and maild_err_name(), generated from the one error table
 * in maild/error.h.
 */
#include "maild/error.h"

const char *maild_strerror(int err) {
  switch (err) {
#define MAILD_STRERROR_(name, value, msg) \
  case MAILD_ERR_##name:                  \
    return msg;
    MAILD_ERRNO_MAP(MAILD_STRERROR_)
#undef MAILD_STRERROR_
  default:
    return "unknown error";
  }
}

const char *maild_err_name(int err) {
  switch (err) {
#define MAILD_ERR_NAME_(name, value, msg) \
  case MAILD_ERR_##name:                  \
    return "MAILD_ERR_" #name;
    MAILD_ERRNO_MAP(MAILD_ERR_NAME_)
#undef MAILD_ERR_NAME_
  default:
    return "MAILD_ERR_UNKNOWN";
  }
}
