#!/usr/bin/env bash
# Headless test of `mambawave live` on a JACK server with the dummy driver (no sound card):
#   1. generator mode: the digits generator (8 kHz) on a 48 kHz server, recorded: it must
#      be resampled (the note says so), make sound, and stay finite; then played by MIDI notes
#      from jack_midiseq (where installed): the recording must go silent and sound again;
#   2. effect mode with --input-file: the recording must equal `mambawave render --path step`
#      of the same file with the same controls, sample for sample (the file starts at the first
#      callback and the recording starts there too);
#   2b. an effect's control moved by a MIDI controller (--cc), where mw_midi_send is built: the
#      DS-1's drive follows CC 11 from 0 to 1, on the status line and in the recorded level; and a
#      generator's temperature, played by a note, follows CC 1 from 2 to 0.05: noise, then not;
#   3. hot reload: replacing the model file while live runs crossfades to the new model;
#   4. clear errors: an unknown device, a rate the server does not run at, no JACK server.
# The callback's time per buffer against its deadline is reported, not judged: the dummy
# driver misses deadlines on a loaded machine.
#
#   tests/live_test.sh MAMBAWAVE_BINARY SOURCE_DIR [MW_MIDI_SEND_BINARY]
# Exit 77 (ctest: skipped) when jackd is not installed.
set -euo pipefail

bin=$1
root=$2
midi_send=${3:-}
if ! command -v jackd > /dev/null; then
  echo "live_test.sh: SKIPPED: jackd is not installed (Debian: apt install jackd2), so there is no"
  echo "headless audio server to run 'mambawave live' against"
  exit 77
fi
for tool in sox python3; do
  command -v "$tool" > /dev/null || { echo "live_test.sh: SKIPPED: $tool is not installed"; exit 77; }
done

work=$(mktemp -d)
jack_pid=""
seq_pid=""
cleanup() {
  if [[ -n $seq_pid ]]; then
    kill "$seq_pid" 2> /dev/null || true
    wait "$seq_pid" 2> /dev/null || true
  fi
  if [[ -n $jack_pid ]]; then
    kill "$jack_pid" 2> /dev/null || true
    wait "$jack_pid" 2> /dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "live_test.sh: FAIL: $*"
  for f in "$work"/*.log; do [[ -f $f ]] && { echo "--- $f"; tail -n 30 "$f"; }; done
  exit 1
}

# Our own server name, so parallel runs (and a user's real server) do not clash.
export JACK_DEFAULT_SERVER=mw_test_$$
export JACK_NO_AUDIO_RESERVATION=1
jackd --no-realtime -d dummy -r 48000 -p 128 > "$work/jackd.log" 2>&1 &
jack_pid=$!
for _ in $(seq 100); do
  "$bin" devices --api jack --json 2> /dev/null | grep -q '"system"' && break
  kill -0 "$jack_pid" 2> /dev/null || fail "jackd did not start: $(tail -n 5 "$work/jackd.log")"
  sleep 0.1
done
"$bin" devices --api jack --json 2> /dev/null | grep -q '"system"' || fail "the JACK server has no 'system' device"
echo "live_test.sh: jackd (dummy driver, 48000 Hz, 128 frames) runs as server '$JACK_DEFAULT_SERVER'"
"$bin" devices --api jack > "$work/devices.log" 2>&1 || fail "devices --api jack failed"
grep -q "system" "$work/devices.log" || fail "devices does not list 'system'"

# A float WAV reader for the checks (the standard library's wave module takes only PCM).
cat > "$work/wav.py" << 'EOF'
import struct, sys, math
from array import array
def read_wav(path):
    """Per-channel arrays of floats, and the rate. 32-bit float or 16-bit PCM WAV."""
    data = open(path, 'rb').read()
    assert data[:4] == b'RIFF' and data[8:12] == b'WAVE', path
    pos, fmt, channels, bits, rate = 12, None, None, None, None
    while pos + 8 <= len(data):
        tag, size = data[pos:pos + 4], struct.unpack('<I', data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if tag == b'fmt ':
            fmt, channels, rate = struct.unpack('<HHI', body[:8])
            bits = struct.unpack('<H', body[14:16])[0]
            if fmt == 0xFFFE: fmt = struct.unpack('<H', body[24:26])[0]
        elif tag == b'data':
            if fmt == 3 and bits == 32: x = array('f'); x.frombytes(body)
            elif fmt == 1 and bits == 16: x = array('h'); x.frombytes(body)
            else: sys.exit('unsupported WAV format %s/%s in %s' % (fmt, bits, path))
            if sys.byteorder != 'little': x.byteswap()
            if fmt == 1: x = array('f', (v / 32768.0 for v in x))
            return [x[c::channels] for c in range(channels)], rate
        pos += 8 + size + (size & 1)
    sys.exit('no data chunk in ' + path)
def peak(chs): return max(max(abs(v) for v in ch) for ch in chs)
def finite(chs): return all(math.isfinite(v) for ch in chs for v in ch)
EOF

# --- 1. generator mode ----------------------------------------------------------------------
"$bin" live -m "$root/presets/digits.safetensors" --api jack --seconds 3 \
       --record "$work/gen.wav" > "$work/gen.log" 2>&1 || fail "live (generator) exited with $?"
grep -q "resampling 8000 Hz model to 48000 Hz device, latency [0-9]* samples" "$work/gen.log" ||
  fail "live (generator) did not say it resamples"
[[ $(grep -c " load " "$work/gen.log") -ge 2 ]] || fail "live (generator) printed fewer than 2 status lines"
python3 - "$work/gen.wav" "$work/wav.py" << 'EOF' || fail "the generator's recording is wrong"
import sys; exec(open(sys.argv[2]).read())
x, rate = read_wav(sys.argv[1])
n = len(x[0])
print('live_test.sh: generator: recorded %d frames (%.2f s) at %d Hz, %d channels, peak %.3f'
      % (n, n / rate, rate, len(x), peak(x)))
assert rate == 48000 and len(x) == 2
assert n >= 48000, 'less than 1 s recorded'
assert finite(x), 'non-finite samples'
assert peak(x) > 1e-3, 'silence'
assert x[0] == x[1], 'the voice is mono, copied to both channels'
EOF
echo "live_test.sh: generator: $(grep '^callback:' "$work/gen.log")"

# --- 1b. generator played by MIDI: jack_midiseq loops note 60, on for 0.25 s of every 0.5 s ---
if command -v jack_midiseq > /dev/null; then
  jack_midiseq mw_seq 24000 0 60 12000 > "$work/seq.log" 2>&1 &
  seq_pid=$!
  for _ in $(seq 50); do
    "$bin" devices --api jack 2> /dev/null | grep -q "mw_seq:out" && break
    sleep 0.1
  done
  "$bin" live -m "$root/presets/digits.safetensors" --api jack --midi mw_seq --seconds 2.5 \
         --record "$work/midi.wav" > "$work/midi.log" 2>&1 || fail "live (generator, MIDI) exited with $?"
  kill "$seq_pid" 2> /dev/null || true
  wait "$seq_pid" 2> /dev/null || true
  seq_pid=""
  grep -q "MIDI from 'mw_seq:out'" "$work/midi.log" || fail "live did not open the MIDI port"
  python3 - "$work/midi.wav" "$work/wav.py" << 'EOF' || fail "the MIDI notes did not gate the voice"
import sys; exec(open(sys.argv[2]).read())
x, rate = read_wav(sys.argv[1])
w = rate // 100  # 10 ms windows: exactly silent (voice released) or sounding
states = [any(v != 0.0 for v in x[0][i:i + w]) for i in range(0, len(x[0]) - w, w)]
changes = sum(1 for a, b in zip(states, states[1:]) if a != b)
print('live_test.sh: MIDI: %d windows of 10 ms, %d sounding, %d silent, %d note on/off edges'
      % (len(states), sum(states), len(states) - sum(states), changes))
assert finite(x)
assert sum(states) >= 20 and len(states) - sum(states) >= 20 and changes >= 3
EOF
else
  echo "live_test.sh: MIDI part skipped: jack_midiseq (jackd2's example clients) is not installed"
fi

# --- 1c. a labelled generator (docs/DIGITS.md): the digits preset with ten labels written into
# its config (its weights were not trained with them: this checks the plumbing, not the digits)
# patch_io.py SRC DST JSON: a copy of SRC with the fields of JSON set in its config's io section
cat > "$work/patch_io.py" << 'EOF'
import json, struct, sys
data = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', data[:8])[0]
header = json.loads(data[8:8 + n])
config = json.loads(header['__metadata__']['mambawave'])
config['io'].update(json.loads(sys.argv[3]))
header['__metadata__']['mambawave'] = json.dumps(config)
text = json.dumps(header).encode()
text += b' ' * (-len(text) % 8)
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(text)) + text + data[8 + n:])
EOF
python3 "$work/patch_io.py" "$root/presets/digits.safetensors" "$work/lab.safetensors" \
  '{"labels": ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"], "label_prefix": 8}' ||
  fail "could not label a copy of digits"
# labelled_voice NAME MODEL SAYS ARGS...: live plays MODEL with ARGS for 1.5 s, says SAYS, and
# records a sounding, finite voice
labelled_voice() {
  local name=$1 model=$2 says=$3; shift 3
  "$bin" live -m "$model" --api jack --seconds 1.5 --record "$work/$name.wav" "$@" > "$work/$name.log" 2>&1 ||
    fail "live $* exited with $?"
  grep -q "$says" "$work/$name.log" || fail "live $* did not say '$says'"
  python3 - "$work/$name.wav" "$work/wav.py" << 'EOF' || fail "the recording of live $* is wrong"
import sys; exec(open(sys.argv[2]).read())
x, rate = read_wav(sys.argv[1])
assert len(x[0]) >= rate // 2 and finite(x) and peak(x) > 1e-3
EOF
}
labelled_voice lab "$work/lab.safetensors" "playing label 7" --label 7
"$bin" live -m "$work/lab.safetensors" --api jack --seconds 0.5 > "$work/lab0.log" 2>&1 || fail "live (labelled) exited with $?"
grep -q "playing label 0 (--label chooses another: 0, 1, 2" "$work/lab0.log" ||
  fail "live (labelled, no --label) did not say it plays label 0"
# the same with a null label (as if trained with --label-dropout): guidance runs
python3 "$work/patch_io.py" "$work/lab.safetensors" "$work/labnull.safetensors" '{"label_null": true}' ||
  fail "could not add a null label"
labelled_voice labg "$work/labnull.safetensors" "guidance 3 against the null label" --label 7 --guidance 3
# a model that declares its own weight (io.guidance) is guided at it unless --guidance says otherwise
python3 "$work/patch_io.py" "$work/lab.safetensors" "$work/labown.safetensors" '{"label_null": true, "guidance": 2.5}' ||
  fail "could not declare a guidance weight"
labelled_voice labown "$work/labown.safetensors" "guidance 2.5, the model's own" --label 7
labelled_voice labown0 "$work/labown.safetensors" "playing label 7" --label 7 --guidance 0
! grep -q "guidance" "$work/labown0.log" || fail "live --guidance 0 still guided the voice"
echo "live_test.sh: labels: live --label 7 plays and says so; without --label, it plays label 0; --guidance with a null label; a model's own weight, and --guidance 0"
# the shipped labelled preset says its word and falls silent (train --pad-end); the voice ends
# after 0.5 s of silence and live starts a new one: words with silence between, to the end
"$bin" live -m "$root/presets/digits_labelled.safetensors" --api jack --label 7 --guidance 3 --seconds 5 \
       --record "$work/words.wav" > "$work/words.log" 2>&1 || fail "live (digits_labelled) exited with $?"
python3 - "$work/words.wav" "$work/wav.py" << 'EOF' || fail "live did not start a new word after the last ended"
import sys; exec(open(sys.argv[2]).read())
x, rate = read_wav(sys.argv[1])
n = len(x[0]); w = rate // 10
quiet = [all(abs(v) < 1e-4 for v in x[0][i:i + w]) for i in range(0, n - w, w)]
assert n >= 4 * rate and finite(x), 'recorded %d frames' % n
assert any(quiet[:n // w // 2]), 'no silent 0.1 s in the first half: the word never ended'
assert peak([x[0][n - 2 * rate:]]) > 1e-3, 'silent in the last 2 s: no new word'
print('live_test.sh: words: %d of %d 0.1 s windows silent, peak %.3f in the last 2 s'
      % (sum(quiet), len(quiet), peak([x[0][n - 2 * rate:]])))
EOF

# --- 2. effect mode on a file, against render ------------------------------------------------
sox -R -n -r 48000 -c 2 -b 16 "$work/in.wav" synth 2 sine 220 sine 331 gain -6
"$bin" live -m "$root/presets/ts9.safetensors" --api jack --input-file "$work/in.wav" \
       --control drive=0.7 --control tone=250 --seconds 3 --record "$work/fx.wav" > "$work/fx.log" 2>&1 ||
  fail "live (effect) exited with $?"
"$bin" render -m "$root/presets/ts9.safetensors" --in "$work/in.wav" --out "$work/ref.wav" \
       --control drive=0.7 --control tone=250 --path step > "$work/render.log" 2>&1 || fail "render failed"
python3 - "$work/fx.wav" "$work/ref.wav" "$work/wav.py" << 'EOF' || fail "the live effect does not match render"
import sys; exec(open(sys.argv[3]).read())
live, rate = read_wav(sys.argv[1])
ref, _ = read_wav(sys.argv[2])
assert len(live) == len(ref) == 2
n = min(len(live[0]), len(ref[0]))
assert n >= 24000, 'only %d frames to compare' % n
d = max(abs(a - b) for c in range(2) for a, b in zip(live[c][:n], ref[c][:n]))
print('live_test.sh: effect: live recording vs render --path step over %d frames (%.2f s), 2 channels: '
      'max |diff| = %.3g' % (n, n / rate, d))
assert d <= 1e-6, 'max |diff| %.3g' % d
assert peak([ch[:n] for ch in ref]) > 0.03  # not silence vs silence (ts9 here: about 0.14)
EOF
echo "live_test.sh: effect:    $(grep '^callback:' "$work/fx.log")"

# --- 2b. an effect's control moved by a MIDI controller ------------------------------------------
# mw_midi_send holds CC 11 at 0; once live has printed its first status line (1 s in), the test
# moves it to 127. live runs 4.5 s on a steady sine, so its first second has drive 0 and its last
# drive 1. The DS-1 at drive 1 is about 8 times louder than at drive 0 on this sine (render: RMS
# 0.115 against 0.014).
wait_log() {  # PATTERN FILE: up to 10 s for a line of FILE to match
  for _ in $(seq 200); do
    grep -q -- "$1" "$2" && return 0
    sleep 0.05
  done
}
# cc_run NAME SENDER_ARGS... -- LIVE_ARGS...: mw_midi_send SENDER_ARGS as client mw_cc, and beside it
# `live LIVE_ARGS --midi mw_cc` for 4.5 s, one channel, recorded to NAME.wav (log NAME.log). Once
# live has printed its first status line (1 s in, the controller's first value long applied), the
# sender plays its note if it has one (SIGUSR2) and moves its controller (SIGUSR1).
cc_run() {
  local name=$1 sender=()
  shift
  while [[ $1 != -- ]]; do sender+=("$1"); shift; done
  shift
  "$midi_send" mw_cc "${sender[@]}" > "$work/${name}_send.log" 2>&1 &
  seq_pid=$!
  for _ in $(seq 50); do
    "$bin" devices --api jack 2> /dev/null | grep -q "mw_cc:out" && break
    sleep 0.1
  done
  "$bin" live "$@" --api jack --channels 1 --midi mw_cc --seconds 4.5 --record "$work/$name.wav" \
         > "$work/$name.log" 2>&1 &
  local live_pid=$!
  wait_log " load " "$work/$name.log"
  kill -USR2 "$seq_pid"
  kill -USR1 "$seq_pid"
  wait "$live_pid" || fail "live $* exited with an error"
  kill "$seq_pid" 2> /dev/null || true
  wait "$seq_pid" 2> /dev/null || true
  seq_pid=""
}
# cc_check NAME MAPPING FIRST LAST: live named the mapping, its first status line ends in FIRST
# and its last in LAST
cc_check() {
  grep -q "MIDI from 'mw_cc:out': $2" "$work/$1.log" || fail "live did not say '$2'"
  local status
  status=$(grep " load " "$work/$1.log")
  [[ $(head -n 1 <<< "$status") == *"$3" ]] || fail "the first status line does not end in '$3': $status"
  [[ $(tail -n 1 <<< "$status") == *"$4" ]] || fail "the last status line does not end in '$4': $status"
}
if [[ -n $midi_send && -x $midi_send ]]; then
  sox -R -n -r 48000 -c 1 -b 16 "$work/sine.wav" synth 6 sine 220 gain -20
  cc_run cc 11 0 127 60 -- -m "$root/presets/ds1.safetensors" --input-file "$work/sine.wav" --cc drive=11
  cc_check cc "CC 11 moves drive (0..1)" "drive 0" "drive 1"
  grep -q "nothing is mapped" "$work/cc.log" && fail "live called a mapped controller unmapped: $(cat "$work/cc.log")"
  python3 - "$work/cc.wav" "$work/wav.py" << 'EOF' || fail "the controller did not move the drive"
import sys; exec(open(sys.argv[2]).read())
x, rate = read_wav(sys.argv[1])
def rms(a): return math.sqrt(sum(v * v for v in a) / len(a))
first, last = rms(x[0][rate // 10:rate // 2]), rms(x[0][-rate // 2:])
print('live_test.sh: --cc drive=11: output RMS %.4f in the first 0.5 s (CC 0), %.4f in the last (CC 127): '
      '%.1fx' % (first, last, last / first))
assert finite(x) and first > 1e-3 and last > 3 * first
EOF

  # a controller that maps to nothing is named, once, so that a pedal's own number can be found
  cc_run ccx 12 0 127 60 -- -m "$root/presets/ds1.safetensors" --input-file "$work/sine.wav" --cc drive=11
  [[ $(grep -c "MIDI controller 12 moved: nothing is mapped to it (--cc maps 11 to drive; --cc NAME=12 maps this one)" \
        "$work/ccx.log") -eq 1 ]] || fail "live did not name the unmapped controller once: $(cat "$work/ccx.log")"
  echo "live_test.sh: --cc: $(grep -o 'MIDI controller 12 moved.*' "$work/ccx.log")"

  # A generator's temperature on the mod wheel, in two runs: note 60 played 1 s in, with CC 1 held
  # at 0 (temperature 0.05: nearly the likeliest class each time; from the voice's start, the same
  # steady low tone in every run, crossing zero in 1.7% of the 48 kHz samples), then at 127
  # (temperature 2: classes drawn almost at random, noise crossing zero in about 7.5%). Each voice
  # starts from the same state with the same seed, so where the controller did not reach the
  # sampler the two runs give the same sound. (Measured after a switch in one run instead, the low
  # temperature follows whatever state the noise left: once a loud oscillation crossing zero in 17%.)
  for v in 0 127; do
    cc_run ccg$v 1 $v $v 60 60 -- -m "$root/presets/digits.safetensors" --cc temperature=1
  done
  cc_check ccg0 "CC 1 moves temperature (0.05..2)" "temperature 0.05" "temperature 0.05"
  cc_check ccg127 "CC 1 moves temperature (0.05..2)" "temperature 2" "temperature 2"
  python3 - "$work/ccg0.wav" "$work/ccg127.wav" "$work/wav.py" << 'EOF' || fail "the controller did not move the temperature"
import sys; exec(open(sys.argv[3]).read())
def voice_zcr(path):  # zero crossings in 0.1 .. 0.6 s after the note (the output is exactly 0 before)
    x, rate = read_wav(path)
    a = x[0]
    onset = next(i for i, v in enumerate(a) if v != 0.0)
    w = a[onset + rate // 10:onset + 6 * rate // 10]
    assert len(w) == rate // 2 and finite(x), path
    m = sum(w) / len(w)
    return sum(1 for u, v in zip(w, w[1:]) if (u - m) * (v - m) < 0) / (len(w) - 1)
low, high = voice_zcr(sys.argv[1]), voice_zcr(sys.argv[2])
print('live_test.sh: --cc temperature=1: zero crossings in %.3f of the voice\'s samples at CC 0 '
      '(temperature 0.05), %.3f at CC 127 (temperature 2)' % (low, high))
assert low < 0.04 and high > 0.05
EOF
else
  echo "live_test.sh: --cc part skipped: mw_midi_send was not built (no RtMidi)"
fi

# --- 3. hot reload --------------------------------------------------------------------------
cp "$root/presets/ts9.safetensors" "$work/hot.safetensors"
"$bin" init --kind effect --out "$work/other.safetensors" --seed 9 --skip > /dev/null 2>&1 ||
  fail "init failed"
"$bin" live -m "$work/hot.safetensors" --api jack --seconds 3 > "$work/hot.log" 2>&1 &
live_pid=$!
sleep 1.2
cp "$work/other.safetensors" "$work/hot.safetensors.new" && mv "$work/hot.safetensors.new" "$work/hot.safetensors"
wait "$live_pid" || fail "live (hot reload) exited with an error"
grep -q "reloaded .*hot.safetensors" "$work/hot.log" || fail "the changed model file was not reloaded"
echo "live_test.sh: hot reload: $(grep -o 'reloaded .*' "$work/hot.log")"

# --- 4. errors ------------------------------------------------------------------------------
expect_error() {  # expected-exit-code expected-text command...
  local code=$1 text=$2
  shift 2
  set +e
  "$@" > "$work/err.log" 2>&1
  local rc=$?
  set -e
  [[ $rc -eq $code ]] || fail "'$*' exited with $rc, expected $code: $(cat "$work/err.log")"
  grep -q -- "$text" "$work/err.log" || fail "'$*' did not say '$text': $(cat "$work/err.log")"
}
gen=$root/presets/digits.safetensors
expect_error 2 "no output device matches 'nosuchcard'" "$bin" live -m "$gen" --api jack --output nosuchcard --seconds 1
expect_error 2 "system" "$bin" live -m "$gen" --api jack --output nosuchcard --seconds 1
expect_error 2 "it supports 48000 Hz" "$bin" live -m "$gen" --api jack --rate 44100 --seconds 1
expect_error 2 "applies to effect mode" "$bin" live -m "$gen" --api jack --mix 0.5 --seconds 1
expect_error 2 "not an audio API" "$bin" live -m "$gen" --api nosuchapi --seconds 1
expect_error 2 "has no labels" "$bin" live -m "$gen" --api jack --label 3 --seconds 1
expect_error 2 "knows the labels 0, 1, 2" "$bin" live -m "$work/lab.safetensors" --api jack --label x --seconds 1
expect_error 2 "with --midi the keys choose it (C4 plays 0 ... A4 plays 9, every 10 keys)" \
  "$bin" live -m "$work/lab.safetensors" --api jack --label 3 --midi nosuchport --seconds 1
expect_error 2 "applies to generator mode" "$bin" live -m "$root/presets/ts9.safetensors" --api jack --label 3 --seconds 1
expect_error 2 "has no null label" "$bin" live -m "$work/lab.safetensors" --api jack --guidance 3 --seconds 1
expect_error 2 "has no labels to guide" "$bin" live -m "$gen" --api jack --guidance 3 --seconds 1
fx=$root/presets/ds1.safetensors
expect_error 2 "a generator's controllers move temperature (0.05..2), top-p (0.05..1)" \
  "$bin" live -m "$gen" --api jack --midi mw_cc --cc drive=11 --seconds 1
expect_error 2 "guidance=2: .*has no null label" "$bin" live -m "$work/lab.safetensors" --api jack --midi mw_cc \
  --cc guidance=2 --seconds 1
expect_error 2 "cc needs --midi PORT" "$bin" live -m "$fx" --api jack --cc drive=11 --seconds 1
expect_error 2 "in effect mode MIDI controllers move the controls; say which moves which with --cc" \
  "$bin" live -m "$fx" --api jack --midi mw_cc --seconds 1
expect_error 2 "controller 130 is out of range, expected 0..119" \
  "$bin" live -m "$fx" --api jack --midi mw_cc --cc drive=130 --seconds 1
expect_error 2 "unknown control 'gain'; the controllers can move drive (0..1), tone (0..1), mix (0..1)" \
  "$bin" live -m "$fx" --api jack --midi mw_cc --cc gain=11 --seconds 1
expect_error 2 "is malformed, expected NAME=CC" "$bin" live -m "$fx" --api jack --midi mw_cc --cc drive --seconds 1
expect_error 2 "drive is already moved by controller 11" \
  "$bin" live -m "$fx" --api jack --midi mw_cc --cc drive=11 --cc drive=12 --seconds 1
JACK_DEFAULT_SERVER=mw_none_$$ expect_error 1 "no JACK server is running" "$bin" live -m "$gen" --api jack --seconds 1
echo "live_test.sh: errors: unknown device, unsupported rate, wrong-mode option, --label on a model without labels, an unknown label, --label with --midi, --cc without --midi and its bad mappings, unknown API, no JACK server: clear messages"
echo "live_test.sh: PASS"
