# shellcheck shell=bash
# What the CLI's end-to-end scripts (cli_test.sh, train_test.sh) share, sourced after their
# `set -euo pipefail`: $PY, a python3 with numpy; a scratch folder as the working directory,
# removed on exit; and the bookkeeping of checks: pass, fail, check, refuse, $passed, $failed.

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
