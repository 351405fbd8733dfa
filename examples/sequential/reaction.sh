#!/bin/sh
# A simulated experiment for `credence optimize --command`: the yield (%) of B in a consecutive
# reaction A -> B -> C run at temperature T (degrees C) for t minutes with catalyst loading c
# (mol%). Arrhenius rates; the catalyst speeds the first step but past ~1 mol% it also feeds a
# side reaction. Prints one number, as a lab script or simulator would.
#   examples/sequential/reaction.sh 80 30 1.0
awk -v T="$1" -v t="$2" -v c="$3" 'BEGIN {
  R = 8.314; K = T + 273.15
  k1 = 4.0e6 * c / (c + 0.4) * exp(-52000 / (R * K))   # A -> B, per minute
  k2 = 2.0e9 * exp(-78000 / (R * K))                   # B -> C
  side = exp(-0.35 * c * c)                            # the side reaction at high loading
  if (k2 == k1) k2 = k1 * 1.000001
  b = k1 / (k2 - k1) * (exp(-k1 * t) - exp(-k2 * t))
  printf "%.6f\n", 100 * b * side
}'
