#!/usr/bin/env bash
# Are a digits generator's samples recognisable spoken digits? One command, end to end, on the
# CPU: trains the digit classifier if its NPZ is missing (scripts/digit_classifier.py, about
# 10 s), generates clips with MODEL on the CPU, and scores them with scripts/digit_score.py next
# to its calibration rows (real held-out takes = the ceiling; reversed, shuffled and noise
# controls = the floor). What the numbers mean: docs/DIGITS.md.
#
#   scripts/digits_score.sh [MODEL]        MODEL: an 8 kHz generator (default presets/digits.safetensors)
#   scripts/digits_score.sh -h | --help
#
# Environment (all optional):
#   COUNT=100        clips to generate          CLIP_SECONDS=1.5  length of each clip
#   SEED=1           the clips' seeds: SEED's clips draw with generate --seed SEED x 1000 (clip k
#                    of a digit: SEED x 1000 + k - 1), so that no two seeds share a clip;
#                    several seeds ("1 2 3"): COUNT clips for each, all scored as one set, so
#                    that acc1's standard error shrinks (0.028 at 300 clips, 0.016 at 900).
#                    (Until 2026-12-07 SEED went to --seed as it was: seeds 1, 11, 12, 2, 3, 4 then
#                    shared most of their clips, 410 distinct ones in 1800; docs/DIGITS.md.)
#   TEMPERATURE=1  TOP_P=1  sampling settings
#   FSDD=DIR         FSDD training split (default ../shared/data/fsdd/train from the repository root)
#   CLASSIFIER=NPZ   the classifier (default /tmp/mambawave-digits/classifier.npz; trained if missing)
#   KEEP=DIR         keep the generated clips in DIR (default: a temporary directory, removed at exit)
#   JSON=FILE        also write digit_score.py's JSON summary to FILE
#   LABELS=1         a model trained with --label-prefix: COUNT/10 clips asked for each digit
#                    (generate --label D), and the accuracy against the digit asked for
#   LABELS=random    a labelled model asked for no digit in particular: COUNT clips of
#                    generate --label random (a digit drawn from the seed for each), scored against
#                    the digit each drew, as LABELS=1's are against the digit asked for
#   GUIDANCE=W       with LABELS=1: generate's --guidance W (label guidance; 0 = off); default: the
#                    weight the model file declares (`info`'s guidance line), else off (until
#                    2026-12-07, twenty-fifth session, the default was off whatever the file said)
#   CONTRAST=C       with GUIDANCE: generate's --contrast (null, labels; default auto: the null
#                    label where the model has one)
#   ASR=0            with LABELS=1, skip the second opinion: by default the same clips also go to
#                    scripts/digit_asr.py (PocketSphinx, a recogniser that never heard FSDD;
#                    about 10 s for 300 clips), where pocketsphinx is installed
#   ASR_JSON=FILE    its JSON summary
#   SYNTH=1          with LABELS=1: the clips come from `mambawave synth` (the Synth plugin's engine,
#                    each digit's key held CLIP_SECONDS, with its retries of a voice that says
#                    nothing) instead of `generate`; TEMPERATURE, TOP_P and GUIDANCE then default to
#                    the Synth's knobs (synth --help), and the voice's seed is SEED + the key's note
#   BEST_OF=N        with LABELS=1: generate's --best-of N (each clip the candidate the model itself
#                    hears most plainly as its digit; docs/DIGITS.md, "Best of N")
#   THREADS=N        generate's --threads (default 0: every core; the clips are the same for any N)
#   MW=PATH          the mambawave binary (default build/bin/mambawave)
#   PYTHON=PATH      python3 with numpy (default /usr/bin/python3)
# Exit status: 0, or 2 when a calibration fails (digit_score.py's, or digit_asr.py's: then the
# scores mean nothing).
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-$root/presets/digits.safetensors}
fsdd=${FSDD:-$root/../shared/data/fsdd/train}
npz=${CLASSIFIER:-/tmp/mambawave-digits/classifier.npz}
mw=${MW:-$root/build/bin/mambawave}
py=${PYTHON:-/usr/bin/python3}
[[ -x $py ]] || py=python3
count=${COUNT:-100} seconds=${CLIP_SECONDS:-1.5}   # (not SECONDS: bash keeps its own)
[[ -f $model ]] || { echo "digits_score.sh: $model: no such model file" >&2; exit 1; }
[[ -x $mw ]] || { echo "digits_score.sh: $mw: no mambawave binary (build it: scripts/build.sh)" >&2; exit 1; }
[[ -d $fsdd ]] || { echo "digits_score.sh: $fsdd: no FSDD training split (set FSDD=DIR)" >&2; exit 1; }

if [[ ! -f $npz ]]; then
  echo "== training the digit classifier -> $npz"
  "$py" "$root/scripts/digit_classifier.py" --data "$fsdd" --out "$npz" --loso none
fi

if [[ -n ${KEEP:-} ]]; then
  work=$KEEP; mkdir -p "$work"
else
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
fi
asked=()
read -r -a seeds <<< "${SEED:-1}"
[[ ${#seeds[@]} -ge 1 ]] || { echo "digits_score.sh: SEED is empty" >&2; exit 1; }
for seed in "${seeds[@]}"; do
  [[ $seed =~ ^[0-9]+$ ]] || { echo "digits_score.sh: SEED: '$seed' is not a whole number" >&2; exit 1; }
done
for seed in "${seeds[@]}"; do
  tag=; [[ ${#seeds[@]} -gt 1 ]] && tag=s${seed}_  # (one seed: the file names as before)
  if [[ -n ${LABELS:-} && -n ${SYNTH:-} ]]; then  # as the Synth plays each digit's key
    echo "== playing $((count / 10)) presses of each digit's key, held $seconds s, with $(basename "$model") (seed $seed, the Synth's knobs${TEMPERATURE:+, temperature $TEMPERATURE}${TOP_P:+, top-p $TOP_P}${GUIDANCE:+, guidance $GUIDANCE})"
    for d in 0 1 2 3 4 5 6 7 8 9; do
      # (as generate's: from seed * 1000, the voice's seed adding the key's note)
      "$mw" synth -m "$model" --label $d --hold "$seconds" --count $((count / 10)) --seed $((seed * 1000)) \
        ${TEMPERATURE:+--temperature "$TEMPERATURE"} ${TOP_P:+--top-p "$TOP_P"} ${GUIDANCE:+--guidance "$GUIDANCE"} \
        --threads "${THREADS:-0}" -o "$work/label${d}_${tag}.wav" | tail -1
    done
  elif [[ ${LABELS:-} == random ]]; then  # no digit asked for: each clip draws its own (generate --label random)
    echo "== generating $count clips of $seconds s with $(basename "$model"), a digit drawn at random for each (seed $seed, guidance ${GUIDANCE:-as the file declares}${CONTRAST:+ against $CONTRAST}, CPU)"
    "$mw" generate -m "$model" --label random --seconds "$seconds" --count "$count" --seed $((seed * 1000)) \
      --temperature "${TEMPERATURE:-1}" --top-p "${TOP_P:-1}" ${GUIDANCE:+--guidance "$GUIDANCE"} ${CONTRAST:+--contrast "$CONTRAST"} \
      --device cpu --threads "${THREADS:-0}" -o "$work/drawn_${tag}.wav" > "$work/drawn_${tag}.txt"
    cat "$work/drawn_${tag}.txt"
    # each clip named by the digit it drew, as LABELS=1 names them by the digit asked for
    drawn=$(grep '^labels drawn at random:' "$work/drawn_${tag}.txt") ||
      { echo "digits_score.sh: generate --label random listed no labels" >&2; exit 1; }
    IFS=',' read -ra pairs <<< "${drawn#*:}"
    for pair in "${pairs[@]}"; do
      read -r file d <<< "$pair"
      mv "$work/$file" "$work/label${d}_${tag}${file#drawn_${tag}}"
    done
  elif [[ -n ${LABELS:-} ]]; then  # a model trained with --label-prefix: count/10 clips asked for each digit
    echo "== generating $((count / 10)) clips of $seconds s for each --label 0..9 with $(basename "$model") (seed $seed, guidance ${GUIDANCE:-as the file declares}${CONTRAST:+ against $CONTRAST}${BEST_OF:+, each the best of $BEST_OF}, CPU)"
    for d in 0 1 2 3 4 5 6 7 8 9; do
      "$mw" generate -m "$model" --label $d --seconds "$seconds" --count $((count / 10)) --seed $((seed * 1000)) \
        --temperature "${TEMPERATURE:-1}" --top-p "${TOP_P:-1}" ${GUIDANCE:+--guidance "$GUIDANCE"} ${CONTRAST:+--contrast "$CONTRAST"} \
        ${BEST_OF:+--best-of "$BEST_OF"} \
        --device cpu --threads "${THREADS:-0}" -o "$work/label${d}_${tag}.wav"
    done
  else
    echo "== generating $count clips of $seconds s with $(basename "$model") (seed $seed, CPU)"
    "$mw" generate -m "$model" --seconds "$seconds" --count "$count" --seed $((seed * 1000)) \
      --temperature "${TEMPERATURE:-1}" --top-p "${TOP_P:-1}" --device cpu --threads "${THREADS:-0}" -o "$work/clip${tag:+_$tag}.wav"
  fi
done
if [[ -n ${LABELS:-} ]]; then
  clips=("$work"/label*.wav)
  asked=(--asked-from-name)
else
  clips=("$work"/clip*.wav)
fi

echo "== scoring"
status=0
"$py" "$root/scripts/digit_score.py" --classifier "$npz" --data "$fsdd" --name "$(basename "$model")" \
  ${JSON:+--json "$JSON"} "${asked[@]}" "${clips[@]}" || status=$?
if [[ -n ${LABELS:-} && ${ASR:-1} != 0 ]]; then
  echo
  echo "== a second opinion: PocketSphinx, told each clip is one of the ten digit words (scripts/digit_asr.py)"
  rc=0
  "$py" "$root/scripts/digit_asr.py" --data "$fsdd" --name "$(basename "$model")" --asked-from-name \
    ${ASR_JSON:+--json "$ASR_JSON"} "${clips[@]}" || rc=$?
  if [[ $rc == 77 ]]; then echo "(skipped: the recogniser is not installed; scripts/setup.sh installs it)"
  elif [[ $rc != 0 && $status == 0 ]]; then status=$rc; fi
fi
exit $status
