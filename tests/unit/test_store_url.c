/*
 * test_store_url.c — the parameters of a "sqlite:PATH?vfs=NAME" store URL: the VFS is used by
 * every connection and the file is PATH (not PATH with the query); an unknown parameter, an
 * empty or unregistered VFS name and a URL with no path are refused with a message naming them.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "powerloss_vfs.h"
#include "store/kv.h"

static void refused(const char *url, const char *needle) {
    kv_store *s = NULL;
    assert_int_equal(kv_open(&s, url, NULL), AJ_EINVAL);
    assert_null(s);
    if (strstr(aj_errmsg(), needle) == NULL) {
        fail_msg("'%s': message '%s' does not name '%s'", url, aj_errmsg(), needle);
    }
}

static void test_bad_parameters(void **state) {
    (void)state;
    char *dir = aj_test_tmpdir();
    char *path = aj_test_path(dir, "u.db");
    char url[1200];
    snprintf(url, sizeof url, "sqlite:%s?cache=shared", path);
    refused(url, "cache=shared");
    snprintf(url, sizeof url, "sqlite:%s?vfs=", path);
    refused(url, "vfs wants a name");
    snprintf(url, sizeof url, "sqlite:%s?vfs=no-such-vfs", path);
    refused(url, "'no-such-vfs', which is not registered");
    refused("sqlite:?vfs=unix", "names no file");
    /* Nothing was created by the refused URLs. */
    assert_int_equal(access(path, F_OK), -1);
    free(path);
    aj_test_rmtree(dir);
    free(dir);
}

/* Every write goes through the named VFS: the power-loss shim sees the syncs of a commit. */
static void test_vfs_is_used(void **state) {
    (void)state;
    char *dir = aj_test_tmpdir();
    char *path = aj_test_path(dir, "u.db");
    char url[1200];
    snprintf(url, sizeof url, "sqlite:%s?vfs=%s", path, AJ_POWERLOSS_VFS);
    assert_int_equal(aj_powerloss_start(0, AJ_POWERLOSS_DROP), 0);
    aj_engine *e = NULL;
    assert_int_equal(aj_engine_open(&e, url, NULL), 0);
    long opened = aj_powerloss_syncs();
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "t";
    uint64_t id = 0;
    assert_int_equal(aj_submit(e, &s, &id), 0);
    assert_true(aj_powerloss_syncs() > opened);
    aj_engine_close(e);
    assert_int_equal(aj_powerloss_reboot(), 0);
    assert_int_equal(access(path, F_OK), 0);
    /* Opened again without the shim, by its plain path: the job is there. */
    snprintf(url, sizeof url, "sqlite:%s", path);
    assert_int_equal(aj_engine_open(&e, url, NULL), 0);
    aj_job *j = NULL;
    assert_int_equal(aj_job_get(e, id, &j), 0);
    aj_job_free(j);
    aj_engine_close(e);
    free(path);
    aj_test_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_parameters),
        cmocka_unit_test(test_vfs_is_used),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
