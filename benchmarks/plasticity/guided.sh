#!/bin/sh
# Guided updates (issue 13) against CBP and plain backprop, small: permuted digits 60 tasks x
# seeds 0-2, bit flipping 1M examples x seeds 0-2. "guided" reads a guidance file per seed that
# `lifelong guide` made from the first examples of that seed's stream (bootstrap.py): 500 digits
# (task 0) or 2,000 bit-flipping examples (before the first flip), 8 scouts, each learning a
# random 25 % / 10 % of them, with the benchmark's architecture, step size and seed.
# Results: results/guided/ (CSV per run, run.json, guidance/*.safetensors); tables: plot.py
# --results benchmarks/plasticity/results/guided. From the repository root.
set -eu
PY=.venv/bin/python
R=benchmarks/plasticity/results/guided
BOOT=$(mktemp -d)
mkdir -p $R/guidance
for s in 0 1 2; do
  $PY benchmarks/plasticity/bootstrap.py permuted_digits --seed $s --count 500 --out $BOOT/pd$s.csv
  .venv/bin/lifelong guide --data $BOOT/pd$s.csv --target-column label --scouts 8 \
    --fraction 0.25 --seed $s --task classification --output $R/guidance/pd$s.safetensors \
    --learner "{\"hidden\": [100, 100], \"lr\": 0.03, \"standardize\": false, \"seed\": $s}"
  $PY benchmarks/plasticity/bootstrap.py bit_flipping --seed $s --count 2000 --out $BOOT/bf$s.csv
  .venv/bin/lifelong guide --data $BOOT/bf$s.csv --target-column label --scouts 8 \
    --fraction 0.1 --seed $s --task regression --output $R/guidance/bf$s.safetensors \
    --learner "{\"hidden\": [5], \"lr\": 0.01, \"standardize\": false, \"seed\": $s}"
done
rm -r "$BOOT"
$PY benchmarks/plasticity/permuted_digits.py --tasks 60 --seeds 0 1 2 \
  --methods upgd guided bp cbp --fresh 0 --jobs 2 \
  --set "guided:guidance_file=$R/guidance/pd{seed}.safetensors" --out $R/permuted_digits
$PY benchmarks/plasticity/bit_flipping.py --examples 1000000 --seeds 0 1 2 \
  --methods bp cbp upgd guided linear --jobs 2 \
  --set "guided:guidance_file=$R/guidance/bf{seed}.safetensors" --out $R/bit_flipping
$PY benchmarks/plasticity/plot.py --results $R
