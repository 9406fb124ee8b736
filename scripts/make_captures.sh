#!/usr/bin/env bash
# Builds the effect-capture data set under data/captures/ from Debian packages only (see
# /work/shared/data/README.md and docs/DATA.md):
#   1. input material: generated MIDI pieces (guitars, basses, piano, drums, organ, strings,
#      voices, winds) rendered by fluidsynth with FluidR3_GM, plus `mambawave capture-signal`,
#      plus real speech (Free Spoken Digit Dataset) as an out-of-domain test; every input mono,
#      48 kHz, 32-bit float, normalised to a peak between -12 and -1 dBFS;
#   2. targets: each input through the guitarix Tube Screamer (ts9sim) at drive 0, 0.25, 0.5,
#      0.75, 1 x tone 100, 300, 1000 Hz and through the Boss DS-1 at drive x tone 0, 0.5, 1;
#   3. checks: the LV2 port symbols (lv2info), that the fast host scripts/captures/lv2run.py
#      gives lv2apply's output exactly, and the latency lv2apply adds (clicks, cross-correlation);
#   4. data/captures/manifest.json (pairs with effect, controls, split) and a summary table.
#
# usage: scripts/make_captures.sh [--force] [--lv2apply] [--jobs N] [--mambawave PATH]
#   --force      redo everything (otherwise existing, up-to-date outputs are kept)
#   --lv2apply   run the pedals with lv2apply itself rather than lv2run.py: the same samples,
#                but it makes two system calls per sample (7 min instead of 45 s here)
#   --jobs N     parallel jobs (default: the number of CPUs)
#   --mambawave  the CLI binary for capture-signal (default: the newest build*/bin/mambawave)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/scripts/captures
OUT=$ROOT/data/captures
SF2=/usr/share/sounds/sf2/FluidR3_GM.sf2
FSDD=/work/shared/data/fsdd/train
RATE=48000
TS9='http://guitarix.sourceforge.net/plugins/gxts9#ts9sim'
DS1='http://guitarix.sourceforge.net/plugins/gx_bossds1_#_bossds1_'
TS9_FIXED=(-c fslider0_ -16 -c BYPASS 1)  # level -16 dB (the pedal's default), on
TS9_DRIVES=(0 0.25 0.5 0.75 1)               # fslider2_
TS9_TONES=(100 300 1000)                     # fslider1_, Hz (log-spaced over the knob's range)
DS1_FIXED=(-c LEVEL -2 -c BYPASS 1)
DS1_DRIVES=(0 0.5 1)
DS1_TONES=(0 0.5 1)
DI_SECONDS=90        # the capture signal in the training set
RENDER_TIMEOUT=60    # seconds per fluidsynth render
RENDER_MAX_KB=204800 # and at most 200 MB written by one

FORCE=0
USE_LV2APPLY=0
JOBS=$(nproc)
MW=""
while (($#)); do
    case $1 in
        --force) FORCE=1 ;;
        --lv2apply) USE_LV2APPLY=1 ;;
        --jobs) JOBS=$2; shift ;;
        --mambawave) MW=$2; shift ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "make_captures: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "make_captures: error: $*" >&2; exit 1; }
say() { echo "make_captures: $*"; }

# ---- tools ---------------------------------------------------------------------------------
PY=""
for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c "import numpy" 2>/dev/null; then PY=$candidate; break; fi
done
[[ -n $PY ]] || die "needs python3 with numpy (apt install python3-numpy)"
for tool in fluidsynth sox lv2apply lv2info timeout; do
    command -v "$tool" >/dev/null || die "'$tool' not found (scripts/setup.sh installs fluidsynth, sox, lilv-utils)"
done
[[ -f $SF2 ]] || die "$SF2 not found (apt install fluid-soundfont-gm)"
[[ -d $FSDD ]] || die "$FSDD not found (the spoken digits, see /work/shared/data/README.md)"
if [[ -z $MW ]]; then
    MW=$(ls -t "$ROOT"/build*/bin/mambawave 2>/dev/null | head -n1 || true)
fi
[[ -n $MW && -x $MW ]] || die "no mambawave binary (build it: cmake -S . -B build -G Ninja && ninja -C build mambawave, or pass --mambawave PATH)"
"$MW" capture-signal --help >/dev/null 2>&1 || die "$MW has no capture-signal subcommand (rebuild it)"

# Port symbols: the -c names below must exist on the plugins, or lv2apply would ignore them.
check_ports() {
    local uri=$1; shift
    local info
    info=$(lv2info "$uri") || die "lv2info does not know $uri (apt install guitarix-lv2)"
    for sym in "$@"; do
        grep -q "Symbol: *$sym\$" <<<"$info" || die "$uri has no port '$sym'"
    done
}
check_ports "$TS9" fslider0_ fslider1_ fslider2_ BYPASS in out
check_ports "$DS1" DRIVE TONE LEVEL BYPASS in out
say "port symbols checked with lv2info: ts9 fslider0_ (level) fslider1_ (tone) fslider2_ (drive) BYPASS; ds1 DRIVE TONE LEVEL BYPASS"

# ---- helpers -------------------------------------------------------------------------------
# stale OUTPUT INPUT...: true when OUTPUT must be (re)made: --force, missing, or older than an input.
stale() {
    local out=$1; shift
    ((FORCE)) && return 0
    [[ -s $out ]] || return 0
    for dep in "$@"; do [[ $dep -nt $out ]] && return 0; done
    return 1
}

# Runs up to JOBS background jobs (waiting for the oldest when full); `wait_all` waits for
# the rest. Any job that fails ends the script.
PIDS=()
spawn() {
    if ((${#PIDS[@]} >= JOBS)); then
        wait "${PIDS[0]}" || die "a job failed (see above)"
        PIDS=("${PIDS[@]:1}")
    fi
    "$@" &
    PIDS+=($!)
}
wait_all() {
    local failed=0
    for pid in "${PIDS[@]}"; do wait "$pid" || failed=1; done
    PIDS=()
    ((failed == 0)) || die "a job failed (see above)"
}

# normalise IN OUT PEAK_DB [SOX_EFFECT...]: mono (channels mixed), 48 kHz, 32-bit float, the
# extra effects (trims, fades), peak at PEAK_DB, then 0.5 s of silence in front: the guitarix
# plugins cross-fade from dry to wet over their first ~170 ms, which must fall on silence.
normalise() {
    local in=$1 out=$2 peak=$3; shift 3
    sox -V1 "$in" -e floating-point -b 32 "$out.tmp.wav" remix - rate -v $RATE "$@" norm "$peak" pad 0.5 0
    mv "$out.tmp.wav" "$out"
}

# Input levels: every piece gets one of these peaks, in turn, so the pedal sees inputs from
# hot to quiet (its distortion depends on the level).
LEVELS=(-1.5 -3 -4.5 -6 -8 -10 -12)

mkdir -p "$OUT"/midi "$OUT"/inputs "$OUT"/targets "$OUT"/checks
T0=$SECONDS

# ---- 1a. MIDI pieces -> fluidsynth -> inputs ------------------------------------------------
# The MIDI files are regenerated every run, but replaced only when they changed, so that the
# renders (made when a .mid is newer) are kept when nothing changed.
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$PY" "$HERE/make_midi.py" "$TMP/midi" >/dev/null
for f in "$TMP"/midi/*; do
    dest=$OUT/midi/$(basename "$f")
    cmp -s "$f" "$dest" 2>/dev/null || cp "$f" "$dest"
done

# render NAME EXPECTED_SECONDS REVERB LEVEL: fluidsynth into a temporary file, checked, then
# normalised into inputs/NAME.wav (remade when the .mid is newer).
render() {
    local name=$1 expected=$2 reverb=$3 level=$4
    local mid=$OUT/midi/$name.mid raw=$TMP/$name.raw.wav in=$OUT/inputs/$name.wav
    stale "$in" "$mid" || return 0
    local fx=(-R 0 -C 0)  # dry, like a DI signal
    ((reverb)) && fx=(-R 1 -C 1)
    # Bounded in time and in bytes: fluidsynth 2.3.1 has been seen to render forever.
    if ! (ulimit -f $RENDER_MAX_KB; timeout $RENDER_TIMEOUT fluidsynth -ni -q -F "$raw" -O float -T wav \
            -r $RATE -g 0.5 "${fx[@]}" "$SF2" "$mid" >/dev/null 2>&1); then
        die "fluidsynth failed or ran over ${RENDER_TIMEOUT}s / ${RENDER_MAX_KB} KB on $mid"
    fi
    # Length: the MIDI's (its end-of-track comes 1.5 s after the last note-off) plus the
    # voices' release, which fluidsynth renders to the end; cut 1.5 s after end-of-track
    # (a 0.5 s fade-out): every piece ends in a decay, without seconds of near-silence.
    local got keep
    got=$(soxi -D "$raw" 2>/dev/null)
    awk -v g="$got" -v e="$expected" 'BEGIN { exit !(g >= e - 0.05 && g <= e + 30) }' ||
        die "$name: fluidsynth rendered ${got}s, expected ${expected}s (+ up to 30 s of release)"
    keep=$(awk -v g="$got" -v e="$expected" 'BEGIN { k = e + 1.5; if (g < k) k = g; printf "%.3f", k }')
    normalise "$raw" "$in" "$level" trim 0 "$keep" fade h 0 "$keep" 0.5
    rm -f "$raw"
}

i=0
while IFS=$'\t' read -r name split seconds reverb what; do
    spawn render "$name" "$seconds" "$reverb" "${LEVELS[$((i % ${#LEVELS[@]}))]}"
    i=$((i + 1))
done <"$OUT/midi/pieces.tsv"
wait_all
say "rendered $i MIDI pieces ($((SECONDS - T0)) s so far)"

# ---- 1b. the capture signal -----------------------------------------------------------------
# Written to a temporary folder and copied only when it differs, so that a rebuilt binary
# that makes the same signal does not make every target stale.
DI=$OUT/inputs/di_capture.wav
"$MW" capture-signal --out "$TMP/di.wav" --seconds $DI_SECONDS --seed 1 --quiet >/dev/null
if ((FORCE)) || ! cmp -s "$TMP/di.wav" "$DI" || ! cmp -s "$TMP/di.wav.json" "$DI.json"; then
    cp "$TMP/di.wav.json" "$DI.json"
    cp "$TMP/di.wav" "$DI.tmp.wav" && mv "$DI.tmp.wav" "$DI"
fi

# ---- 1c. real recordings: spoken digits, out of domain ---------------------------------------
# Recording 5 of every digit by every speaker (60 clips, ~27 s), 0.1 s apart, at 8 kHz
# upsampled to 48 kHz (so nothing above 4 kHz), normalised to -3 dBFS. (FSDD's own test split,
# recordings 0-4, is not used.)
REAL=$OUT/inputs/real_fsdd_digits.wav
if stale "$REAL"; then
    gap=$TMP/gap.wav
    sox -n -r 8000 -c 1 -b 16 "$gap" trim 0 0.1
    clips=()
    for speaker in george jackson lucas nicolas theo yweweler; do
        for digit in 0 1 2 3 4 5 6 7 8 9; do
            f=$FSDD/${digit}_${speaker}_5.wav
            [[ -f $f ]] || die "$f not found"
            clips+=("$f" "$gap")
        done
    done
    sox -V1 "${clips[@]}" "$TMP/fsdd_8k.wav"
    normalise "$TMP/fsdd_8k.wav" "$REAL" -3
fi
say "inputs ready ($((SECONDS - T0)) s so far)"

# ---- 2. the pedals --------------------------------------------------------------------------
INPUTS=("$OUT"/inputs/*.wav)
# settings: name | uri | controls
SETTINGS=()
# A setting's name gives its knobs (effect_d<drive>_t<tone>): checks.py reads them back.
for d in "${TS9_DRIVES[@]}"; do for t in "${TS9_TONES[@]}"; do
    SETTINGS+=("ts9_d${d}_t${t}|$TS9|-c fslider2_ $d -c fslider1_ $t ${TS9_FIXED[*]}")
done; done
for d in "${DS1_DRIVES[@]}"; do for t in "${DS1_TONES[@]}"; do
    SETTINGS+=("ds1_d${d}_t${t}|$DS1|-c DRIVE $d -c TONE $t ${DS1_FIXED[*]}")
done; done

# pedal SETTING URI CONTROLS...: every stale input of this setting through the plugin.
pedal() {
    local setting=$1 uri=$2; shift 2
    local dir=$OUT/targets/$setting pairs=()
    mkdir -p "$dir"
    for in in "${INPUTS[@]}"; do
        local target=$dir/$(basename "$in")
        if stale "$target" "$in"; then
            if ((USE_LV2APPLY)); then
                lv2apply -i "$in" -o "$target.tmp.wav" "$@" "$uri" >/dev/null && mv "$target.tmp.wav" "$target"
            else
                pairs+=("$in" "$target")
            fi
        fi
    done
    if ((${#pairs[@]})); then "$PY" "$HERE/lv2run.py" "$@" "$uri" "${pairs[@]}"; fi
}
for s in "${SETTINGS[@]}"; do
    IFS='|' read -r setting uri controls <<<"$s"
    read -ra ctl <<<"$controls"
    spawn pedal "$setting" "$uri" "${ctl[@]}"
done
wait_all
say "pedal targets ready ($((SECONDS - T0)) s so far)"

# ---- 3. checks: lv2run.py == lv2apply; latency of lv2apply ----------------------------------
# A 2 s excerpt of the band piece, and a click file (impulses, then a noise burst), through
# lv2apply itself for every setting; checks.py compares and measures.
CHECK=$OUT/checks
if stale "$CHECK/excerpt.wav" "$OUT/inputs/band.wav"; then
    sox -V1 "$OUT/inputs/band.wav" "$CHECK/excerpt.wav.tmp.wav" trim 2 2
    mv "$CHECK/excerpt.wav.tmp.wav" "$CHECK/excerpt.wav"
fi
[[ -s $CHECK/clicks.wav ]] || "$PY" "$HERE/checks.py" make-clicks "$CHECK/clicks.wav"
for s in "${SETTINGS[@]}"; do
    IFS='|' read -r setting uri controls <<<"$s"
    read -ra ctl <<<"$controls"
    for what in excerpt clicks; do
        out=$CHECK/${what}_${setting}_lv2apply.wav
        if stale "$out" "$CHECK/$what.wav"; then
            spawn bash -c 'lv2apply -i "$1" -o "$2.tmp.wav" "${@:4}" "$3" >/dev/null && mv "$2.tmp.wav" "$2"' _ \
                "$CHECK/$what.wav" "$out" "$uri" "${ctl[@]}"
        fi
        if [[ $what == excerpt ]] && stale "$CHECK/${what}_${setting}_lv2run.wav" "$CHECK/$what.wav"; then
            spawn "$PY" "$HERE/lv2run.py" "${ctl[@]}" "$uri" "$CHECK/$what.wav" "$CHECK/${what}_${setting}_lv2run.wav"
        fi
    done
done
wait_all

# ---- 4. manifest and summary ----------------------------------------------------------------
settings_csv=$(for s in "${SETTINGS[@]}"; do printf '%s,' "${s%%|*}"; done)
"$PY" "$HERE/checks.py" finish "$OUT" "${settings_csv%,}"
say "done in $((SECONDS - T0)) s: $OUT/manifest.json"
