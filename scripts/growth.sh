#!/usr/bin/env bash
# How ActiveFT's time grows with n, d and the budget, on spread pools, with
# this machine's floor beside each row: prints the README's growth table.
#
#   scripts/growth.sh [WORKDIR]      (pools go to WORKDIR, default /tmp/growth)
#
# Each row: a seeded 100-class spread pool (examples/synth), one whole-process
# run of `activeft select` under /usr/bin/time (300 iterations, full batch),
# the report's work counters, and examples/floors' floor for that shape.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/growth}
mkdir -p "$work"
cargo build --release --quiet --examples --bin activeft
bin=target/release

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) threads"
echo
echo "| n | d | budget | wall time | peak memory | full scans | rescores | floor | time / floor |"
echo "|---|---|---|---|---|---|---|---|---|"
for shape in "25000 384 500" "50000 384 500" "100000 384 500" \
             "50000 128 500" "50000 768 500" \
             "50000 384 250" "50000 384 1000"; do
    read -r n d k <<<"$shape"
    pool="$work/pool_${n}_${d}.npy"
    [[ -f $pool ]] || "$bin/examples/synth" "$pool" "$n" "$d" 100 7 2>/dev/null
    /usr/bin/time -f "%e %M" -o "$work/time" \
        "$bin/activeft" select --features "$pool" --budget "$k" --report "$work/report.json" >/dev/null
    read -r wall kb <"$work/time"
    read -r scans rescored < <(python3 -c \
        "import json,sys; w=json.load(open(sys.argv[1]))['work']; print(w['full_scans'], w['rescored'])" \
        "$work/report.json")
    floor=$("$bin/examples/floors" "$n" "$d" "$k" 300 | sed -n 's/.*floor of the run: \([0-9.]*\) s.*/\1/p')
    ratio=$(python3 -c "print(f'{$wall / $floor:.1f}')")
    printf '| %s | %s | %s | %s s | %s MB | %s | %s | %s s | %s |\n' \
        "$n" "$d" "$k" "$wall" "$((kb / 1024))" "$scans" "$rescored" "$floor" "$ratio"
done
