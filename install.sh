#!/usr/bin/env bash
# Installs MAML Explorer into the current Python environment, plus the system libraries Qt
# needs on Debian/Ubuntu. `bash install.sh --test` also installs the test tools and the optional extras
# the tests cover (ONNX export; gymnasium and MuJoCo for the meta-RL environments).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

# Qt's runtime libraries (X11/xcb for a window, EGL/GL, fonts, keyboard maps, D-Bus).
QT_DEBS="libegl1 libgl1 libglx0 libfontconfig1 libfreetype6 libdbus-1-3 libglib2.0-0 libxkbcommon0
libxkbcommon-x11-0 libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
libxcb-render-util0 libxcb-shape0 libxcb-sync1 libxcb-xfixes0 libxcb-xkb1 fonts-dejavu-core"
if command -v dpkg >/dev/null && command -v apt-get >/dev/null; then
  missing=$(for p in $QT_DEBS; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "install.sh: installing Qt runtime libraries: $(echo $missing)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi

# torch first, pinned: a torch >= 2.3 already present (e.g. a CUDA build) is kept.
if ! $PY -c "import torch, sys; v = tuple(int(x) for x in torch.__version__.split('+')[0].split('.')[:2]); sys.exit(v < (2, 3))" 2>/dev/null; then
  $PY -m pip install --quiet "torch==2.13.0"
fi
if [ "${1:-}" = "--test" ]; then
  $PY -m pip install --quiet -e ".[test,onnx,rl]"
else
  $PY -m pip install --quiet -e .
fi
command -v pyenv >/dev/null && pyenv rehash || true
echo "install.sh: done ($($PY -c 'import torch, PySide6; print("torch", torch.__version__, "PySide6", PySide6.__version__)'))"
