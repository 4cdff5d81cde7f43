/*
 * fuzz_priority.c — fuzzes aj_priority_parse() against a reference: text is accepted exactly
 * when it is one of the four names or a non-empty run of decimal digits whose value fits in
 * 32 bits, and then the value is the name's or strtoull()'s. Failures are AJ_EINVAL with a
 * one-line message and leave the out-parameter alone; every accepted value prints back ("%u") to
 * text that parses to the same value.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aj.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longer inputs only repeat what short ones test. */
#define FUZZ_INPUT_MAX 4096
/* A value the parser must not write on failure. */
#define FUZZ_SENTINEL 0xdeadbeefu

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #c);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The reference: 1 and *v when text should be accepted. */
static int reference(const char *text, uint32_t *v) {
    static const struct {
        const char *name;
        uint32_t value;
    } names[] = {{"critical", 0}, {"high", 512}, {"normal", 1024}, {"low", 2048}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(text, names[i].name) == 0) {
            *v = names[i].value;
            return 1;
        }
    }
    if (text[0] == '\0' || strspn(text, "0123456789") != strlen(text)) {
        return 0;
    }
    errno = 0;
    unsigned long long x = strtoull(text, NULL, 10);
    if (errno == ERANGE || x > UINT32_MAX) {
        return 0;
    }
    *v = (uint32_t)x;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > FUZZ_INPUT_MAX) {
        return 0;
    }
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';

    uint32_t v = FUZZ_SENTINEL, want = 0;
    int rc = aj_priority_parse(text, &v);
    int ok = reference(text, &want);
    CHECK((rc == 0) == ok);
    if (rc == 0) {
        CHECK(v == want);
        char buf[16];
        snprintf(buf, sizeof buf, "%u", v);
        uint32_t back = FUZZ_SENTINEL;
        CHECK(aj_priority_parse(buf, &back) == 0 && back == v);
    } else {
        CHECK(rc == AJ_EINVAL);
        CHECK(v == FUZZ_SENTINEL);
        CHECK(strncmp(aj_errmsg(), "invalid priority '", 18) == 0);
        CHECK(strchr(aj_errmsg(), '\n') == NULL);
    }
    free(text);
    return 0;
}
