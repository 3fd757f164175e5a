#!/bin/bash
# Issue 10's study: classifier-free guidance on mnist16-unet-cond (constant, interval 0-700, Wang et al.
# schedules linear/cosine increasing/decreasing, φ-rescale, APG) next to classifier guidance (CE, ECT,
# constant and EDS) on mnist16-unet, on one frontier with paired seeds: 3 seeds, 1000 samples per cell,
# DDIM-25, judged by mnist16-oracle. Every run caches its cells in its folder: rerun this script to resume.
# Usage: benchmarks/guidance_study.sh OUT [extra compare options, e.g. --device cuda]
set -euo pipefail
OUT=${1:?usage: benchmarks/guidance_study.sh OUT [compare options]}
shift
GK="nice -n 10 env OMP_NUM_THREADS=1 guidekit compare"
COMMON=(--seeds 3 --num-samples 1000 --respacing ddim25 --judge mnist16-oracle "$@")
W="0,0.5,1,1.5,2,3"  # w = 1 is conditional sampling, w = 0 unconditional

$GK --model mnist16-unet-cond --guidance classifier-free \
    --scaler constant:$W --scaler interval:$W --scaler timestep:$W \
    --scaler-param "timestep.schedule=['linear','cosine']" \
    --scaler-param "timestep.direction=['increasing','decreasing']" \
    "${COMMON[@]}" --out "$OUT/cfg"
$GK --model mnist16-unet-cond --guidance cfg-rescale --guidance-param phi=0.7 \
    --scaler constant:1,1.5,2,3,5 "${COMMON[@]}" --out "$OUT/cfg-rescale"
$GK --model mnist16-unet-cond --guidance apg --guidance-param eta=0 --guidance-param momentum=-0.5 \
    --scaler constant:1,1.5,2,3,5,8 "${COMMON[@]}" --out "$OUT/apg"
$GK --model mnist16-unet --classifier mnist16-classifier-ce --classifier mnist16-classifier-ect \
    --scaler constant:0,0.5,1,2,4,8 --scaler entropy:0,0.5,1,2,4,8 "${COMMON[@]}" --out "$OUT/classifier"
nice -n 10 guidekit compare-plot "$OUT/cfg" "$OUT/cfg-rescale" "$OUT/apg" "$OUT/classifier" --out "$OUT/all"
