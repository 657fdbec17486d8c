#!/usr/bin/env bash
# Draws bench/out/results.csv as gnuplot PNG + SVG files in the same folder:
#   <workload>_<size>.png/.svg  aggregate Mops/s vs threads (log-log), one line
#                               per contender, error bars = min..max of runs
#   memory_<size>.png/.svg      RSS bytes per live object, and kept after shrink
#   churn_<size>.png/.svg       peak RSS vs threads
# and bench/out/idle.csv (the idle workload, issue 15) as
#   idle_<mode>_c<C>.png/.svg   RSS held with 0 live objects (after the second
#                               shrink, or after the reap wait) vs threads,
#                               log-log, one line per contender, one figure
#                               per cache count C
# Usage: bench/plot.sh [OUTDIR]   (default bench/out)
set -euo pipefail
out=${1:-bench/out}
csv=$out/results.csv
idle=$out/idle.csv
[ -f "$csv" ] || [ -f "$idle" ] || { echo "plot: no $csv nor $idle" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "plot: gnuplot missing" >&2; exit 1; }
dat=$out/data
mkdir -p "$dat"
n=0
[ -f "$csv" ] || csv=/dev/null

# kind numbers follow enum wl_kind in bench.h: 6 churn, 8 memory
keys=$(awk -F, 'NR > 1 && $8 == 1 && $2 != 8 { print $1 "@" $5 }' "$csv" | sort -u)
for key in $keys; do
    wl=${key%@*}
    sz=${key#*@}
    f=$dat/${wl}_${sz}.dat
    # one gnuplot data block per contender, first line = its name
    awk -F, -v wl="$wl" -v sz="$sz" '
        NR > 1 && $1 == wl && $5 == sz && $8 == 1 {
            if (!($7 in seen)) { seen[$7] = ++k; name[k] = $7 }
            i = seen[$7]; rows[i] = rows[i] sprintf("%s %s %s %s %s\n", $6, $9, $10, $11, $15 / 1048576)
        }
        END { for (i = 1; i <= k; i++) { printf "\"%s\"\n%s\n\n", name[i], rows[i] } }
    ' "$csv" >"$f"
    blocks=$(grep -c '^"' "$f" || true)
    [ "$blocks" -gt 0 ] || continue
    if [ "$wl" = churn ]; then
        ylabel="peak RSS above start (MiB)"; col='1:5'; style='linespoints'; logy='set logscale y 2'
    else
        ylabel="aggregate Mops/s (one op = alloc + free)"; col='1:2:3:4'; style='yerrorlines'
        logy='set logscale y 10'
    fi
    for term in png svg; do
        if [ $term = png ]; then t='pngcairo size 1100,700 font ",10"'; else t='svg size 1100,700 dynamic'; fi
        gnuplot <<EOF
set terminal $t
set output "$out/${wl}_${sz}.$term"
set title "$wl, $sz B objects, 2 CPUs"
set xlabel "threads"
set ylabel "$ylabel"
set logscale x 2
$logy
set key outside right top
set grid
plot for [i=0:$((blocks - 1))] "$f" index i using $col with $style title columnheader(1)
EOF
    done
    n=$((n + 1))
done

# memory: bars of bytes per object and MiB kept after free + shrink
for sz in $(awk -F, 'NR > 1 && $2 == 8 { print $5 }' "$csv" | sort -un); do
    f=$dat/memory_${sz}.dat
    awk -F, -v sz="$sz" 'NR > 1 && $2 == 8 && $5 == sz && $8 == 1 {
        printf "\"%s\" %s %s\n", $7, $15, $16 / 1048576 }' "$csv" >"$f"
    [ -s "$f" ] || continue
    for term in png svg; do
        if [ $term = png ]; then t='pngcairo size 1100,600 font ",10"'; else t='svg size 1100,600 dynamic'; fi
        gnuplot <<EOF
set terminal $t
set output "$out/memory_${sz}.$term"
set title "memory: 1M live $sz B objects (bars: RSS bytes per object; points: MiB kept after free + shrink)"
set style data histogram
set style fill solid 0.6
set boxwidth 0.8
set xtics rotate by -30
set ylabel "RSS bytes per live object"
set y2label "MiB kept after free + shrink"
set y2tics
set ytics nomirror
set grid y
plot "$f" using 2:xtic(1) title "bytes/object", "" using 0:3 axes x1y2 with points pt 7 ps 1.5 title "MiB after shrink"
EOF
    done
    n=$((n + 1))
done
# idle (issue 15): held RSS above the baseline (threads parked, no cache yet)
# vs threads, one line per contender, one figure per (mode, C).  Columns of
# idle.csv: 2 mode, 3 contender, 4 threads, 5 caches, 6 burst, 7 size,
# 10 status, 20 held (bytes).  Values under 0.1 MiB are drawn at 0.1 (log y).
if [ -f "$idle" ]; then
    for mode in shrink reap; do
        for c in $(awk -F, -v m="$mode" 'NR > 1 && $1 == "idle" && $2 == m && $10 == "ok" { print $5 }' "$idle" | sort -un); do
            f=$dat/idle_${mode}_c$c.dat
            awk -F, -v m="$mode" -v c="$c" '
                NR > 1 && $1 == "idle" && $2 == m && $5 == c && $10 == "ok" {
                    if (!($3 in seen)) { seen[$3] = ++k; name[k] = $3 }
                    mib = $20 / 1048576; if (mib < 0.1) mib = 0.1
                    rows[seen[$3]] = rows[seen[$3]] sprintf("%s %.3f\n", $4, mib)
                    burst = $6; size = $7
                }
                END {
                    printf "# burst %s size %s\n", burst, size
                    for (i = 1; i <= k; i++) printf "\"%s\"\n%s\n\n", name[i], rows[i]
                }' "$idle" >"$f"
            blocks=$(grep -c '^"' "$f" || true)
            [ "$blocks" -gt 0 ] || continue
            read -r _ _ burst _ size <"$f"
            if [ "$mode" = shrink ]; then
                what="after two shrinks a second apart"; lim=64
            else
                what="after the reap wait, no shrink"; lim=128
            fi
            tgt=
            if [ "$c" = 32 ] && [ "$burst" = 2000 ] && [ "$size" = 64 ]; then
                tgt=", $lim with lines dt 2 lc rgb \"red\" title \"issue 15 target at 256 threads x 32 caches ($lim MiB)\""
            fi
            for term in png svg; do
                if [ $term = png ]; then t='pngcairo size 1100,700 font ",10"'; else t='svg size 1100,700 dynamic'; fi
                gnuplot <<EOF
set terminal $t
set output "$out/idle_${mode}_c$c.$term"
set title "idle: T threads x $c cache(s), each thread a burst of $burst x $size B per cache, all freed, threads idle\nRSS held $what, 0 live objects (malloc peers: one size class for every cache)"
set xlabel "idle threads"
set ylabel "MiB resident above the baseline (threads parked, no cache)"
set logscale x 2
set logscale y 10
set termoption noenhanced
set key inside left top box opaque
set grid
plot for [i=0:$((blocks - 1))] "$f" index i using 1:2 with linespoints lw 2 title columnheader(1)$tgt
EOF
            done
            n=$((n + 1))
        done
    done
fi
echo "plot: $n figures (PNG + SVG) in $out/"
