# The series of bench/plots.gp from a bench binary's summary (--tsv): one block per series (its title
# on the first line, then "x y" rows sorted by x), blocks two blank lines apart, as gnuplot's `index`
# reads them. scripts/bench runs it as  awk -F'\t' -v plot=<name> -f bench/plot_data.awk <tsv>.
#   plot=spmm_speedup       bench_spmm: speedup over OpenBLAS on the dense matrix against sparsity (%)
#   plot=attention_density  bench_attention: time (ms) against the density of the listed blocks (%)
#   plot=moe_steps          bench_moe: one row per token count, the time of each step (us)
NR == 1 {
    for (i = 1; i <= NF; i++) column[$i] = i
    next
}

function add(series, x, y) {
    if (y == "-") return
    if (!(series in count)) order[n_series++] = series
    k = count[series]++
    xs[series, k] = x + 0
    ys[series, k] = y
}

function number_in(text, from) { return substr(text, from, index(text, "%") - from) + 0 }

plot == "spmm_speedup" && $1 ~ /^csr[0-9]+%_4096$/ && ($3 == "lacuna" || $3 == "bitmap") {
    add(($3 == "lacuna" ? "CSR" : "bitmap") ", n = " $2, 100 - number_in($1, 4), $column["x_openblas"])
}
plot == "spmm_speedup" && $1 ~ /^bsr[0-9]+_[0-9]+%$/ && $3 == "lacuna" {
    r = substr($1, 4, index($1, "_") - 4)
    add("BSR " r " x " r ", n = " $2, 100 - number_in($1, index($1, "_") + 1), $column["x_openblas"])
}
plot == "attention_density" && $1 ~ /^blocks[0-9]+%_h8_d128$/ && $3 ~ /^(lacuna|dense)(\.2t)?$/ {
    name = ($3 ~ /^lacuna/ ? "flex_attention" : "dense attention") ($3 ~ /\.2t$/ ? ", 2 threads" : ", 1 thread")
    add(name, number_in($1, 7), $column["time_us"] / 1000)
}
plot == "moe_steps" && $1 == "layer_steps" {
    if (!($2 in seen)) { seen[$2] = 1; shapes[n_shapes++] = $2 }
    step[$2, $3] = $4
}

END {
    if (plot == "moe_steps") {
        for (i = 0; i < n_shapes; i++) {
            s = shapes[i]
            split(s, part, "_")
            printf "%s %g %g %g %g\n", substr(part[1], 2), step[s, "router"], step[s, "permute"], step[s, "experts"], step[s, "combine"]
        }
        exit
    }
    for (b = 0; b < n_series; b++) {
        s = order[b]
        m = count[s]
        for (i = 1; i < m; i++) # insertion sort by x: a few points a series
            for (j = i; j > 0 && xs[s, j - 1] > xs[s, j]; j--) {
                t = xs[s, j]; xs[s, j] = xs[s, j - 1]; xs[s, j - 1] = t
                t = ys[s, j]; ys[s, j] = ys[s, j - 1]; ys[s, j - 1] = t
            }
        if (b > 0) printf "\n\n"
        printf "\"%s\"\n", s
        for (i = 0; i < m; i++) printf "%g %g\n", xs[s, i], ys[s, i]
    }
}
