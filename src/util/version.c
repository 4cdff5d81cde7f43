/*
 * version.c — the library's version string. It comes from aj.h so that the header a program
 * compiled against and the library it runs with can be compared (AJ_VERSION_STRING vs
 * aj_version()).
 *
 * Layer: util; depends only on the public header.
 */
#include "aj.h"

const char *aj_version(void) {
    return AJ_VERSION_STRING;
}
