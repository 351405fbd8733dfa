#!/usr/bin/env bash
# The plots of docs/priors.md, drawn with gnuplot into DIR (default docs/priors):
#   gap.svg: mean-field VI under the weight prior against VI under a GP prior over functions on
#     the in-between gap (predictive mean and +-2 sd, seed 0);
#   sinusoid.svg: one meta-test sinusoid from 5 context points, under the isotropic prior, the
#     learned prior and from the meta-learned initialization (seed 0).
#   bench/priors_plot.sh [DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD:-$root/build}"
dir="${1:-$root/docs/priors}"
out="$dir/gap.svg"
command -v gnuplot > /dev/null || { echo "needs gnuplot (apt-get install gnuplot-nox)" >&2; exit 1; }
"$root/bench/build.sh" "$BUILD" function_prior meta_prior
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$BUILD/bench/function_prior" --seeds 1 --gap-methods 'vi;vi:prior=gp:rbf?lengthscale=0.5' --moons-methods vi \
  --plot-data "$tmp/gap" > /dev/null
mkdir -p "$(dirname "$out")"
gnuplot <<GP
set terminal svg size 900,380 dynamic font 'sans,11'
set output '$out'
set datafile separator ','
set multiplot layout 1,2
set xrange [-2.5:2.5]
set yrange [-3:3]
set key top left
set xlabel 'x'
set title 'vi, weight prior'
plot '$tmp/gap.csv' every ::1 using 1:(\$2-2*\$3):(\$2+2*\$3) with filledcurves lc rgb '#c6dbef' title 'mean ± 2 sd', \
     '' every ::1 using 1:2 with lines lw 2 lc rgb '#08519c' title 'mean', \
     '$tmp/gap.train.csv' using 1:2 with points pt 7 ps 0.4 lc rgb 'black' title 'data'
set title 'vi, prior gp:rbf?lengthscale=0.5'
plot '$tmp/gap.csv' every ::1 using 1:(\$4-2*\$5):(\$4+2*\$5) with filledcurves lc rgb '#fdd0a2' title 'mean ± 2 sd', \
     '' every ::1 using 1:4 with lines lw 2 lc rgb '#a63603' title 'mean', \
     '$tmp/gap.train.csv' using 1:2 with points pt 7 ps 0.4 lc rgb 'black' title 'data'
unset multiplot
GP
"$BUILD/bench/meta_prior" --seeds 1 --methods 'laplace:subset=all,hessian=full;vi' --plot-data "$tmp/sin" > /dev/null
gnuplot <<GP
set terminal svg size 1200,360 dynamic font 'sans,11'
set output '$dir/sinusoid.svg'
set datafile separator ','
set multiplot layout 1,3
set key bottom right
set xlabel 'x'
set yrange [0:10]
do for [panel in "6 8 10"] {
  c = panel + 0
  set title (c == 6 ? 'isotropic prior, vi' : c == 8 ? 'learned prior, vi' : 'meta-learned initialization, map')
  plot '$tmp/sin.csv' every ::1 using 1:(column(c)-2*column(c+1)):(column(c)+2*column(c+1)) with filledcurves \
         lc rgb '#c7e9c0' title 'mean ± 2 sd', \
       '' every ::1 using 1:c with lines lw 2 lc rgb '#006d2c' title 'mean', \
       '$tmp/sin.test.csv' using 1:2 with points pt 6 ps 0.5 lc rgb 'gray40' title 'held out', \
       '$tmp/sin.context.csv' using 1:2 with points pt 7 ps 0.9 lc rgb 'black' title 'context'
}
unset multiplot
GP
echo "wrote $out and $dir/sinusoid.svg"
