#!/bin/bash
# Issue 15's study: Tables 2-3 of ED-DPM, classifier-free guidance and its schedules, DDIM-25 and DDPM-100,
# redone with the comparison protocol on mnist16 and fashion32: held-out references, FD and KID in the
# oracle's features and in a pixel PCA, every method measured at the γ that bisection finds for each
# target accuracy (no interpolation), 3 seeds x 1,000 samples per cell, and paired differences against a
# baseline with bootstrap CIs (paired.json; "resolved" only when the CI excludes 0).
#
# Usage: benchmarks/study.sh OUT [mnist16] [fashion32] [-- extra compare options, e.g. --device cuda]
# Every run caches its cells (by content) in its folder: rerun the same command to resume; a finished
# study reruns without computing anything (the merges are rewritten from the cached records).
# SEEDS, SAMPLES and PILOT override 3, 1000 and 200 (a smoke test: SEEDS=1 SAMPLES=40 PILOT=20);
# TARGETS overrides the data set's target accuracies; RUNS picks runs (default "ce ect cfg apg ddpm": all),
# e.g. RUNS="ce ect" for Tables 2-3 alone. The merged folders are written from the runs that exist.
#
# Runs per data set D (folders under OUT/D/):
#   ce-ddim25      CE classifier x constant, interval (0-700), timestep, gradnorm, entropy (EDS)   Table 3
#   ect-ddim25     ECT classifier x constant, entropy
#   table2-ddim25  = ce-ddim25 + ect-ddim25 (compare-plot), paired against CE/constant                Table 2
#   vs-eds-ddim25  = the same, paired against CE/entropy (EDS): timestep vs EDS, ECT+EDS vs EDS
#   cfg-ddim25     classifier-free guidance of D-unet-cond x constant, interval, timestep schedules
#                  (linear/cosine x increasing/decreasing)
#   apg-ddim25     adaptive projected guidance (eta 0, momentum -0.5) x constant
#   cfg-all        = cfg-ddim25 + apg-ddim25, paired against classifier-free/constant
#   ce-ddpm100     CE x constant, entropy with the DDPM sampler on 100 steps
#   all-ddim25     = ce + ect + cfg + apg on one frontier, paired against CE/constant
#
# Target accuracies (judge: the data set's oracle, a clean-image CNN that never guides):
#   mnist16   0.80 0.90 0.95: unguided samples are judged at ~0.1, guided ones saturate near 1.0; the
#             oracle's accuracy on real held-out digits is 0.96, so 0.95 is as sure as real data.
#   fashion32 see FASHION_TARGETS below: three levels between unguided and saturated samples, the top one
#             at the oracle's accuracy on real test images (its card's test_accuracy_8000), above which
#             "more accurate" would mean more prototypical than real clothes.
set -euo pipefail
OUT=${1:?usage: benchmarks/study.sh OUT [mnist16] [fashion32] [-- compare options]}
shift
SETS=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do SETS+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#SETS[@]} -eq 0 ] && SETS=(mnist16 fashion32)
SEEDS=${SEEDS:-3}
SAMPLES=${SAMPLES:-1000}
PILOT=${PILOT:-200}
RUNS=${RUNS:-ce ect cfg apg ddpm}
want() { [[ " $RUNS " == *" $1 "* ]]; }
MNIST16_TARGETS=0.8,0.9,0.95
FASHION_TARGETS=${FASHION_TARGETS:-0.7,0.8,0.9}
GK="env OMP_NUM_THREADS=1 guidekit"

for D in "${SETS[@]}"; do
    case $D in
        mnist16) TARGETS=${TARGETS:-$MNIST16_TARGETS} ;;
        fashion32) TARGETS=${TARGETS:-$FASHION_TARGETS} ;;
        *) echo "unknown data set $D (mnist16, fashion32)" >&2; exit 2 ;;
    esac
    O=$OUT/$D
    COMMON=(--target-accuracy "$TARGETS" --seeds "$SEEDS" --num-samples "$SAMPLES" --pilot-samples "$PILOT"
            --judge "$D-oracle" --no-progress "$@")
    want ce && $GK compare --model "$D-unet" --classifier "$D-classifier-ce" \
        --scaler constant --scaler interval --scaler timestep --scaler gradnorm --scaler entropy \
        --respacing ddim25 "${COMMON[@]}" --out "$O/ce-ddim25"
    want ect && $GK compare --model "$D-unet" --classifier "$D-classifier-ect" --scaler constant --scaler entropy \
        --respacing ddim25 "${COMMON[@]}" --out "$O/ect-ddim25"
    want cfg && $GK compare --model "$D-unet-cond" --guidance classifier-free \
        --scaler constant --scaler interval --scaler timestep \
        --scaler-param "timestep.schedule=['linear','cosine']" \
        --scaler-param "timestep.direction=['increasing','decreasing']" \
        --respacing ddim25 "${COMMON[@]}" --out "$O/cfg-ddim25"
    want apg && $GK compare --model "$D-unet-cond" --guidance apg --guidance-param eta=0 --guidance-param momentum=-0.5 \
        --scaler constant --respacing ddim25 "${COMMON[@]}" --out "$O/apg-ddim25"
    want ddpm && $GK compare --model "$D-unet" --classifier "$D-classifier-ce" --scaler constant --scaler entropy \
        --respacing 100 --sampler ddpm "${COMMON[@]}" --out "$O/ce-ddpm100"
    have() { for r in "$@"; do [ -f "$O/$r/results.json" ] || return 1; done; }
    have ce-ddim25 ect-ddim25 && $GK compare-plot "$O/ce-ddim25" "$O/ect-ddim25" \
        --baseline "$D-classifier-ce/constant" --overwrite --out "$O/table2-ddim25"
    have ce-ddim25 ect-ddim25 && $GK compare-plot "$O/ce-ddim25" "$O/ect-ddim25" \
        --baseline "$D-classifier-ce/entropy" --overwrite --out "$O/vs-eds-ddim25"
    have cfg-ddim25 apg-ddim25 && $GK compare-plot "$O/cfg-ddim25" "$O/apg-ddim25" --overwrite --out "$O/cfg-all"
    have ce-ddim25 ect-ddim25 cfg-ddim25 apg-ddim25 && $GK compare-plot "$O/ce-ddim25" "$O/ect-ddim25" \
        "$O/cfg-ddim25" "$O/apg-ddim25" --baseline "$D-classifier-ce/constant" --overwrite --out "$O/all-ddim25"
    true
done
