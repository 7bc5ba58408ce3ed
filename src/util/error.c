/* error.c - sb_strerror() generated from the SB_ERRORS table in error.h. */
#include "util/error.h"

#include <string.h>

const char *sb_strerror(int code) {
    switch (code) {
    case 0:
        return "ok";
#define SB__ERR_CASE(name, val, text)                                                                    \
    case (val):                                                                                          \
        return text;
        SB_ERRORS(SB__ERR_CASE)
#undef SB__ERR_CASE
    default:
        if (code < 0 && code > -4000)
            return strerror(-code);
        return "unknown error";
    }
}
