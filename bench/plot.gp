# plot.gp: draws bench/results/latest.tsv, one panel per figure, one bar per
# allocator (missing ones are left out).  `make bench-plot` runs
#   gnuplot -e "datafile='...latest.tsv'" -e "outfile='...bench.png'" plot.gp
# latest.tsv: a header line (metric, unit, the allocators, label), then one
# row per figure; NaN where an allocator has no figure.

if (!exists("datafile")) datafile = 'bench/results/latest.tsv'
if (!exists("outfile")) outfile = 'bench/results/bench.png'

set datafile separator "\t"
set datafile missing "NaN"
rows = int(system(sprintf("awk 'END { print NR - 1 }' '%s'", datafile)))
layout_rows = ceil(rows / 3.0)

set terminal pngcairo size 1500, 420 * layout_rows font ",9"
set output outfile
set multiplot layout layout_rows, 3 title "shmalloc and its peers (medians; lower is better)"

set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set key top left font ",8" samplen 1
set xtics format ""
set grid ytics
set yrange [0:*]

field(row, col) = system(sprintf("awk -F '\t' 'NR == %d { print $%d }' '%s'", row + 2, col, datafile))

do for [i = 0:rows - 1] {
	set title field(i, 9) noenhanced
	set ylabel field(i, 2)
	plot for [c = 3:8] datafile every ::i::i using c title columnheader(c)
}
unset multiplot
