#!/usr/bin/env bash
# End-to-end tests of training as a user runs it: `train` on a capture pair (latency found and
# shifted out, the validation ESR falls), `eval` agrees, `--resume` continues bit for bit,
# Ctrl-C leaves a checkpoint, bad captures are refused with a clear message; a generator
# trained on a folder of clips, evaluated in bits per sample.
#
# usage: train_test.sh PATH/TO/mambawave
set -euo pipefail

MW=$(realpath "$1")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$(dirname "${BASH_SOURCE[0]}")/test_lib.sh"   # $PY, a scratch folder, check, refuse
json_field() { $PY -c "import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])[sys.argv[2]])" "$@"; }

# --- a capture: plucked tones and noise bursts through a diode-like clipper, 2.5 ms late ---
cat >mk.py <<'PYEOF'
import struct, sys
import numpy as np
def write_wav(path, x, rate):  # [frames] or [frames][channels] float32, IEEE float WAV
    x = np.asarray(x, dtype='<f4'); x = x.reshape(len(x), -1); ch = x.shape[1]; data = x.tobytes()
    fmt = struct.pack('<HHIIHH', 3, ch, rate, rate * ch * 4, ch * 4, 32)
    with open(path, 'wb') as f:
        f.write(b'RIFF' + struct.pack('<I', 4 + 8 + len(fmt) + 8 + len(data)) + b'WAVE')
        f.write(b'fmt ' + struct.pack('<I', len(fmt)) + fmt + b'data' + struct.pack('<I', len(data)) + data)
rng = np.random.default_rng(1); rate = 48000; n = 6 * rate
x = np.zeros(n); pos = 0
while pos < n:  # decaying plucked tones of random pitch and level, now and then a noise burst
    s = np.arange(min(int(rate * rng.uniform(0.15, 0.6)), n - pos)) / rate
    f = 82.4 * 2 ** (rng.integers(0, 36) / 12)
    tone = sum(np.sin(2 * np.pi * f * k * s) / k for k in (1, 2, 3)) * np.exp(-s * rng.uniform(2, 12))
    if rng.random() < 0.15: tone = rng.standard_normal(len(s)) * np.exp(-s * 20) * 0.5
    x[pos:pos + len(s)] += rng.uniform(0.05, 0.5) * tone; pos += len(s)
x *= 0.5 / np.max(np.abs(x))
y = 0.5 * np.tanh(4 * x + 0.3) - 0.5 * np.tanh(0.3)   # asymmetric soft clipping
late = np.concatenate([np.zeros(120), y])[:n]            # 120 samples of latency
write_wav('di.wav', x, rate)
write_wav('rec.wav', late, rate)
write_wav('di_stereo.wav', np.stack([x, x], 1), rate)
write_wav('silent.wav', np.zeros(n), rate)
write_wav('other.wav', 0.3 * np.random.default_rng(9).standard_normal(n), rate)
PYEOF
$PY mk.py

TRAIN=(train --input di.wav --target rec.wav --d-model 8 --layers 2 --d-state 8 --batch 8
       --segment 1024 --warmup 256 --lr 5e-3 --lr-warmup 10 --val-every 20 --threads 2 --no-plot)

check "train on a capture (latency shifted out)" \
    "$MW" "${TRAIN[@]}" --steps 120 --out fx.safetensors --json
cp last.out train.json
# The onset through a clipper shows a few samples early (it boosts the quiet start of a note):
# the safe side, since a causal model can learn a short delay but not an advance.
check "the note says the target lags by 110..120 samples (true: 120)" \
    grep -Eq "lags the input by 1(1[0-9]|20) samples" train.json
esr=$(json_field train.json best)
check "validation ESR fell below 0.02 (found $esr)" $PY -c "import sys; sys.exit(0 if float('$esr') < 0.02 else 1)"
check "the JSON says where the wall time went (parts >= 0, summing to the run's wall time)" \
    $PY -c "import json; j=json.loads(open('train.json').read().strip().splitlines()[-1]); s=j['seconds']; \
assert set(s)=={'forward_backward','update','validation','other'} and min(s.values())>=0 and s['forward_backward']>0, s; \
assert abs(sum(s.values())-j['wall_seconds']) < 0.05*j['wall_seconds']+0.05, (s, j['wall_seconds'])"
check "... and, on the CPU, no time waiting for a GPU" \
    $PY -c "import json; j=json.loads(open('train.json').read().strip().splitlines()[-1]); assert j['gpu_wait_seconds']==0, j"
check "log.csv has a header and one row per step" \
    $PY -c "import sys; rows=open('fx.run/log.csv').read().split(); sys.exit(0 if len(rows)==121 else 1)"
check "the model records its training" sh -c "\"$MW\" info fx.safetensors --json | grep -q lag_samples"
check "--lr-final-ratio 0.5: the schedule ends at half of --lr" \
    "$MW" "${TRAIN[@]}" --steps 30 --lr-final-ratio 0.5 --out half.safetensors
check "... its log's lr falls towards 2.5e-3 (the default run's towards 2.5e-4), by the cosine" $PY -c "
import csv, math
def want(step, steps, ratio, lr=5e-3, warm=10):  # row 'step' is the update of index step - 1
    return lr * (ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * (step - 1 - warm) / (steps - warm))))
for f, steps, ratio in (('half.run/log.csv', 30, 0.5), ('fx.run/log.csv', 120, 0.05)):
    rows = list(csv.DictReader(open(f)))
    for r in rows[10:]:
        assert abs(float(r['lr']) - want(int(r['step']), steps, ratio)) < 1e-6 * 5e-3, (f, r['step'], r['lr'])
    print(f, 'last lr', rows[-1]['lr'])"
check "... and info shows where it ended" sh -c "\"$MW\" info half.safetensors | grep -q 'lr 0.005 (cosine to 0.0025)'"
refuse "--lr-final-ratio 2" 2 "--lr-final-ratio" "$MW" "${TRAIN[@]}" --steps 1 --lr-final-ratio 2 --out no.safetensors
check "eval on the capture" "$MW" eval -m fx.safetensors --input di.wav --target rec.wav --json
cp last.out eval.json
eval_esr=$(json_field eval.json esr)
check "eval ESR over the whole capture is low too ($eval_esr)" \
    $PY -c "import sys; sys.exit(0 if float('$eval_esr') < 0.02 else 1)"
check "eval reports the pre-emphasised ESR and the sample count" \
    $PY -c "import json; j=json.loads(open('eval.json').read().splitlines()[-1]); assert j['esr_preemph']>0 and j['samples']>200000"

# --resume continues exactly: 20 steps in one go equal 10 + 10 after a resume.
check "train 20 steps in one run" "$MW" "${TRAIN[@]}" --steps 20 --checkpoint-every 10 --out a.safetensors --json
cp last.out a.json
check "train 10 steps" "$MW" "${TRAIN[@]}" --steps 10 --out b.safetensors --json
cp last.out b10.json
refuse "train --steps 0" 2 "--steps|expected a number > 0, found '0'" "$MW" "${TRAIN[@]}" --steps 0 --out fails0.safetensors
check "resume to 20 steps" "$MW" "${TRAIN[@]}" --steps 20 --out b.safetensors --resume --json
cp last.out b20.json
check "resumed weights equal the uninterrupted run's, bit for bit" \
    cmp a.run/checkpoint/model.safetensors b.run/checkpoint/model.safetensors
check "the resumed run counts the whole run's samples and time, not only its own" $PY -c "
import json
a, b10, b20 = (json.loads(open(f).read().splitlines()[-1]) for f in ('a.json', 'b10.json', 'b20.json'))
assert a['samples_seen'] == b20['samples_seen'] == 2 * b10['samples_seen'] > 0, (a, b10, b20)
assert b20['wall_seconds'] > b10['wall_seconds'], (b10, b20)"
# A damaged file of the run directory is refused on --resume, by name, and nothing is lost.
cp b.run/best.json best.json.bak
printf '{"metric": ' >b.run/best.json
refuse "a damaged best.json is refused on --resume, naming it" 1 "best.json|damaged|without --resume" \
    "$MW" "${TRAIN[@]}" --steps 25 --out b.safetensors --resume
cp best.json.bak b.run/best.json
check "the run directory's checkpoint is untouched by the refusal" \
    cmp a.run/checkpoint/model.safetensors b.run/checkpoint/model.safetensors
# The same with the multi-resolution STFT term in the loss, which the checkpoint keeps.
check "train 20 steps with --stft-weight" "$MW" "${TRAIN[@]}" --steps 20 --stft-weight 0.3 --out s1.safetensors
check "train 10 steps with --stft-weight, then resume to 20" \
    sh -c "\"$MW\" ${TRAIN[*]} --steps 10 --stft-weight 0.3 --out s2.safetensors && \"$MW\" ${TRAIN[*]} --steps 20 --stft-weight 0.3 --out s2.safetensors --resume"
check "with the STFT term too, the resumed run equals the uninterrupted one" \
    cmp s1.run/checkpoint/model.safetensors s2.run/checkpoint/model.safetensors
"$MW" info s1.safetensors --json >s1.json 2>/dev/null
check "the training record keeps the STFT weight" \
    $PY -c "import json; assert json.load(open('s1.json'))['training']['options']['stft_weight'] == 0.3"
check "the training record's options are the checkpoint's, plus where the run ran" \
    $PY -c "import json, struct; o=json.load(open('s1.json'))['training']['options']; d=open('s1.run/checkpoint/trainer.safetensors','rb').read(); \
c=json.loads(json.loads(d[8:8+struct.unpack('<Q',d[:8])[0]])['__metadata__']['mambawave_trainer'])['options']; \
assert all(o[k]==v for k,v in c.items()) and o['device']=='cpu' and o['gpus']==1 and o['beta2']==0.999, (o, c)"
# Fine-tuning keeps the history: the new record nests the --init model's file and record.
check "fine-tune fx.safetensors for 10 steps (--init)" "$MW" "${TRAIN[@]}" --steps 10 --init fx.safetensors --out ft.safetensors
"$MW" info ft.safetensors --json >ft.json 2>/dev/null
check "the fine-tuned model's record names its --init file and keeps that file's own record" \
    $PY -c "import json; t=json.load(open('ft.json'))['training']; i=t['init']; assert i['file']=='fx.safetensors' and i['training']['steps']>0 and t['steps']==10, t"
check "a fresh run's record has no init" \
    $PY -c "import json; assert 'init' not in json.load(open('s1.json'))['training']"
refuse "a second run into the same run dir is refused" 2 "--resume" \
    "$MW" "${TRAIN[@]}" --steps 10 --out b.safetensors
# Ctrl-C (SIGINT) and SIGTERM (kill, timeout, a batch scheduler's time limit): the trainer
# finishes its step, writes a checkpoint and exits 130 / 143; the run resumes from there.
# With --json both print the summary line (interrupted, at which step). SIGINT's run validates
# every 2 steps, so the best model so far is in --out and the last line says so; SIGTERM's comes
# before its first validation, and says no model file was written.
train_args=()  # TRAIN without its --val-every
for ((i = 0; i < ${#TRAIN[@]}; i++)); do
    if [[ ${TRAIN[i]} == --val-every ]]; then i=$((i + 1)); else train_args+=("${TRAIN[i]}"); fi
done
# Waits until run directory $1's log.csv has more than $2 lines: the run is training (up to 60 s
# for the first log lines: 10 s may not be enough under a loaded parallel ctest).
wait_log_rows() {
    for _ in $(seq 600); do [[ -s $1/log.csv ]] && [[ $(wc -l <"$1/log.csv") -gt $2 ]] && return; sleep 0.1; done
}
for sig in INT TERM; do
    run=stop$sig want=$([[ $sig == INT ]] && echo 130 || echo 143) every=$([[ $sig == INT ]] && echo 2 || echo 100000)
    "$MW" "${train_args[@]}" --steps 100000 --val-every $every --json --out $run.safetensors >$run.log 2>&1 &
    pid=$!
    wait_log_rows $run.run 3
    kill -$sig $pid
    rc=0; wait $pid || rc=$?
    # (on failure, the trainer's own output: what it was doing when the signal came)
    check "SIG$sig exits with $want (found $rc)" sh -c "test $rc -eq $want || { cat $run.log; exit 1; }"
    check "SIG$sig left a checkpoint and said how to resume" \
        sh -c "test -f $run.run/checkpoint/trainer.safetensors && grep -q -- --resume $run.log || { cat $run.log; exit 1; }"
    stopped=$(grep -oE "interrupted at step [0-9]+" $run.log | grep -oE "[0-9]+$" || echo 0)
    check "SIG$sig: the --json summary says interrupted at step $stopped" $PY -c "
import json
j = json.loads([l for l in open('$run.log') if l.startswith('{')][-1])
assert j['interrupted'] is True and j['steps_done'] == $stopped and j['steps'] == 100000, j"
    if [[ $sig == INT ]]; then
        check "SIGINT: the last line names the best model so far, which is there" sh -c \
            "grep -qE 'error: interrupted; the best model so far \(step [0-9]+, validation esr [0-9.e-]+\) is in $run.safetensors' $run.log && test -f $run.safetensors"
    else
        check "SIGTERM before any validation: no model file, and the last line says so" sh -c \
            "grep -q 'error: interrupted before the first validation; no model file was written' $run.log && ! test -e $run.safetensors"
    fi
    check "... and --resume continues from its step ($stopped) to the next" \
        "$MW" "${TRAIN[@]}" --steps $((stopped + 2)) --out $run.safetensors --resume
    check "... the resumed run's log goes on from there, its clock too" $PY -c "
import csv
r = list(csv.DictReader(open('$run.run/log.csv')))
assert int(r[-1]['step']) == $stopped + 2, r[-1]
assert float(r[-2]['wall_s']) > float(r[-3]['wall_s']), ('the clock went back at the resume', r[-3:])"
done
# The same stop sent twice at once, as GNU timeout sends it (to the command, then to its process
# group): the second, sooner than a second after the first, must not end the process before its
# checkpoint (before 2026-12-07's twenty-fourth session it did, at random).
# (steps long enough, 16 x 16384 samples, that the second comes while the first's step still runs)
"$MW" train --input di.wav --target rec.wav --d-model 16 --layers 4 --d-state 16 --batch 16 --segment 16384 \
    --warmup 256 --threads 2 --no-plot --steps 100000 --val-every 100000 --out twice.safetensors \
    --run-dir twice.run >twice.log 2>&1 &
pid=$!
wait_log_rows twice.run 2
kill -TERM $pid; sleep 0.02; kill -TERM $pid 2>/dev/null
rc=0; wait $pid || rc=$?
check "SIGTERM twice within a second: exit 143 (found $rc) and a checkpoint" \
    sh -c "test $rc -eq 143 && test -f twice.run/checkpoint/trainer.safetensors || { cat twice.log; exit 1; }"

# Bad captures.
# LTI layers train end to end on the CPU, and the file says which layers they are.
check "an all-LTI model trains for 10 steps (--lti all)" "$MW" "${TRAIN[@]}" --steps 10 --lti all --out lti.safetensors
check "info names its LTI layers" bash -c "'$MW' info lti.safetensors | grep -E 'LTI layers +all'"
check "the LTI model renders the capture, step and scan" bash -c \
  "'$MW' render -m lti.safetensors --in di.wav --out lti_scan.wav && '$MW' render -m lti.safetensors --in di.wav --out lti_step.wav --path step"
refuse "--lti with --init" 2 "--lti makes a fresh model|--init" "$MW" "${TRAIN[@]}" --steps 10 --lti 0 --init fx.safetensors --out x.safetensors
refuse "a misaligned capture with --no-fix-latency" 2 "rec.wav|lags the input by 11|--no-fix-latency" \
    "$MW" "${TRAIN[@]}" --steps 5 --out d.safetensors --no-fix-latency
refuse "a stereo input" 2 "di_stereo.wav|mono|2 channels" \
    "$MW" train --input di_stereo.wav --target rec.wav --out e.safetensors
refuse "a silent target" 2 "silent.wav|silent" \
    "$MW" train --input di.wav --target silent.wav --out e.safetensors
refuse "swapped input and target (the target leads)" 2 "leads the input|swapped" \
    "$MW" train --input rec.wav --target di.wav --out e.safetensors
refuse "an unrelated recording" 2 "other.wav|does not follow" \
    "$MW" train --input di.wav --target other.wav --out e.safetensors
refuse "no data" 2 "--input" "$MW" train --out e.safetensors
refuse "--gpus with --device cpu" 2 "--gpus 2|GPUs|--device cpu" \
    "$MW" train --input di.wav --target rec.wav --out e.safetensors --device cpu --gpus 2
refuse "--tf32 on the CPU" 2 "--tf32|GPU|--device cpu" \
    "$MW" train --input di.wav --target rec.wav --out e.safetensors --device cpu --tf32
refuse "an unknown --device" 2 "--device|gpu" "$MW" train --input di.wav --target rec.wav --out e.safetensors --device gpu
check "no output file was left by the refused runs" test ! -e e.safetensors -a ! -e d.safetensors

# --- a captures manifest with a knob: train on it, score its test split per pair and record ---
cat >mkman.py <<'PYEOF'
import json, os, struct
import numpy as np
rate = 48000
rng = np.random.default_rng(5)
os.makedirs('man/in', exist_ok=True); os.makedirs('man/out', exist_ok=True)
def write_wav(path, x):
    data = np.asarray(x, np.float32).tobytes()
    with open(path, 'wb') as f:
        f.write(b'RIFF' + struct.pack('<I', 36 + len(data)) + b'WAVE')
        f.write(b'fmt ' + struct.pack('<IHHIIHH', 16, 3, 1, rate, rate * 4, 4, 32))
        f.write(b'data' + struct.pack('<I', len(data)) + data)
pairs = []
for k, split in enumerate(['train', 'train', 'val', 'test', 'test']):
    x = 0.3 * rng.standard_normal(rate) * np.repeat(rng.uniform(0.2, 1, 10), rate // 10)
    write_wav(f'man/in/{k}.wav', x)
    for g in (0.0, 1.0):
        write_wav(f'man/out/{k}_g{g:g}.wav', 0.5 * np.tanh((1 + 4 * g) * x))
        pairs.append(dict(input=f'in/{k}.wav', target=f'out/{k}_g{g:g}.wav', effect='clip', split=split,
                          set='real' if k == 4 else 'synthetic', controls={'gain': g}, latency_samples=0))
json.dump(dict(effects=dict(clip=dict(controls=dict(gain=dict(min=0, max=1, default=0.5)))), pairs=pairs),
          open('man/manifest.json', 'w'))
PYEOF
$PY mkman.py
check "train on a manifest with a knob" "$MW" train --manifest man/manifest.json --effect clip --out man.safetensors \
    --d-model 8 --layers 2 --d-state 8 --batch 4 --segment 1024 --warmup 256 --steps 30 --val-every 30 --threads 2 --no-plot
check "eval --manifest scores the 4 test pairs in 2 sets and 2 settings" sh -c \
    "\"$MW\" eval -m man.safetensors --manifest man/manifest.json --effect clip --json --threads 1 > man_eval.json"
check "the manifest scores are the pairs' own: mean and worst agree with per_pair" $PY -c "
import json; j = json.load(open('man_eval.json')); e = [r['esr'] for r in j['per_pair']]
assert j['pairs'] == 4 and len(e) == 4 and set(j['sets']) == {'synthetic', 'real'} and len(j['settings']) == 2
assert abs(j['esr_mean'] - sum(e) / 4) < 1e-12 and j['esr_max'] == max(e) and j['sets']['real']['pairs'] == 2"
check "eval of one test pair with its knob" sh -c \
    "\"$MW\" eval -m man.safetensors --input man/in/3.wav --target man/out/3_g1.wav -c gain=1 --latency 0 --json --threads 1 > one.json"
check "that pair's ESR equals its manifest row" $PY -c "
import json; j = json.load(open('man_eval.json')); one = json.loads(open('one.json').read().splitlines()[-1])
row = [r for r in j['per_pair'] if r['target'] == 'out/3_g1.wav'][0]; assert abs(row['esr'] - one['esr']) < 1e-9 * max(1, one['esr'])"
check "eval --record writes the summary into the model file" sh -c \
    "\"$MW\" eval -m man.safetensors --manifest man/manifest.json --effect clip --record --threads 1 >/dev/null &&
     \"$MW\" info man.safetensors --json | grep -q worst_setting_esr_mean"
refuse "eval --manifest of an effect the manifest lacks" 2 "man/manifest.json|no pairs for effect \"fuzz\"|clip" \
    "$MW" eval -m man.safetensors --manifest man/manifest.json --effect fuzz
refuse "eval --manifest with --control" 2 "--manifest takes each pair" \
    "$MW" eval -m man.safetensors --manifest man/manifest.json --effect clip -c gain=1
refuse "a manifest whose pairs set a knob the model does not have" 2 "out/0_g0.wav|sets 1 controls|fx.safetensors has 0" \
    "$MW" eval -m fx.safetensors --manifest man/manifest.json --effect clip --split train

# --- a generator on a folder of clips named like the Free Spoken Digit Dataset -------------
mkdir clips
for i in $(seq 0 11); do
    f=$((200 + 150 * (i % 3)))   # three pitches, each in both splits
    sox -n -r 8000 -c 1 -b 16 "clips/$((i % 10))_synth_${i}.wav" synth 0.4 sine $f gain -6 2>/dev/null
done
check "train a generator" "$MW" train --data clips --out gen.safetensors --d-model 8 --layers 2 --d-state 8 \
    --batch 4 --segment 512 --steps 200 --lr 1e-2 --val-every 50 --threads 2 --no-plot --json \
    --description "three test tones"
cp last.out gen.json
check "the model carries its --description" sh -c "\"$MW\" info gen.safetensors | grep -q 'description *three test tones'"
bits=$(json_field gen.json best)
check "the generator learnt the tones: validation NLL $bits < 2 bits (8 = knows nothing)" \
    $PY -c "import sys; sys.exit(0 if float('$bits') < 2 else 1)"
check "the split held out recordings 5..9 (Free Spoken Digit rule)" grep -q "index 5..9" gen.json
check "eval a generator" "$MW" eval -m gen.safetensors --data clips/0_synth_0.wav --json
cp last.out geneval.json
check "eval printed bits per sample" grep -q nll_bits_per_sample geneval.json
# the same tones through a pooled generator (docs/POOLED.md): it trains, and its segments are whole periods
check "train a pooled generator" "$MW" train --data clips --out pgen.safetensors --d-model 8 --layers 1 --pool 4,2 \
    --d-state 8 --batch 4 --segment 512 --steps 200 --lr 1e-2 --val-every 50 --threads 2 --no-plot --json
cp last.out pgen.json
pbits=$(json_field pgen.json best)
check "the pooled generator learnt the tones: validation NLL $pbits < 2 bits" \
    $PY -c "import sys; sys.exit(0 if float('$pbits') < 2 else 1)"
check "info shows the pooled levels" sh -c "\"$MW\" info pgen.safetensors | grep -q 'pooled *4, 2'"
refuse "a pooled model's segment is whole periods" 1 "multiple of the pooling period 8" \
    "$MW" train --data clips --out p2.safetensors --d-model 8 --layers 1 --pool 4,2 --segment 500 --steps 1 --no-plot
refuse "--pool with --init" 2 "--pool makes a fresh model" \
    "$MW" train --data clips --out p3.safetensors --init gen.safetensors --pool 4 --steps 1 --no-plot
# a generator told which label to make (--label-prefix, docs/DIGITS.md): labels from the file names
mkdir lclips
for i in $(seq 0 9); do
    sox -n -r 8000 -c 1 -b 16 "lclips/2_synth_${i}.wav" synth 0.4 sine 200 gain -6 2>/dev/null
    sox -n -r 8000 -c 1 -b 16 "lclips/5_synth_${i}.wav" synth 0.4 sine 500 gain -6 2>/dev/null
done
check "train a labelled generator" "$MW" train --data lclips --out lgen.safetensors --label-prefix 32 --d-model 8 \
    --layers 2 --d-state 8 --batch 4 --segment 512 --steps 300 --lr 1e-2 --val-every 100 --threads 2 --no-plot --json
cp last.out lgen.json
lbits=$(json_field lgen.json best)
check "the labelled generator learnt the tones: validation NLL $lbits < 1 bit (the prefixes unscored)" \
    $PY -c "import sys; sys.exit(0 if float('$lbits') < 1 else 1)"
check "info lists the labels" sh -c "\"$MW\" info lgen.safetensors | grep -q 'labels *2, 5 (generate --label NAME; each a prefix of 32'"
check "generate --label 2" "$MW" generate -m lgen.safetensors --label 2 --seconds 0.2 --seed 4 -o l2.wav --device cpu
check "generate --label 5" "$MW" generate -m lgen.safetensors --label 5 --seconds 0.2 --seed 4 -o l5.wav --device cpu
check "the label primes the model: the same seed gives other audio" sh -c "! cmp -s l2.wav l5.wav"
check "generate --label 2 --guidance 3 (3 clips)" "$MW" generate -m lgen.safetensors --label 2 --guidance 3 --seconds 0.2 \
    --seed 4 --count 3 -o lg.wav
check "guidance changes the draws of the same seed" sh -c "! cmp -s l2.wav lg_001.wav"
refuse "generate of a labelled model without --label" 2 "trained with labels|--label NAME|2, 5" \
    "$MW" generate -m lgen.safetensors --seconds 0.1 -o lx.wav
refuse "--guidance without --label" 2 "--guidance 3 needs --label" \
    "$MW" generate -m lgen.safetensors --guidance 3 --seconds 0.1 -o lx.wav
# label dropout: a null label, and guidance against it (2 streams a clip instead of one per label)
check "fine-tune with --label-dropout 0.3" "$MW" train --data lclips --out lnull.safetensors --init lgen.safetensors \
    --label-prefix 32 --label-dropout 0.3 --batch 4 --segment 512 --steps 40 --lr 3e-3 --val-every 40 --threads 2 --no-plot
check "info says the model has a null label" sh -c "\"$MW\" info lnull.safetensors | grep -q 'against a null label'"
check "info --json: label_null" sh -c "\"$MW\" info --json lnull.safetensors | grep -q '\"label_null\": *true'"
check "info sums up both runs, the fine-tune's label dropout named" sh -c "\"$MW\" info lnull.safetensors > lnull_info.txt &&
    grep -q '2 runs of mambawave train from random weights' lnull_info.txt &&
    grep -q '1\. 300 steps, batch 4 x 512, lr 0.01, cpu' lnull_info.txt &&
    grep -q '2\. 40 steps, batch 4 x 512, lr 0.003, label dropout 0.3, cpu.*(this model)' lnull_info.txt"
check "guidance against the null label runs 2 streams a clip" sh -c "\"$MW\" generate -m lnull.safetensors --label 2 \
    --guidance 3 --seconds 0.2 --seed 4 -o ln.wav 2>&1 | grep -q '2 streams a clip, the label.s and the null label.s'"
check "--contrast labels on the same model" "$MW" generate -m lnull.safetensors --label 2 --guidance 3 --contrast labels \
    --seconds 0.2 --seed 4 -o lnl.wav
check "the two contrasts draw differently" sh -c "! cmp -s ln.wav lnl.wav"
refuse "--contrast null on a model without a null label" 2 "--contrast null|has no null label|--label-dropout" \
    "$MW" generate -m lgen.safetensors --label 2 --guidance 3 --contrast null --seconds 0.1 -o lx.wav
refuse "--contrast without --guidance" 2 "--contrast labels|give --guidance" \
    "$MW" generate -m lnull.safetensors --label 2 --contrast labels --seconds 0.1 -o lx.wav
refuse "--label-dropout on a generator without labels" 2 "--label-dropout 0.2|no labels to drop" \
    "$MW" train --data clips --out ld.safetensors --label-dropout 0.2 --steps 1 --no-plot
# self-feed: the model's own draws fed in place of some classes (scheduled sampling)
check "fine-tune with --self-feed 0.3" "$MW" train --data lclips --out lsf.safetensors --init lnull.safetensors \
    --label-prefix 32 --label-dropout 0.3 --self-feed 0.3 --self-feed-ramp 10 --batch 4 --segment 512 --steps 20 \
    --lr 3e-3 --val-every 20 --threads 2 --no-plot
cp last.out lsf.out
check "train's summary line names the self-feed and its ramp" \
    grep -q "label dropout 0.30 (null label 2), self-feed 0.30 (from 0 over 10 steps)" lsf.out
check "info names the fine-tune's self-feed and its ramp" sh -c "\"$MW\" info lsf.safetensors | grep -q '3\. 20 steps, batch 4 x 512, lr 0.003, label dropout 0.3, self-feed 0.3 (from 0 over 10 steps), cpu.*(this model)'"
refuse "--self-feed-ramp without --self-feed" 2 "--self-feed-ramp 50|give --self-feed P" \
    "$MW" train --data clips --out sf.safetensors --self-feed-ramp 50 --steps 1 --no-plot
refuse "--self-feed on an effect" 2 "self-feed is for generators" \
    "$MW" train --input di.wav --target rec.wav --out sf.safetensors --self-feed 0.2 --steps 1 --no-plot
refuse "--self-feed out of range" 2 "--self-feed|1.5" \
    "$MW" train --data clips --out sf.safetensors --self-feed 1.5 --steps 1 --no-plot
# speed perturbation: each training clip again at each speed, resampled; validation as recorded.
# At 0.5 a copy lasts twice as long (a copy made the wrong way round would last half as long):
# 10 training clips of 0.4 s and 32 prefix samples each, 4.04 s, plus their copies, 8.04 s.
check "train with --speed-perturb 0.5" "$MW" train --data lclips --out lsp.safetensors --label-prefix 32 --d-model 8 \
    --layers 1 --d-state 8 --batch 4 --segment 512 --steps 2 --val-every 2 --lr 3e-3 --threads 2 --no-plot \
    --speed-perturb 0.5 --label-dropout 0.15
cp last.out lsp.out
check "the copies are in training, twice as long, and none in validation" \
    grep -q "10 training and 10 validation clips.*(10 resampled copies; the validation clips' 10 left out).*; 12.1 s to train on, 4.0 s to validate on" lsp.out
check "the training record keeps the speeds" sh -c "\"$MW\" info --json lsp.safetensors | tr -d ' \n' | grep -q '\"speed_perturb\":\[0.5\]'"
# The files are read and resampled on --threads threads; the clips are the same, in the same
# order, on one (the training record's data_hash covers every clip's name and samples).
check "train with --speed-perturb 0.5 on one thread" "$MW" train --data lclips --out lsp1.safetensors --label-prefix 32 \
    --d-model 8 --layers 1 --d-state 8 --batch 4 --segment 512 --steps 2 --val-every 2 --lr 3e-3 --threads 1 --no-plot \
    --speed-perturb 0.5 --label-dropout 0.15
"$MW" info --json lsp.safetensors >lsp.json 2>/dev/null
"$MW" info --json lsp1.safetensors >lsp1.json 2>/dev/null
check "... the same data as on two threads" $PY -c "
import json
a, b = (json.load(open(f))['training']['data_hash'] for f in ('lsp.json', 'lsp1.json'))
assert len(a) == 16 and a == b, (a, b)"
check "info's line for the run names the speeds (and a first run's label dropout in full)" \
    sh -c "\"$MW\" info lsp.safetensors | grep -q '1\. 2 steps, batch 4 x 512, lr 0.003, label dropout 0.15, speeds 1, 0.5, cpu'"
# --pad-end: silence after each training clip, speed copies included; validation as recorded
# (20 training clips of 12.1 s in all, each 2000 samples longer: 17.1 s)
check "train with --speed-perturb 0.5 --pad-end 0.25" "$MW" train --data lclips --out lpad.safetensors --label-prefix 32 \
    --d-model 8 --layers 1 --d-state 8 --batch 4 --segment 512 --steps 2 --val-every 2 --threads 2 --no-plot \
    --speed-perturb 0.5 --pad-end 0.25
cp last.out lpad.out
check "every training clip and copy padded, validation not" \
    grep -q "each training clip followed by 2000 samples of silence; 17.1 s to train on, 4.0 s to validate on" lpad.out
check "info's line for the run names the padding" \
    sh -c "\"$MW\" info lpad.safetensors | grep -q 'speeds 1, 0.5, clips padded with 0.25 s of silence, cpu'"
refuse "--resume without the run's --pad-end: other data, refused" 1 "trained on other data|speed copies and padding" \
    "$MW" train --data lclips --out lpad.safetensors --label-prefix 32 --batch 4 --segment 512 --steps 4 --threads 2 \
    --no-plot --speed-perturb 0.5 --resume
check "--resume with it continues" "$MW" train --data lclips --out lpad.safetensors --label-prefix 32 --batch 4 \
    --segment 512 --steps 4 --threads 2 --no-plot --speed-perturb 0.5 --pad-end 0.25 --resume
refuse "--pad-end for an effect" 2 "--pad-end is for generators" \
    "$MW" train --input di.wav --target rec.wav --out lx.safetensors --pad-end 0.5 --steps 1 --no-plot
refuse "--pad-end -1" 2 "--pad-end: Value -1 not in range" \
    "$MW" train --data lclips --out lx.safetensors --pad-end -1 --steps 1 --no-plot
# scripts/set_description.py: a new description line, the weights untouched
check "set_description.py writes a copy" $PY "$HERE/../scripts/set_description.py" lsp.safetensors \
    "two sine tones, relabelled" --out lsp_desc.safetensors
check "info shows the new description" sh -c "\"$MW\" info lsp_desc.safetensors | grep -q 'description *two sine tones, relabelled'"
check "the copy evaluates to the same bits" sh -c "\"$MW\" eval -m lsp.safetensors --data lclips --json | sed 's/\"model\":[^,]*,//' > e1.json &&
    \"$MW\" eval -m lsp_desc.safetensors --data lclips --json | sed 's/\"model\":[^,]*,//' > e2.json && cmp e1.json e2.json"
# the model's own guidance weight (io.guidance): generate --label uses it unless told otherwise
check "set_description.py --guidance 2.5 on a labelled model" $PY "$HERE/../scripts/set_description.py" lnull.safetensors \
    --guidance 2.5 --out lnull_g.safetensors
check "info shows the weight" sh -c "\"$MW\" info lnull_g.safetensors | grep -q 'its weight 2.5 (generate --label uses it'"
check "generate --label without --guidance takes it" sh -c "\"$MW\" generate -m lnull_g.safetensors --label 2 --seconds 0.1 \
    --seed 4 -o lg.wav > lg.log 2>&1 && grep -q 'label guidance 2.5, the model.s own' lg.log"
check "  the same audio as --guidance 2.5" sh -c "\"$MW\" generate -m lnull.safetensors --label 2 --guidance 2.5 --seconds 0.1 \
    --seed 4 -o lg2.wav 2>/dev/null && cmp -s lg.wav lg2.wav"
check "  --guidance 0 turns it off: the model's unguided audio" sh -c "\"$MW\" generate -m lnull_g.safetensors --label 2 \
    --guidance 0 --seconds 0.1 --seed 4 -o lg0.wav 2>/dev/null && \"$MW\" generate -m lnull.safetensors --label 2 \
    --seconds 0.1 --seed 4 -o lg00.wav 2>/dev/null && cmp -s lg0.wav lg00.wav && ! cmp -s lg0.wav lg.wav"
refuse "set_description.py --guidance on a model without labels" 1 "no labels|guidance is for labelled generators" \
    $PY "$HERE/../scripts/set_description.py" gen.safetensors --guidance 2 --out gx.safetensors
# a recording whose own name holds '@' is a recording, not a copy: kept in validation, copied in training
mkdir atclips
for i in $(seq 0 19); do sox -n -r 8000 -c 1 -b 16 "atclips/take@${i}.wav" synth 0.1 sine 300 gain -6 2>/dev/null; done
check "train on files named with '@', with --speed-perturb 0.5" "$MW" train --data atclips --out at.safetensors --d-model 8 \
    --layers 1 --d-state 8 --batch 2 --segment 256 --steps 1 --threads 2 --no-plot --speed-perturb 0.5
cp last.out at.out
check "... every file is in training or validation, and only training's are copied" $PY -c "
import re, sys
m = re.search(r'(\d+) training and (\d+) validation clips.*\((\d+) resampled copies; the validation clips. (\d+) left out\)', open('at.out').read())
sys.exit(0 if m and int(m[1]) + int(m[2]) == 20 and int(m[2]) > 0 and m[3] == m[1] and m[4] == m[2] else 1)"
# scripts/to_f16.py: the tensors stored as F16, half the bytes, the model's bits as before
check "to_f16.py writes an F16 copy" $PY "$HERE/../scripts/to_f16.py" lsp.safetensors --out lsp16.safetensors
check "... half the size or less" bash -c "(( \$(stat -c %s lsp16.safetensors) * 2 <= \$(stat -c %s lsp.safetensors) + 4096 ))"
check "... loads, and evaluates within 1e-3 bits of the F32 file" sh -c "\"$MW\" eval -m lsp.safetensors --data lclips --json > f32.json &&
    \"$MW\" eval -m lsp16.safetensors --data lclips --json > f16.json && $PY -c \"
import json; a = json.load(open('f32.json'))['nll_bits_per_sample']; b = json.load(open('f16.json'))['nll_bits_per_sample']
raise SystemExit(0 if abs(a - b) < 1e-3 and a != b else 1)\""
$PY - <<'PYEOF'
import json, struct
d = open('lsp.safetensors', 'rb').read(); n = struct.unpack('<Q', d[:8])[0]; h = json.loads(d[8:8 + n])
name = next(k for k in h if k != '__metadata__' and h[k]['dtype'] == 'F32')
at = 8 + n + h[name]['data_offsets'][0]
open('huge.safetensors', 'wb').write(d[:at] + struct.pack('<f', 1e6) + d[at + 4:])
open('huge.name', 'w').write(name)
PYEOF
refuse "to_f16.py refuses a value beyond F16's range, naming the tensor" 1 "$(cat huge.name)|beyond F16's 65504" \
    $PY "$HERE/../scripts/to_f16.py" huge.safetensors --out huge16.safetensors
check "... and leaves no file behind" bash -c "[[ ! -e huge16.safetensors && ! -e huge16.safetensors.tmp ]]"
refuse "--speed-perturb 1 (no change)" 2 "--speed-perturb '0.9,1'|'1' is not a speed factor" \
    "$MW" train --data lclips --out lx.safetensors --speed-perturb 0.9,1 --steps 1 --no-plot
refuse "--speed-perturb 3 (out of range)" 2 "'3' is not a speed factor in 0.5..2" \
    "$MW" train --data lclips --out lx.safetensors --speed-perturb 3 --steps 1 --no-plot
refuse "--speed-perturb for an effect" 2 "--speed-perturb is for generators" \
    "$MW" train --input di.wav --target rec.wav --out lx.safetensors --speed-perturb 0.9 --steps 1 --no-plot
mkdir manylabels
for i in $(seq 10 29); do
    for take in a b; do sox -n -r 8000 -c 1 -b 16 "manylabels/L${i}_${take}.wav" synth 0.1 sine $((i * 20)) gain -6 2>/dev/null; done
done
check "train a generator with 20 labels (1 step)" "$MW" train --data manylabels --out many.safetensors --label-prefix 4 \
    --d-model 8 --layers 1 --d-state 4 --batch 2 --segment 256 --steps 1 --threads 2 --no-plot
refuse "--guidance with more streams than a batch holds (210 clips x 20 labels)" 2 "--count 210 with --guidance|20 streams|at most 4096" \
    "$MW" generate -m many.safetensors --label L10 --guidance 1 --count 210 -s 0.01 -o many.wav
refuse "--guidance on CUDA" 2 "--guidance runs on the CPU" \
    "$MW" generate -m lgen.safetensors --label 2 --guidance 3 --device cuda --seconds 0.1 -o lx.wav
refuse "generate --label not among the model's" 2 "--label 7|knows the labels 2, 5" \
    "$MW" generate -m lgen.safetensors --label 7 --seconds 0.1 -o l7.wav
refuse "generate --label on a model without labels" 2 "has no labels" \
    "$MW" generate -m gen.safetensors --label 2 --seconds 0.1 -o l7.wav
# eval hears each file led by its label's prefix (from its name), as training's validation does
mkdir swapped
for f in lclips/2_*.wav; do cp "$f" "swapped/5_$(basename "$f" | cut -d_ -f2-)"; done
for f in lclips/5_*.wav; do cp "$f" "swapped/2_$(basename "$f" | cut -d_ -f2-)"; done
check "eval a labelled generator" sh -c "\"$MW\" eval -m lgen.safetensors --data lclips --json > eval_right.json"
check "eval with the labels swapped" sh -c "\"$MW\" eval -m lgen.safetensors --data swapped --json > eval_swapped.json"
right=$(json_field eval_right.json nll_bits_per_sample)
swapped=$(json_field eval_swapped.json nll_bits_per_sample)
check "eval uses the labels: right labels $right bits < swapped $swapped bits" \
    $PY -c "import sys; sys.exit(0 if float('$right') + 1e-4 < float('$swapped') else 1)"
# eval --classify: the model guesses each file's label (the label whose prefix makes it likeliest)
check "eval --classify" sh -c "\"$MW\" eval -m lgen.safetensors --data lclips --classify --json > cls_right.json"
check "eval --classify of the swapped files" sh -c "\"$MW\" eval -m lgen.safetensors --data swapped --classify --json > cls_swapped.json"
check "--classify: eval's NLL; guesses, confusion and per-file rows agree; the swapped files guessed wrong" $PY -c "
import json, math
r, s, e = (json.load(open(f)) for f in ('cls_right.json', 'cls_swapped.json', 'eval_right.json'))
assert abs(r['nll_bits_per_sample'] - e['nll_bits_per_sample']) < 1e-9, (r['nll_bits_per_sample'], e['nll_bits_per_sample'])
for j in (r, s):
    assert j['labels'] == ['2', '5'] and sum(map(sum, j['confusion'])) == j['files'] == len(j['per_file'])
    assert abs(j['label_accuracy'] - sum(p['guess'] == p['label'] for p in j['per_file']) / j['files']) < 1e-12
    for p in j['per_file']:
        ll = p['log_likelihood_nats']; top = max(ll)
        assert ll[j['labels'].index(p['guess'])] == top
        own = ll[j['labels'].index(p['label'])]
        assert abs(p['posterior'] - math.exp(own - top) / sum(math.exp(v - top) for v in ll)) < 1e-9
print('label accuracy: the files', r['label_accuracy'], ', swapped', s['label_accuracy'])
assert r['label_accuracy'] >= 0.75 and abs(r['label_accuracy'] + s['label_accuracy'] - 1) < 1e-12
"
"$MW" eval -m lgen.safetensors --data lclips --classify > cls.txt 2>&1
grep -q "as a classifier of its own labels.*right" cls.txt && grep -qE "^ +2 +[0-9]+ +[0-9]+$" cls.txt &&
    pass "eval --classify prints the accuracy and the confusion matrix" || fail "eval --classify prints the accuracy and the confusion matrix"
refuse "eval --classify of a generator without labels" 2 "--classify|has no labels" "$MW" eval -m gen.safetensors --data clips --classify
refuse "eval --classify of an effect" 2 "--classify|is an effect" "$MW" eval -m fx.safetensors --input di.wav --target rec.wav --classify
mkdir otherlabel
cp lclips/2_synth_0.wav otherlabel/7_synth_0.wav
refuse "eval of a file whose label the model lacks" 2 "7_synth_0.wav: its label '7'|labels: 2, 5" \
    "$MW" eval -m lgen.safetensors --data otherlabel
refuse "--init of a labelled model without --label-prefix" 2 "was trained with --label-prefix 32|must agree" \
    "$MW" train --data lclips --out l3.safetensors --init lgen.safetensors --steps 1 --no-plot
mkdir nolabel
for i in $(seq 0 19); do cp lclips/2_synth_0.wav "nolabel/tone$i.wav"; done
refuse "--label-prefix on names without a label" 2 "from its file name up to the first '_'" \
    "$MW" train --data nolabel --out l4.safetensors --label-prefix 8 --steps 1 --no-plot
refuse "eval of an effect with --data" 2 "effect|--input" "$MW" eval -m fx.safetensors --data clips
refuse "--stft-weight for a generator" 1 "STFT|effects" "$MW" train --data clips --out g2.safetensors --stft-weight 0.5 --steps 1 --no-plot

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
