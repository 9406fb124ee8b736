# shellcheck shell=bash
# What the CLI's end-to-end scripts (cli_test.sh, train_test.sh) share, sourced after their
# `set -euo pipefail`: $PY, a python3 with numpy; a scratch folder as the working directory,
# removed on exit; the bookkeeping of checks: pass, fail, check, refuse, $passed, $failed; and
# tiny_fsdd_clips, training clips named as FSDD's.

# The first python3 with numpy (a pyenv shim may shadow the system's python3-numpy).
PY=""
for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c "import numpy" 2>/dev/null; then PY=$candidate; break; fi
done
[[ -n $PY ]] || { echo "$(basename "$0"): needs python3 with numpy (apt install python3-numpy)"; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok    $1"; }
fail() {
    failed=$((failed + 1))
    echo "FAIL  $1"
    sed 's/^/      | /' last.out
}

# check NAME CMD...: CMD succeeds.
check() {
    local name=$1; shift
    if "$@" >last.out 2>&1; then pass "$name"; else fail "$name"; fi
}

# refuse NAME EXIT_CODE 'WORDS' CMD...: CMD exits with EXIT_CODE and says every |-separated word
# in WORDS (case-insensitive). Where ERROR_LINE is set (cli_test.sh: "mambawave: error: "), the
# output must also hold exactly one line that starts with it.
refuse() {
    local name=$1 code=$2 words=$3; shift 3
    local rc=0
    "$@" >last.out 2>&1 || rc=$?
    local ok=1
    [[ $rc -eq $code ]] || { ok=0; echo "exit code $rc, expected $code" >>last.out; }
    if [[ -n ${ERROR_LINE:-} ]]; then
        [[ $(grep -c "^$ERROR_LINE" last.out) -eq 1 ]] || ok=0
    fi
    IFS='|' read -ra list <<<"$words"
    for w in "${list[@]}"; do grep -qiF -- "$w" last.out || { ok=0; echo "missing '$w'" >>last.out; }; done
    if [[ $ok -eq 1 ]]; then pass "$name"; else fail "$name"; fi
}

# tiny_fsdd_clips DIR DIGITS: 10 clips of each digit 0..DIGITS-1 in DIR, named as FSDD's
# (digit_speaker_index; indices 5..9 are the validation split): a tone a digit, with noise,
# 0.25 s at 8 kHz.
tiny_fsdd_clips() {
    mkdir -p "$1"
    $PY - "$1" "$2" <<'PYEOF'
import math, random, struct, sys, wave
out, digits = sys.argv[1], int(sys.argv[2])
random.seed(1)
for d in range(digits):
    for i in range(10):
        with wave.open(f'{out}/{d}_tiny_{i}.wav', 'wb') as w:
            w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
            x = [0.4 * math.sin(2 * math.pi * (200 + 100 * d) * t / 8000) + 0.05 * random.uniform(-1, 1) for t in range(2000)]
            w.writeframes(b''.join(struct.pack('<h', int(32767 * v)) for v in x))
PYEOF
}
