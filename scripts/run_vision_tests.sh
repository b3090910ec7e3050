#!/usr/bin/env bash
# Run the vision tier: every test marked `vision` (data=image_folder, model=torchvision, model=timm),
# in the torch 2.9 venv from scripts/xla_env.sh, where PyPI's torchvision 0.24 imports (it does not
# beside the CPU-only torch of .venv). Exits with pytest's status; "no tests collected" (5) fails.
# Extra arguments go to pytest.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$("$REPO/scripts/xla_env.sh" | tail -n 1)"

cd "$REPO"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export DTRAIN_VISION_REQUIRED=1  # a torchvision that does not import fails instead of skipping

set +e
"$VENV/bin/python" -m pytest -m vision -p no:cacheprovider "$@" tests
status=$?
set -e
if [[ $status -eq 5 ]]; then
    echo "run_vision_tests: no vision-marked tests were collected" >&2
    exit 1
fi
exit $status
