/*
 * test_sm_def.c — the `statemachine` definition (src/runtime/sm_def.c) without an engine: the
 * defaults a parsed definition gets, the order in which transition rules decide (named outcomes,
 * all_success, any_failure, success_rate then/else, otherwise, with the rate's boundary), and
 * the exact messages that bad definitions get, each naming the offending path.
 */
#include "harness.h"

#include <stdio.h>
#include <string.h>

#include "runtime/sm_def.h"

int main(void);

static sm_def *parse_ok(const char *text) {
    sm_def *d = NULL;
    int rc = aj__sm_parse(text, strlen(text), &d);
    if (rc != 0) {
        fail_msg("parse failed: %s", aj_errmsg());
    }
    assert_non_null(d);
    return d;
}

static size_t state(const sm_def *d, const char *name) {
    for (size_t i = 0; i < d->n_states; i++) {
        if (strcmp(d->states[i].name, name) == 0) {
            return i;
        }
    }
    fail_msg("no state %s", name);
    return 0;
}

/* The name of the state that follows `from` with outcomes given as a string of 'c'/'d'. */
static const char *next(const sm_def *d, const char *from, const char *outcomes,
                        const char **rule) {
    int o[SM_JOBS_MAX];
    size_t s = state(d, from);
    assert_int_equal(strlen(outcomes), d->states[s].n_jobs);
    for (size_t i = 0; outcomes[i] != '\0'; i++) {
        o[i] = outcomes[i] == 'd' ? SM_DEAD : SM_COMPLETED;
    }
    return d->states[aj__sm_next(d, s, o, rule)].name;
}

static void test_defaults(void **state_) {
    (void)state_;
    sm_def *d =
        parse_ok("{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[{\"name\":\"j\","
                 "\"run\":[\"true\"]},{\"name\":\"k\",\"type\":\"echo\",\"payload\":{}"
                 ",\"queue\":\"q\",\"max_attempts\":7,\"timeout\":\"2s\",\"lease\":\"1s\"}],"
                 "\"wait\":\"5s\",\"on\":{\"otherwise\":\"z\"}},"
                 "\"z\":{\"terminal\":\"failed\"}}}");
    assert_int_equal(d->n_states, 2);
    assert_string_equal(d->states[d->initial].name, "a");
    assert_int_equal(d->max_transitions, SM_TRANSITIONS_DEFAULT);
    const sm_state *a = &d->states[state(d, "a")];
    assert_int_equal(a->wait_ms, 5000);
    assert_int_equal(a->n_jobs, 2);
    assert_non_null(a->jobs[0].run);
    assert_null(a->jobs[0].type);
    assert_string_equal(a->jobs[0].queue, "default");
    assert_int_equal(a->jobs[0].max_attempts, 3);
    assert_int_equal(a->jobs[0].timeout_ms, 5 * AJ_MINUTE);
    assert_int_equal(a->jobs[0].lease_ms, 30 * AJ_SECOND);
    assert_string_equal(a->jobs[1].type, "echo");
    assert_string_equal(a->jobs[1].queue, "q");
    assert_int_equal(a->jobs[1].max_attempts, 7);
    assert_int_equal(a->jobs[1].timeout_ms, 2000);
    assert_int_equal(a->jobs[1].lease_ms, 1000);
    assert_int_equal(d->states[state(d, "z")].terminal, SM_TERMINAL_FAILED);
    aj__sm_free(d);
    aj__sm_free(NULL);
}

static void test_rule_order(void **state_) {
    (void)state_;
    /* Named outcomes first (in job order), then all_success / any_failure, then the rate. */
    sm_def *d = parse_ok(
        "{\"initial\":\"s\",\"max_transitions\":5,\"states\":{"
        "\"s\":{\"jobs\":[{\"name\":\"a\",\"run\":[\"x\"]},{\"name\":\"b\",\"run\":[\"x\"]}],"
        "\"on\":{\"outcome\":{\"b\":{\"dead\":\"b_dead\"},\"a\":{\"dead\":\"a_dead\"}},"
        "\"all_success\":\"ok\",\"any_failure\":\"bad\"}},"
        "\"ok\":{\"terminal\":\"completed\"},\"bad\":{\"terminal\":\"failed\"},"
        "\"a_dead\":{\"terminal\":\"failed\"},\"b_dead\":{\"terminal\":\"failed\"}}}");
    const char *rule = NULL;
    assert_string_equal(next(d, "s", "cc", &rule), "ok");
    assert_string_equal(rule, "all_success");
    assert_string_equal(next(d, "s", "dd", &rule), "a_dead"); /* job order, not JSON order */
    assert_string_equal(rule, "outcome");
    assert_string_equal(next(d, "s", "cd", &rule), "b_dead");
    assert_int_equal(d->max_transitions, 5);
    aj__sm_free(d);

    d = parse_ok(
        "{\"initial\":\"s\",\"states\":{"
        "\"s\":{\"jobs\":[{\"name\":\"a\",\"run\":[\"x\"]},{\"name\":\"b\",\"run\":[\"x\"]}"
        ",{\"name\":\"c\",\"run\":[\"x\"]}],\"on\":{\"any_failure\":\"bad\","
        "\"otherwise\":\"ok\"}},"
        "\"ok\":{\"terminal\":\"completed\"},\"bad\":{\"terminal\":\"failed\"}}}");
    assert_string_equal(next(d, "s", "ccc", &rule), "ok");
    assert_string_equal(rule, "otherwise");
    assert_string_equal(next(d, "s", "cdc", &rule), "bad");
    assert_string_equal(rule, "any_failure");
    aj__sm_free(d);
}

static void test_success_rate(void **state_) {
    (void)state_;
    char text[2048];
    int n = snprintf(text, sizeof text, "{\"initial\":\"s\",\"states\":{\"s\":{\"jobs\":[");
    for (int i = 0; i < 10; i++) {
        n += snprintf(text + n, sizeof text - (size_t)n, "%s{\"name\":\"j%d\",\"run\":[\"x\"]}",
                      i ? "," : "", i);
    }
    snprintf(text + n, sizeof text - (size_t)n,
             "],\"on\":{\"success_rate\":{\"at_least\":0.9,\"then\":\"hi\",\"else\":\"lo\"}}},"
             "\"hi\":{\"terminal\":\"completed\"},\"lo\":{\"terminal\":\"failed\"}}}");
    sm_def *d = parse_ok(text);
    const char *rule = NULL;
    assert_string_equal(next(d, "s", "cccccccccc", &rule), "hi");
    assert_string_equal(rule, "success_rate");
    assert_string_equal(next(d, "s", "ccccdccccc", &rule), "hi"); /* exactly 0.9 */
    assert_string_equal(next(d, "s", "ccccdccccd", &rule), "lo");
    assert_string_equal(rule, "success_rate_else");
    assert_string_equal(next(d, "s", "dddddddddd", &rule), "lo");
    aj__sm_free(d);

    /* at_least 0 always takes "then", so "else" is not needed. */
    d = parse_ok("{\"initial\":\"s\",\"states\":{\"s\":{\"jobs\":[{\"name\":\"a\",\"run\":[\"x\"]}"
                 "],\"on\":{\"success_rate\":{\"at_least\":0,\"then\":\"hi\"}}},"
                 "\"hi\":{\"terminal\":\"completed\"}}}");
    assert_string_equal(next(d, "s", "d", &rule), "hi");
    aj__sm_free(d);
}

static void expect_bad(const char *text, const char *want) {
    sm_def *d = (sm_def *)&want; /* must stay untouched */
    int rc = aj__sm_parse(text, strlen(text), &d);
    if (rc != AJ_EINVAL) {
        fail_msg("expected AJ_EINVAL (%s) for %s, got %d", want, text, rc);
    }
    assert_ptr_equal(d, (sm_def *)&want);
    if (strcmp(aj_errmsg(), want) != 0) {
        fail_msg("message \"%s\", wanted \"%s\"", aj_errmsg(), want);
    }
    assert_int_equal(aj__sm_validate(text, strlen(text)), AJ_EINVAL);
}

#define DONE "\"done\":{\"terminal\":\"completed\"}"
#define JOB "{\"name\":\"j\",\"run\":[\"true\"]}"
#define P "statemachine input: "

static void test_errors(void **state_) {
    (void)state_;
    /* jansson words its own part of the message; the start is ours. */
    sm_def *d = NULL;
    assert_int_equal(aj__sm_parse("nope", 4, &d), AJ_EINVAL);
    assert_null(d);
    assert_int_equal(strncmp(aj_errmsg(), P "invalid JSON at line 1 column ",
                             sizeof(P "invalid JSON at line 1 column ") - 1),
                     0);
    expect_bad("[]", P "expected an object {\"initial\":STATE,\"states\":{...}}");
    expect_bad("{\"states\":{" DONE "},\"x\":1}", P "unknown field \"x\"");
    expect_bad("{\"states\":{" DONE "}}", P "initial: no initial state: add \"initial\":STATE");
    expect_bad("{\"initial\":\"x\",\"states\":{" DONE "}}", P "initial: unknown state 'x'");
    expect_bad("{\"initial\":\"done\",\"states\":{}}",
               P "states: must be a non-empty object mapping state names to states");
    expect_bad("{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[" JOB
               "],\"on\":{\"all_success\":\"dne\",\"any_failure\":\"done\"}}," DONE "}}",
               P "states.a.on.all_success: unknown state 'dne'");
    expect_bad("{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[" JOB "," JOB
               "],\"on\":{\"otherwise\":\"done\"}}," DONE "}}",
               P "states.a.jobs[1]: job name 'j' is used twice in state 'a' (jobs[0] and jobs[1])");
    expect_bad("{\"initial\":\"a\",\"states\":{\"a\":{}," DONE "}}",
               P "states.a: a state needs \"jobs\" and \"on\" (transitions), or \"terminal\"");
    expect_bad("{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[" JOB
               "],\"on\":{\"otherwise\":\"done\"}},\"b\":{\"terminal\":\"failed\"}," DONE "}}",
               P "states.b: unreachable from the initial state 'a'");
    expect_bad("{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[" JOB
               "],\"on\":{\"otherwise\":\"a\"}}}}",
               P "states: no terminal state: add one like \"done\":{\"terminal\":\"completed\"}");
    expect_bad("{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[" JOB
               "],\"on\":{\"success_rate\":{\"at_least\":2,\"then\":\"done\"}}}," DONE "}}",
               P "states.a.on.success_rate: \"at_least\" is 2; it must be from 0 to 1");
    expect_bad("{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[" JOB
               "],\"on\":{\"success_rate\":{\"at_least\":\"0.5\",\"then\":\"done\"}}}," DONE "}}",
               P "states.a.on.success_rate: \"at_least\" must be a number from 0 to 1");
    expect_bad("{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[" JOB
               "],\"on\":{\"success_rate\":{\"at_least\":0.5,\"then\":\"done\"}}}," DONE "}}",
               P "states.a.on: the transitions leave some outcomes undecided: add \"otherwise\", "
                 "both \"all_success\" and \"any_failure\", \"else\" to \"success_rate\", or both "
                 "\"completed\" and \"dead\" for one job in \"outcome\"");
    expect_bad("{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[" JOB
               "],\"on\":{\"outcome\":{\"j\":{\"done\":\"done\"}},\"otherwise\":\"done\"}}," DONE
               "}}",
               P "states.a.on.outcome.j: unknown field \"done\"");
    expect_bad("{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[{\"name\":\"j\",\"run\":[\"t\"],"
               "\"lease\":\"999ms\"}],\"on\":{\"otherwise\":\"done\"}}," DONE "}}",
               P "states.a.jobs.j: \"lease\" must be at least 1000ms (the minimum lease)");
    expect_bad("{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[{\"name\":\"x/y\",\"run\":[\"t\"]}"
               "],\"on\":{\"otherwise\":\"done\"}}," DONE "}}",
               P "states.a.jobs[0]: job name 'x/y' contains '/'");
    expect_bad("{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[{\"name\":\"j\",\"run\":[\"t\"],"
               "\"payload\":1}],\"on\":{\"otherwise\":\"done\"}}," DONE "}}",
               P "states.a.jobs.j: \"payload\" goes with \"type\", not with \"run\"");
    expect_bad("{\"initial\":\"a\",\"states\":{\"a\":{\"wait\":\"soon\",\"jobs\":[" JOB
               "],\"on\":{\"otherwise\":\"done\"}}," DONE "}}",
               P "states.a: \"wait\" must be a positive duration like \"30s\", at most 30d");
    expect_bad("{\"initial\":\"done\",\"max_transitions\":10001,\"states\":{" DONE "}}",
               P "max_transitions: must be an integer from 1 to 10000");
    expect_bad("{\"initial\":\"a\\nb\",\"states\":{" DONE "}}", P "initial: unknown state 'a?b'");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_rule_order),
        cmocka_unit_test(test_success_rate),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
