#!/usr/bin/env bash
# scripts/make_digits.sh on the CPU, one step of each recipe on tiny clips: each preset's file
# comes out with the shape, labels, guidance, description and storage its recipe promises; a
# second call resumes the run instead of starting again; and the refusals. A recipe broken here
# would be found only after its GPU run (up to 34 minutes) otherwise.
#   tests/make_digits_test.sh path/to/mambawave REPO_ROOT
set -euo pipefail
MW=$(realpath "$1")
ROOT=$(realpath "$2")
source "$(dirname "${BASH_SOURCE[0]}")/test_lib.sh"   # $PY, a scratch folder, check, refuse
MAKE=$ROOT/scripts/make_digits.sh

tiny_fsdd_clips clips 10   # FSDD-named clips, 10 digits (test_lib.sh)
mk() { env DEVICE=cpu MW="$MW" STEPS=1 OUT="$PWD/$1.safetensors" WORK="$PWD/w_$1" bash "$MAKE" "$1" clips; }

# What a made file holds, against its recipe: python over `info --json` and the safetensors header.
# expect FILE D_MODEL N_LAYERS LABELLED GUIDANCE DTYPE STEPS SELF_FEED (STEPS: the run's length)
expect() {
    "$MW" info --json "$1" >info.json
    $PY - "$@" <<'PYEOF'
import json, struct, sys
path, d_model, n_layers, labelled, guidance, dtype, steps, self_feed = sys.argv[1:]
j = json.load(open('info.json'))
assert j['pool'] == [4, 4], j['pool']
assert (j['d_model'], j['n_layers'], j['d_state']) == (int(d_model), int(n_layers), 16), (j['d_model'], j['n_layers'], j['d_state'])
assert bool(j.get('labels')) == (labelled == 'yes'), j.get('labels')
if labelled == 'yes':
    assert j['labels'] == [str(d) for d in range(10)] and j['label_null'], (j['labels'], j.get('label_null'))
assert (j.get('guidance') or 0) == float(guidance), j.get('guidance')
assert 'Free Spoken Digit Dataset' in j['description'], j['description']
o = j['training']['options']
assert (o['steps'], o['self_feed'], o['lr'], o['batch'], o['segment']) == (int(steps), float(self_feed), 0.002, 32, 4000), o
with open(path, 'rb') as f:
    n = struct.unpack('<Q', f.read(8))[0]
    header = json.loads(f.read(n))
found = {v['dtype'] for k, v in header.items() if k != '__metadata__'}
assert found == {dtype}, found
PYEOF
}

rc=0; mk digits >digits.log 2>&1 || rc=$?
cp digits.log last.out
check "digits: one step runs and writes its file (exit $rc)" sh -c "test $rc -eq 0 && test -f digits.safetensors"
check "... d_model 32, five stacks of one layer, no labels, no guidance, floats" expect digits.safetensors 32 5 no 0 F32 1 0
check "... it says how to score it" grep -q 'score it: COUNT=250 SEED="1 2 3 4" scripts/digits_score.sh' digits.log

rc=0; env DEVICE=cpu MW="$MW" STEPS=2 OUT="$PWD/digits.safetensors" WORK="$PWD/w_digits" bash "$MAKE" digits clips \
    >again.log 2>&1 || rc=$?
cp again.log last.out
check "digits again, to 2 steps: it resumes the run (exit $rc)" sh -c "test $rc -eq 0 && grep -qi 'resum' again.log"
check "... and the file's record is the run of 2 steps" expect digits.safetensors 32 5 no 0 F32 2 0

rc=0; mk labelled >labelled.log 2>&1 || rc=$?
cp labelled.log last.out
check "labelled: one step runs (exit $rc)" sh -c "test $rc -eq 0 && test -f labelled.safetensors"
check "... labels 0..9 and a null label, self-fed, guidance 1.5, floats" expect labelled.safetensors 32 5 yes 1.5 F32 1 0.3

rc=0; mk large >large.log 2>&1 || rc=$?
cp large.log last.out
check "large: one step runs (exit $rc)" sh -c "test $rc -eq 0 && test -f large.safetensors"
check "... d_model 64, two layers a stack, labelled, guidance 1.5, stored as F16" expect large.safetensors 64 10 yes 1.5 F16 1 0.3
check "... trained on the clips and their speed copies" sh -c "'$MW' info large.safetensors | grep -q 'sped up or slowed down'"

refuse "no preset named: refused, the three listed" 1 "which preset|digits|labelled|large" bash "$MAKE"
refuse "an unknown preset: refused" 1 "which preset" bash "$MAKE" nosuch clips
refuse "a missing data folder: refused, named" 1 "nosuchdir|no FSDD training split" \
    env MW="$MW" bash "$MAKE" digits nosuchdir
refuse "a missing binary: refused, named" 1 "no mambawave binary" env MW=/nonexistent bash "$MAKE" digits clips
check "--help teaches the three recipes" sh -c "bash '$MAKE' --help | grep -q 'PRESET     recipe'"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
