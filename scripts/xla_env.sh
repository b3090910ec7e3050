#!/usr/bin/env bash
# Build (once) and reuse the virtual environment that runs the XLA and vision tiers: torch==2.9.0,
# torch-xla==2.9.0, torchvision==0.24.0 (the release built against torch 2.9; PyPI's torchvision
# does not import beside the CPU-only torch of the main venv) and this project installed editable
# with its dev and vision extras.
#
# The venv lives outside the repository, in ${DTRAIN_XLA_VENV:-$HOME/.cache/declarative_train/xla-venv},
# because it is large (several GB: PyPI's torch 2.9.0 wheel pulls the CUDA runtime libraries)
# and is shared by every checkout on the machine. It is reused while healthy: a stamp file records
# the pinned versions and `import torch_xla` must work. Anything else rebuilds it from scratch.
#
# Usage: scripts/xla_env.sh            -> prints the venv path on the last line of stdout
#        scripts/xla_env.sh --rebuild  -> rebuilds unconditionally
# Environment: DTRAIN_XLA_VENV (venv path), DTRAIN_XLA_PYTHON (interpreter, default python3.11).
set -euo pipefail

TORCH_VERSION="2.9.0"
TORCH_XLA_VERSION="2.9.0"
TORCHVISION_VERSION="0.24.0"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DTRAIN_XLA_VENV:-$HOME/.cache/declarative_train/xla-venv}"
PYTHON="${DTRAIN_XLA_PYTHON:-python3.11}"
STAMP="$VENV/.dtrain-xla-stamp"
PROJECT_STAMP="$VENV/.dtrain-xla-project"
CONSTRAINTS="$VENV/.dtrain-xla-constraints.txt"
WANT_STAMP="torch==$TORCH_VERSION torch-xla==$TORCH_XLA_VERSION python=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

log() { echo "[xla_env] $*" >&2; }

healthy() {
    [[ -x "$VENV/bin/python" && -f "$STAMP" ]] || return 1
    [[ "$(cat "$STAMP")" == "$WANT_STAMP" ]] || return 1
    # PJRT_DEVICE=CPU keeps the import from probing for TPUs; nothing here creates a device.
    PJRT_DEVICE=CPU "$VENV/bin/python" - "$TORCH_VERSION" "$TORCH_XLA_VERSION" <<'PY' >/dev/null 2>&1
import sys
import torch
import torch_xla
assert torch.__version__.split("+")[0] == sys.argv[1], torch.__version__
assert torch_xla.__version__.split("+")[0] == sys.argv[2], torch_xla.__version__
PY
}

# The project stamp: which checkout is installed editable, and with which pyproject.toml. CI runs
# from a fresh clone elsewhere, so the editable install must follow the checkout that calls us.
project_stamp() {
    echo "$REPO $(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1) torchvision==$TORCHVISION_VERSION"
}

install_project() {
    log "installing $REPO[dev,vision] (editable) into $VENV"
    # A venv built before torchvision was pinned gets the pin here, without a rebuild.
    grep -qx "torchvision==$TORCHVISION_VERSION" "$CONSTRAINTS" 2>/dev/null \
        || echo "torchvision==$TORCHVISION_VERSION" >>"$CONSTRAINTS"
    "$VENV/bin/pip" install --quiet -c "$CONSTRAINTS" -e "$REPO[dev,vision]" \
        "torchvision==$TORCHVISION_VERSION" >&2
    project_stamp >"$PROJECT_STAMP"
}

build() {
    log "building $VENV (torch==$TORCH_VERSION, torch-xla==$TORCH_XLA_VERSION); this takes minutes"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV"
    # Keep torch pinned through every later install (the project itself asks only torch>=2.4).
    printf 'torch==%s\ntorch-xla==%s\ntorchvision==%s\n' "$TORCH_VERSION" "$TORCH_XLA_VERSION" \
        "$TORCHVISION_VERSION" >"$CONSTRAINTS"
    "$VENV/bin/pip" install --quiet --upgrade pip setuptools wheel >&2
    "$VENV/bin/pip" install --quiet -c "$CONSTRAINTS" \
        "torch==$TORCH_VERSION" "torch-xla==$TORCH_XLA_VERSION" >&2
    install_project
    # The stamp is written last: an interrupted build has none and is rebuilt next time.
    echo "$WANT_STAMP" >"$STAMP"
    healthy || { log "the new venv fails its health check"; exit 1; }
    log "built $VENV ($(du -sh "$VENV" | cut -f1))"
}

mkdir -p "$(dirname "$VENV")"
# One build at a time per venv: a second caller waits for the first and then reuses its result.
exec 9>"$VENV.lock"
flock 9

if [[ "${1:-}" == "--rebuild" ]] || ! healthy; then
    build
elif [[ ! -f "$PROJECT_STAMP" || "$(cat "$PROJECT_STAMP")" != "$(project_stamp)" ]]; then
    install_project
fi
echo "$VENV"
