#!/usr/bin/env bash
# Run the XLA tier: every test marked `xla`, in the torch-xla venv from scripts/xla_env.sh, with
# XLA on the CPU (PJRT_DEVICE=CPU). Exits with pytest's status; "no tests collected" (5) fails.
# Extra arguments go to pytest.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$("$REPO/scripts/xla_env.sh" | tail -n 1)"

cd "$REPO"
export PJRT_DEVICE="${PJRT_DEVICE:-CPU}"
export DTRAIN_XLA_REQUIRED=1  # a missing torch-xla fails instead of skipping
# torch-xla's C++ logging is noisy on stderr; keep warnings and errors only.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-1}"

set +e
"$VENV/bin/python" -m pytest -m xla -p no:cacheprovider "$@" tests
status=$?
set -e
if [[ $status -eq 5 ]]; then
    echo "run_xla_tests: no xla-marked tests were collected" >&2
    exit 1
fi
exit $status
