#!/bin/sh
# The small sweeps behind the permuted-digits settings (one seed, 100 tasks each):
#   1. step size: plain backprop and continual backprop at SGD lr 0.01, 0.03, 0.1;
#   2. at the chosen lr: CBP's replacement rate and utility, shrink & perturb and L2-init
#      strengths, input standardisation, and the learner's default config.
# Results: results/sweep/<name>/ (CSV per run, run.json); tables: plot.py --sweeps.
# Usage: benchmarks/plasticity/sweep.sh [lr|tune|tune2|standardize]  (from the repository root;
# all if omitted)
set -eu
PY=.venv/bin/python
RUN="$PY benchmarks/plasticity/permuted_digits.py --tasks 100 --seeds 0 --jobs 2 --quiet"
OUT=benchmarks/plasticity/results/sweep
LR=0.03

if [ "${1:-}" = lr ] || [ $# -eq 0 ]; then
  for lr in 0.01 0.03 0.1; do
    $RUN --lr $lr --methods bp cbp --fresh 0 --set standardize=false --out $OUT/lr$lr
  done
fi

if [ "${1:-}" = tune ] || [ $# -eq 0 ]; then
  $RUN --lr $LR --fresh 3 --set standardize=false --out $OUT/tune_lr$LR \
    --methods bp cbp cbp@rho1e-5 cbp@rho1e-3 cbp@adaptable \
              snp@1e-6_1e-5 snp@1e-5_1e-5 snp@1e-4_1e-4 l2@1e-5 l2@1e-4 l2@1e-3 \
              bp@standardize cbp@standardize default default@bp \
    --set cbp@rho1e-5:cbp_replacement_rate=1e-5 --set cbp@rho1e-3:cbp_replacement_rate=1e-3 \
    --set cbp@adaptable:cbp_utility=adaptable_contribution \
    --set snp@1e-6_1e-5:shrink=1e-6 --set snp@1e-6_1e-5:perturb_std=1e-5 \
    --set snp@1e-5_1e-5:shrink=1e-5 --set snp@1e-5_1e-5:perturb_std=1e-5 \
    --set snp@1e-4_1e-4:shrink=1e-4 --set snp@1e-4_1e-4:perturb_std=1e-4 \
    --set l2@1e-5:l2_init_strength=1e-5 --set l2@1e-4:l2_init_strength=1e-4 \
    --set l2@1e-3:l2_init_strength=1e-3 \
    --set bp@standardize:standardize=true --set cbp@standardize:standardize=true \
    --set 'default@bp:plasticity=[]'
fi

# 3. stronger shrink & perturb and L2-init (the strongest of step 2 still helped most), and CBP
#    combined with L2-init.
if [ "${1:-}" = tune2 ] || [ $# -eq 0 ]; then
  $RUN --lr $LR --fresh 0 --set standardize=false --out $OUT/tune2_lr$LR \
    --methods snp@1e-4_1e-3 snp@1e-3_1e-4 snp@1e-3_1e-3 l2@3e-3 l2@1e-2 cbp+l2@1e-3 \
    --set snp@1e-4_1e-3:shrink=1e-4 --set snp@1e-4_1e-3:perturb_std=1e-3 \
    --set snp@1e-3_1e-4:shrink=1e-3 --set snp@1e-3_1e-4:perturb_std=1e-4 \
    --set snp@1e-3_1e-3:shrink=1e-3 --set snp@1e-3_1e-3:perturb_std=1e-3 \
    --set l2@3e-3:l2_init_strength=3e-3 --set l2@1e-2:l2_init_strength=1e-2 \
    --set cbp+l2@1e-3:l2_init_strength=1e-3
fi

# 4. standardised inputs at lr 0.03 again, with the learner that clips z-scores to +-10 (80a9be6;
#    without the clip, tune's CBP diverged in task 3).
if [ "${1:-}" = standardize ] || [ $# -eq 0 ]; then
  $RUN --lr $LR --fresh 0 --set standardize=true --out $OUT/standardize_lr$LR --methods bp cbp
fi
