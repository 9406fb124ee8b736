#!/usr/bin/env bash
# scripts/device_long_run.sh on the CPU, as the GPU machine runs it, with a tiny model on tiny
# clips: two runs side by side, one stopped at its deadline and one of its own length finished;
# the stopped run's archive in parts; resumed on a fresh work folder from the carried parts, its
# log and clock going on; then finished; and the refusals. A fault here would waste device time.
#   tests/long_run_test.sh path/to/mambawave REPO_ROOT
set -euo pipefail
MW=$(realpath "$1")
ROOT=$(realpath "$2")
source "$(dirname "${BASH_SOURCE[0]}")/test_lib.sh"   # $PY, a scratch folder, check, refuse
LONG=$ROOT/scripts/device_long_run.sh

tiny_fsdd_clips clips 3   # FSDD-named clips, 3 digits (test_lib.sh)
A="--d-model 8 --layers 1 --d-state 4 --batch 2 --segment 256 --label-prefix 8"
long() { env DATA=clips DEVICE=cpu MW="$MW" VE=10 LR=3e-3 SPLIT=20k "$@" bash "$LONG"; }
summary() { $PY -c "import json, sys; j = json.load(open(sys.argv[1])); print(j['steps_done'], j['interrupted'])" "$1"; }

# 1. Two runs side by side: a (100000 steps) stops at the deadline, b (its own 30) finishes.
rc=0; long WORK=w1 OUT=o1 DEADLINE=33 STEPS=100000 RUNS="a $A;b:30 $A" >call1.log 2>&1 || rc=$?
cp call1.log last.out
check "call 1 exits 3: a run stopped to go on (found $rc)" test $rc -eq 3
check "... a's archive came back in parts, beside its best model and summary" \
    sh -c "ls o1/a_run.tgz.00 o1/a_run.tgz.01 o1/a.safetensors o1/a.json && ! ls o1/a_run.tgz"
read -r a1 a1int < <(summary o1/a.json)
check "... a stopped part-way (step $a1, interrupted $a1int)" sh -c "test $a1 -gt 0 && test $a1 -lt 100000 && test $a1int = True"
read -r b1 _ < <(summary o1/b.json)
check "... b finished its own 30 steps (found $b1)" test "$b1" -eq 30
check "... the archive holds no best model (it came back beside it)" \
    sh -c "cat o1/a_run.tgz.0* | tar tzf - | grep -q 'a.run/checkpoint/trainer.safetensors' && ! (cat o1/a_run.tgz.0* | tar tzf - | grep -qx 'a.safetensors')"

# 2. A fresh machine: a resumed from the carried parts (and its best model beside them).
rc=0; long WORK=w2 OUT=o2 DEADLINE=33 STEPS=100000 CARRY_DIR=o1 RUNS="a $A" >call2.log 2>&1 || rc=$?
cp call2.log last.out
check "call 2 resumes the carried run and stops again (exit $rc)" sh -c "test $rc -eq 3 && grep -q 'a: resuming the carried run o1/a_run.tgz' call2.log"
read -r a2 _ < <(summary o2/a.json)
check "... from step $a1 on, to step $a2" test "$a2" -gt "$a1"
check "... its log holds every step once, and its clock does not go back at the resume" $PY -c "
import csv
r = list(csv.DictReader(open('w2/a.run/log.csv')))
assert [int(x['step']) for x in r] == list(range(1, $a2 + 1)), 'steps'
assert float(r[$a1]['wall_s']) > float(r[$a1 - 1]['wall_s']), r[$a1 - 1:$a1 + 1]"

# 3. The warm machine again, to a nearer end: it finishes and exits 0.
end=$((a2 + 3))
rc=0; long WORK=w2 OUT=o3 DEADLINE=33 RUNS="a:$end $A" >call3.log 2>&1 || rc=$?
cp call3.log last.out
check "call 3 resumes this machine's run and finishes it at step $end (exit $rc)" \
    sh -c "test $rc -eq 0 && grep -q 'a: resuming w2/a.run (this machine' call3.log && grep -q \"a: rc 0; $end of $end steps\" call3.log"

# Refusals, before anything is trained.
refuse "a step count that is not a number" 1 "not a count" long WORK=w4 OUT=o4 STEPS=abc RUNS="a $A"
refuse "no STEPS at all" 1 "STEPS=" long WORK=w4 OUT=o4 RUNS="a $A"
refuse "CARRY_RUN naming a missing archive" 1 "no such file" long WORK=w4 OUT=o4 STEPS=10 CARRY_RUN=nowhere/a_run.tgz RUNS="a $A"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
