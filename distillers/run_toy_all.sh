#!/usr/bin/env bash
# Every toy student of distillers/BUDGET.md, main methods first, then the ablations; each one is scored with
# `addbench eval --suite $SUITE` (default toy-2k; toy on a CPU) next to the teacher at 1 and 25 steps. A failing
# method is reported and the others go on. Re-run to resume (training and evaluation both skip what is done).
# Usage: distillers/run_toy_all.sh [DEVICE=cuda|cpu] [OUT=runs/toy-distill] [SNAPSHOT=file.tgz]
# JOBS=N runs up to N students at once (toy steps are launch-bound on a GPU, so several processes share one
# well; each then uses OMP_NUM_THREADS=2). SET="k=v k=v" adds the same overrides to every student; PAIRS=N
# collects N teacher ODE pairs instead of the DMD preset's reg_pairs (quick checks).
set -uo pipefail
DEVICE=${1:-cuda}
OUT=${2:-runs/toy-distill}
SNAP=${3:-}
SUITE=${SUITE:-toy-2k}
JOBS=${JOBS:-1}
SETS=(); for kv in ${SET:-}; do SETS+=(--set "$kv"); done
mkdir -p "$OUT"
[ "$JOBS" -gt 1 ] && export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
snapshot() {  # records + training logs only (no samples), for copying results off a machine
  [ -n "$SNAP" ] && (cd "$OUT" && tar czf "$SNAP" $(find eval -name record.json) $(ls train/*/metrics.jsonl 2>/dev/null) $(ls log_*.txt 2>/dev/null)) 2>/dev/null; true; }
ev() { echo "EVAL $* ($SECONDS s)"; addbench eval --suite "$SUITE" --device "$DEVICE" --out "$OUT/eval" --no-progress "$@" || echo "FAILED eval $*"; snapshot; }
student() {  # name distiller [--set k=v ...]: train, then score the checkpoint
  local name=$1 dist=$2; shift 2
  local t0=$SECONDS
  if addbench train "$dist" --base toy --out "$OUT/train/$name" --device "$DEVICE" --set progress=false "${SETS[@]}" "$@"; then
    echo "TRAINED $name in $((SECONDS - t0)) s"
    ev --model "$OUT/train/$name/checkpoint"
  else
    echo "FAILED train $name"; return 1
  fi
}
dmdx() {  # DMDX: ADP (stage 1), then ADM (stage 2) from the ADP checkpoint
  student dmdx-adp dmdx.adp --set ode_pairs="$OUT/odepairs" || return 1
  local adp="$OUT/train/dmdx-adp/checkpoint"
  # ADM at the preset lr (1e-6), and (lr sensitivity, side by side) at 10x it
  student dmdx dmdx.adm --set init="$adp" &
  student dmdx-adm-lr1e-5 dmdx.adm --set init="$adp" --set lr_g=1e-5
  wait
}
run() {  # run LOGNAME CMD...: in the background when JOBS > 1 (at most JOBS at once), log in $OUT/log_LOGNAME.txt
  local log=$1; shift
  if [ "$JOBS" -gt 1 ]; then
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
    "$@" > "$OUT/log_$log.txt" 2>&1 &
  else
    "$@"
  fi
}

run teacher25 ev --model toy --steps 25
run teacher1 ev --model toy --steps 1
# teacher ODE pairs for DMD's regression and DMDX ADP (offline, not counted in the budget)
[ -f "$OUT/odepairs/manifest.json" ] || python - "$OUT/odepairs" "$DEVICE" "${PAIRS:-}" <<'PY'
import sys
from addbench.bases.loading import load_base
from addbench.train.data import load_prompts
from addbench.train.odepairs import collect_ode_pairs
from distillers.dmd.presets import PRESETS
p = PRESETS["toy"]
base = load_base("toy", device=sys.argv[2], dtype="fp32")
n = int(sys.argv[3] or p["reg_pairs"])  # PAIRS=N overrides (quick checks)
collect_ode_pairs(base, load_prompts(p["prompts"], seed=0), sys.argv[1], n_pairs=n,
                  steps=p["reg_pair_steps"], guidance=base.default_sampler.guidance, seed=0, resolution=32,
                  batch_size=256 if sys.argv[2] == "cuda" else 16)
PY
run add student add add
run dmd2 student dmd2 dmd2
run dmd student dmd dmd --set ode_pairs="$OUT/odepairs"
run dmdx dmdx
# ablations: ADD Table 1 sanity checks, DMD2 without its GAN term, ADM without ADP
run add-adv0 student add-adv0 add --set lambda_adv=0          # Table 1d: L_distill alone -> no usable 1-step student
run add-randinit student add-randinit add --set init=random   # Table 1c: random student init collapses
run dmd2-nogan student dmd2-nogan dmd2 --set lambda_gan_g=0 --set lambda_gan_d=0
run dmdx-adm-noadp student dmdx-adm-noadp dmdx.adm --set readout=base
# learning-rate sensitivity of the two adversarial fine-tunes (the toy lr is ours, not the papers')
run add-lr1e-5 student add-lr1e-5 add --set lr_g=1e-5 --set lr_d=2e-5
wait
for f in "$OUT"/log_*.txt; do [ -f "$f" ] && { echo "== $f"; grep -E "TRAINED|FAILED|Error" "$f"; }; done
addbench leaderboard "$OUT"/eval/"$SUITE"/* --format md || true
snapshot
