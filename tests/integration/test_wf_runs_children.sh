#!/usr/bin/env bash
# `aj wf show` for composed and evolving workflows: --run N shows run N's own state, result and
# error (not the latest run's); a run that continued as new shows `continued`; a child names its
# parent and a parent lists its children (text and --json); bad --run values are refused.
source "$AJ_TEST_LIB"

saga() { # EXIT_STATUS_OF_LAST_STEP
    printf '{"steps":[{"name":"a","run":["true"],"compensate":["true"]},{"name":"b","run":["sh","-c","exit %s"],"max_attempts":1}]}' "$1"
}

# Two runs of one id that ended differently.
expect_ok aj wf start saga --id r1 --input "$(saga 0)"
expect_ok timeout 60 "$AJ_BIN" --db "$DB" worker --drain
expect_ok aj wf start saga --id r1 --rerun --input "$(saga 1)"
expect_ok timeout 60 "$AJ_BIN" --db "$DB" worker --drain

expect_ok aj wf show r1 --json
expect_eq 2 "$(jget run)" "latest run"
expect_eq compensated "$(jget state)" "latest state"
expect_eq null "$(jget parent)" "parent of a top-level workflow"
expect_eq 0 "$(jget children.length)" "children of a workflow without any"

expect_ok aj wf show r1 --run 1 --json
expect_eq 1 "$(jget run)" "run 1"
expect_eq completed "$(jget state)" "run 1's own state"
expect_eq null "$(jget error)" "run 1 has no error"
expect_eq workflow_completed "$(jget "events.$(($(jget events.length) - 1)).type")" "run 1's last event"
expect_ok aj wf show r1 --run 1
expect_line '^state: +completed$' "$OUT" "text header of run 1"
expect_line '^run: +1$' "$OUT" "text header of run 1"
expect_ok aj wf show r1 --run 2
expect_line '^state: +compensated$' "$OUT" "text header of run 2"
expect_line '^error: ' "$OUT" "run 2's error"

# Bad --run values.
expect_error 2 "--run" aj wf show r1 --run 0
expect_error 2 "--run" aj wf show r1 --run abc
expect_error 2 "--run" aj wf show r1 --run -1
expect_error 2 "--run" aj wf show r1 --run 99999999999
expect_exit 2 aj wf show r1 --run
expect_error 3 "no run 3" aj wf show r1 --run 3
expect_error 3 "no run 3" aj wf history r1 --run 3
expect_error 3 "not found" aj wf show nope --run 1
expect_ok aj wf show --help
expect_contains "$OUT" "continued" "show --help"
expect_contains "$OUT" "children" "show --help"

# Continue-as-new and child workflows, recorded by the example programs on this store.
ex="${AJ_BUILD_DIR:-}/examples"
if [ ! -x "$ex/example_continue_as_new" ] || [ ! -x "$ex/example_child_fanout" ]; then
    echo "examples not built: skipping their part"
    exit 0
fi
expect_ok "$ex/example_continue_as_new" "$DB"
expect_ok aj wf show meter-1 --json
runs=$(jget run)
expect_eq completed "$(jget state)" "the meter's latest run"
[ "$runs" -gt 1 ] || fail "the meter never continued as new (run $runs)"
expect_ok aj wf show meter-1 --run 1 --json
expect_eq continued "$(jget state)" "a run that continued as new"
expect_eq null "$(jget result)" "a continued run's result"
last=$(($(jget events.length) - 1))
expect_eq continued_as_new "$(jget "events.$last.type")" "a continued run's last event"
expect_ok aj wf show meter-1 --run 1
expect_line '^state: +continued$' "$OUT" "text header of a continued run"
expect_ok aj wf history meter-1 --run 2
expect_line '"type":"workflow_started"' "$OUT" "run 2's history"

expect_ok "$ex/example_child_fanout" "$DB"
expect_ok aj wf show batch-1 --json
expect_eq 250 "$(jget children.length)" "children listed"
expect_eq batch-1/item-0 "$(jget children.0.id)" "first child"
expect_eq item-0 "$(jget children.0.name)" "first child's name"
expect_eq terminate "$(jget children.0.parent_close)" "first child's policy"
expect_eq completed "$(jget children.0.state)" "first child's state"
expect_ok aj wf show batch-1/item-7 --json
expect_eq batch-1 "$(jget parent.id)" "the child's parent"
expect_eq item-7 "$(jget parent.name)" "the child's name"
expect_eq 1 "$(jget parent.run)" "the parent's run"
expect_eq 49 "$(jget result)" "the child's result"
expect_ok aj wf show batch-1/item-7
expect_line "^parent: +batch-1 \(run 1, child 'item-7', on parent close: terminate\)$" "$OUT" "text parent line"
expect_ok aj wf show batch-1
expect_line '^children: +250$' "$OUT" "text children count"
expect_line '^  batch-1/item-249 +item-249 +run 1 +terminate +completed$' "$OUT" "text child line"
echo "ok"
