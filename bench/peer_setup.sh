#!/usr/bin/env bash
# Idempotent setup of the peer library (neurosym-lib, PyPI `neurosym` 0.0.80) in its own venv.
# The peer declares torch, torchvision and torchaudio unpinned; a bare `torch` requirement
# could pull a CUDA build, so torch is pinned to the local CPU wheel, the peer's other
# requirements are installed explicitly (minus torchvision/torchaudio, which its NEAR code
# never imports), and the peer itself goes in with --no-deps.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.peer/venv"
PY="$VENV/bin/python"
PEER_VERSION="0.0.80"
# Run checks from outside the repo: its own `neurosym` package must not shadow the peer's.
cd "$HERE"

if [ -x "$PY" ] && "$PY" -c "import importlib.metadata as m, sys; \
sys.exit(m.version('neurosym') != '$PEER_VERSION')" 2>/dev/null \
   && "$PY" -c "import neurosym.examples.near" 2>/dev/null; then
  echo "peer venv ready: $VENV"; exit 0
fi

mkdir -p "$HERE/.peer"
[ -x "$PY" ] || python3 -m venv "$VENV"
PIN="$HERE/.peer/constraints.txt"
echo "torch==2.13.0" > "$PIN"
"$PY" -m pip install -q "torch==2.13.0"
# The peer's install_requires, less torchvision/torchaudio; torch stays pinned to the CPU wheel.
"$PY" -m pip install -q -c "$PIN" \
  "frozendict==2.3.8" numpy pytorch-lightning permacache requests "stitch-core==0.1.27" \
  scikit-learn "s-exp-parser==1.4.0" "no_toplevel_code==1.0.0" "ast-scope==0.5.2" "pathos==0.3.2"
"$PY" -m pip install -q --no-deps "neurosym==$PEER_VERSION"
"$PY" -c "import importlib.metadata as m, torch, neurosym.examples.near
assert torch.version.cuda is None, 'a CUDA torch was installed'
print('peer ready: neurosym', m.version('neurosym'), 'torch', torch.__version__)"
