# The plots of bench/results/: run by scripts/bench as  gnuplot -e "results='<dir>'" bench/plots.gp
# after the bench binaries have written their summaries (<binary>.tsv: op, size, impl, time_us,
# gflops, gbs, then x_<baseline> speedups) and bench/plot_data.awk has cut the series out of them
# (<plot>.dat). Each plot is written as SVG and PNG.
set grid
set style data linespoints
set key top left box opaque

spmm = results."/bench_spmm.tsv"
attention = results."/bench_attention.tsv"
moe = results."/bench_moe.tsv"
primitives = results."/bench_primitives.tsv"

set datafile separator "\t"
set datafile missing "-"
set datafile columnheaders
is(col, text) = strcol(col) eq text
# The roofline's points: lacuna's one-thread cases, at FLOPs per byte streamed (the argument is unused).
lacuna_1t(col) = strstrt(strcol(col), "lacuna") == 1 && strstrt(strcol(col), ".2t") == 0 || strcol(col) eq "bitmap"
intensity(unused) = lacuna_1t(3) && column("gflops") > 0 && column("gbs") > 0 ? column("gflops") / column("gbs") : NaN
# The roofs, measured by bench_primitives on one core.
stats primitives using (is(1, "machine") && is(3, "fma_peak") ? column("gflops") : NaN) nooutput
peak = STATS_max
stats primitives using (is(1, "machine") && is(3, "stream_read") ? column("gbs") : NaN) nooutput
bandwidth = STATS_max

do for [format in "svg png"] {
    if (format eq "svg") { set terminal svg size 900,560 dynamic noenhanced font "sans,13" } else { set terminal pngcairo size 900,560 noenhanced font "sans,11" }

    # 1. Roofline: useful GFLOP/s against the FLOPs per byte of the operands each case streams.
    set datafile separator "\t"
    set datafile columnheaders
    set output results."/roofline.".format
    set title sprintf("Roofline of one core: FMA peak %.0f GFLOP/s, streaming %.1f GB/s (measured)", peak, bandwidth)
    set xlabel "arithmetic intensity (useful FLOP per byte of the layout and operands)"
    set ylabel "useful GFLOP/s"
    set logscale xy 10
    set yrange [0.5:2 * peak]
    set key bottom right
    plot [x=0.05:500] (x * bandwidth < peak ? x * bandwidth : peak) with lines lw 2 lc "black" title "roof", \
         spmm using (intensity(0)):"gflops" with points pt 7 title "products", \
         attention using (intensity(0)):"gflops" with points pt 5 title "attention", \
         moe using (intensity(0)):"gflops" with points pt 9 title "MoE layer"
    unset logscale xy
    set xrange [*:*]
    set yrange [*:*]
    set key top left

    # The rest read the series files: blocks of "x y" rows under a quoted title.
    set datafile separator whitespace
    unset datafile columnheaders

    # 2. Speedup over the dense kernel of the same shape against sparsity, per layout.
    set output results."/spmm_speedup.".format
    set title "Sparse x dense on one core: speedup over OpenBLAS on the dense 4096 x 4096 matrix"
    set xlabel "sparsity (% of the elements, or of the 16 x 16 / 32 x 32 blocks, not stored)"
    set ylabel "speedup over OpenBLAS sgemm / sgemv"
    set logscale y 2
    set xrange [45:100]
    plot for [i = 0:*] results."/spmm_speedup.dat" index i using 1:2 title columnheader(1), \
         1 with lines dashtype 2 lc "black" title "dense"
    unset logscale y
    set xrange [*:*]

    # 3. Block-sparse attention time against the density of its 128 x 128 blocks.
    set output results."/attention_density.".format
    set title "Block-sparse attention (flex_attention, 8 heads, D = 128) against dense attention"
    set xlabel "density of the listed 128 x 128 blocks (%)"
    set ylabel "time (ms)"
    set logscale xy 10
    plot for [i = 0:*] results."/attention_density.dat" index i using 1:2 title columnheader(1)
    unset logscale xy

    # 4. Where the MoE layer's time goes, per token count: each step's time on a log scale (the
    # experts take over 99%; stacked shares would hide the rest).
    set output results."/moe_steps.".format
    set title "MoE layer on one core, step by step (64 experts, top-8, H = 1024, F = 2048)"
    set xlabel "tokens"
    set ylabel "time (ms)"
    set style data histograms
    set style histogram clustered gap 1
    set style fill solid 0.8 border -1
    set logscale y 10
    plot results."/moe_steps.dat" using ($2 / 1000):xtic(1) title "router (GEMM + top-k)", '' using ($3 / 1000) title "permute (plan + gather)", \
         '' using ($4 / 1000) title "experts", '' using ($5 / 1000) title "combine"
    unset logscale y
    set style data linespoints
}
