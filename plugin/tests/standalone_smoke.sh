#!/usr/bin/env bash
# The Standalone apps start under a private Xvfb display and keep running (3 s each, then the
# test ends them): a crash, an assertion or an early exit fails. (No audio device exists on a
# headless machine; the apps must cope with that too.)
# Usage: standalone_smoke.sh APP...
set -uo pipefail
status=0
for app in "$@"; do
  log=$(mktemp)
  xvfb-run -a -s "-screen 0 1280x1024x24" timeout --signal=TERM 3 "$app" > "$log" 2>&1
  rc=$?
  if [ "$rc" -ne 124 ]; then
    echo "FAIL: $app exited with status $rc within 3 s:"; cat "$log"; status=1
  elif grep -i -E "assert|segmentation|terminate called" "$log"; then
    echo "FAIL: $app printed an error"; status=1
  else
    echo "ok: $(basename "$app") ran for 3 s"
  fi
  rm -f "$log"
done
exit $status
