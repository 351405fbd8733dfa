"""Shared by the benchmark summaries: mean and standard error, and curve plots with gnuplot."""
import math
import shutil
import subprocess


def mean_se(values):
    """Mean and standard error of the mean (0 for one value)."""
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1) / len(values))


def plot_curves(svg, title, xlabel, ylabel, series, key="outside right"):
    """series: {label: (x, runs)} with runs[r][t] the value of run r at x[t]; draws each label's mean
    with a band of one standard error. Does nothing without gnuplot."""
    if not shutil.which("gnuplot"):
        return
    script = ['set terminal svg size 720,440 dynamic font "sans,11"', f"set output '{svg}'",
              f"set title '{title}'", f"set xlabel '{xlabel}'", f"set ylabel '{ylabel}'", f"set key {key}",
              "set grid"]
    plots = []
    for i, (label, (x, runs)) in enumerate(sorted(series.items())):
        n = min(len(x), *(len(r) for r in runs))
        lines = []
        for t in range(n):
            m, se = mean_se([r[t] for r in runs])
            lines.append(f"{x[t]} {m} {m - se} {m + se}")
        script.append(f"$d{i} << EOD\n" + "\n".join(lines) + "\nEOD")
        plots.append(f"$d{i} using 1:3:4 with filledcurves lc {i + 1} fs transparent solid 0.15 notitle")
        plots.append(f"$d{i} using 1:2 with lines lw 2 lc {i + 1} title '{label}'")
    script.append("plot " + ", ".join(plots))
    subprocess.run(["gnuplot"], input="\n".join(script), text=True, check=True)
