#!/usr/bin/env bash
# GPU smoke check: bf16 GRPO steps and the HF generation path on a tiny random router, one GPU,
# under 8 minutes (about 1-2 once torch is loaded). For a bare GPU machine that has torch and
# transformers but no package registry: the project's code and the few small wheels the steps
# still need are brought along in a bundle made where a registry is reachable.
#
#   scripts/gpu_smoke.sh --bundle DIR   (registry machine) DIR/rl-router: the code the steps import;
#                                       DIR/wheels: TRL and what it, datasets and gymnasium import,
#                                       at the versions of this checkout's .venv, no deps resolved
#                                       (PYV=3.12 / PLATFORM=... for another target python)
#   DIR/rl-router/scripts/gpu_smoke.sh  (GPU machine) installs only the missing wheels, with
#                                       `pip install --no-index --no-deps --target`, into a temp dir
#                                       on PYTHONPATH (nothing of the machine's changes); runs
#                                       the steps of scripts/gpu_smoke.py
#   ... --cpu                           the same steps in float32 on the CPU (no GPU here)
#   ... --dry-run                       syntax, files and the install plan; runs no step
#
# Environment: PYTHON (default python3), WHEELS (default: the bundle's wheels/ next to rl-router/).
# Last line: gpu_smoke=ok, or gpu_smoke=failed:<step> (python | deps | env | hf_generate | grpo_bf16).
set -uo pipefail
shopt -s nocaseglob  # wheel names: "Jinja2-..." or "jinja2-..."

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WHEELS="${WHEELS:-$REPO/../wheels}"
# import name = distribution (wheel file prefix): what the steps import beyond torch and transformers
NEEDED="trl=trl accelerate=accelerate datasets=datasets pyarrow=pyarrow pandas=pandas
dateutil=python_dateutil six=six tzdata=tzdata dill=dill multiprocess=multiprocess xxhash=xxhash
psutil=psutil requests=requests urllib3=urllib3 certifi=certifi charset_normalizer=charset_normalizer
gymnasium=gymnasium cloudpickle=cloudpickle farama_notifications=farama_notifications
fsspec=fsspec jinja2=jinja2 markupsafe=markupsafe"
CODE="rl_router envs rewards tests/grpo_helpers.py scripts/gpu_smoke.sh scripts/gpu_smoke.py pyproject.toml"
STEPS="env hf_generate grpo_bf16"
declare -A LIMIT_S=([env]=60 [hf_generate]=150 [grpo_bf16]=210)

fail() { echo "$2"; echo "gpu_smoke=failed:$1"; exit 1; }

bundle() {  # $1: output dir
  local out="$1" venv="$REPO/.venv/bin/python" specs=()
  mkdir -p "$out/rl-router" "$out/wheels" || fail bundle "cannot write $out"
  (cd "$REPO" && tar --exclude=__pycache__ --exclude=rl_router/data/assets -cf - $CODE) | (cd "$out/rl-router" && tar -xf -) || fail bundle "copy"
  for pair in $NEEDED; do
    specs+=("$("$venv" -c "import importlib.metadata as m, sys; d = sys.argv[1]; print(f'{d}=={m.version(d)}')" "${pair#*=}")")
  done
  local pyv="${PYV:-$("$venv" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}"
  "$venv" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyv" \
    --platform "${PLATFORM:-manylinux_2_28_x86_64}" -d "$out/wheels" "${specs[@]}" || fail bundle "pip download"
  echo "bundle for python $pyv: $(du -sh "$out/wheels" | cut -f1) of wheels, $(du -sh "$out/rl-router" | cut -f1) of code in $out"
  echo "run there: bash $out/rl-router/scripts/gpu_smoke.sh"
}

missing_wheels() {  # the wheel files of the needed modules this python cannot import
  for pair in $NEEDED; do
    "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)" "${pair%%=*}" \
      2>/dev/null && continue
    local found=("$WHEELS/${pair#*=}"-*.whl)
    [[ -e "${found[0]}" ]] || { echo "MISSING:${pair#*=}"; continue; }
    echo "${found[0]}"
  done
}

MODE=run CPU=""
case "${1:-}" in
  --bundle) [[ -n "${2:-}" ]] || fail bundle "usage: $0 --bundle DIR"; bundle "$2"; exit 0 ;;
  --dry-run) MODE=dry ;;
  --cpu) CPU="--cpu" ;;
  "") ;;
  *) fail args "usage: $0 [--cpu | --dry-run | --bundle DIR]" ;;
esac

START=$SECONDS
# --- python: torch and transformers are the machine's ---
"$PYTHON" -c "import torch, transformers; print('python', __import__('sys').version.split()[0], \
'torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())" \
  || fail python "$PYTHON cannot import torch and transformers (set PYTHON=...)"
for path in $CODE; do [[ -e "$REPO/$path" ]] || fail python "missing $REPO/$path (is this a bundle?)"; done

# --- deps: the missing small wheels, from the bundle, into a temp dir ---
mapfile -t PLAN < <(missing_wheels)
if printf '%s\n' "${PLAN[@]}" | grep -q '^MISSING:'; then
  fail deps "not importable and no wheel in $WHEELS: $(printf '%s\n' "${PLAN[@]}" | grep '^MISSING:' | tr '\n' ' ')"
fi
if [[ $MODE == dry ]]; then
  bash -n "${BASH_SOURCE[0]}" || fail dry-run "bash syntax"
  "$PYTHON" -m py_compile "$REPO/scripts/gpu_smoke.py" "$REPO/tests/grpo_helpers.py" || fail dry-run "python syntax"
  echo "would install ${#PLAN[@]} wheels"; ((${#PLAN[@]})) && printf '  %s\n' "${PLAN[@]}"
  echo "would run, with time limits:$(for s in $STEPS; do printf ' %s %ss' "$s" "${LIMIT_S[$s]}"; done)"
  echo "gpu_smoke_dry_run=ok"
  exit 0
fi
WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
# Named site-packages: dill (datasets' fingerprints) pickles modules from any other path by value.
SITE="$WORK/site-packages"
if ((${#PLAN[@]})); then
  echo "installing ${#PLAN[@]} wheels into $SITE"
  "$PYTHON" -m pip install -q --no-index --no-deps --target "$SITE" "${PLAN[@]}" \
    > "$WORK/deps.log" 2>&1 || fail deps "$(tail -5 "$WORK/deps.log")"
fi
export PYTHONPATH="$SITE:$REPO:$REPO/tests${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# --- the steps, each in its own process and time limit ---
for step in $STEPS; do
  if timeout "${LIMIT_S[$step]}" "$PYTHON" "$REPO/scripts/gpu_smoke.py" "$step" $CPU > "$WORK/$step.log" 2>&1; then
    tail -1 "$WORK/$step.log"
  else
    code=$?
    tail -25 "$WORK/$step.log"
    ((code == 124)) && echo "$step: over its ${LIMIT_S[$step]} s limit"
    echo "gpu_smoke=failed:$step"
    exit 1
  fi
done
echo "all steps in $((SECONDS - START)) s"
echo "gpu_smoke=ok"
