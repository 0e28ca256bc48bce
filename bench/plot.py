"""Plots bench/run's growth figures: throughput against recipients per message,
message size and contacts in the store, one panel each, as a PNG (gnuplot).

    python3 bench/plot.py RESULTS.jsonl OUT.png
"""
import json
import os
import subprocess
import sys

results, out = sys.argv[1], sys.argv[2]
rows = [json.loads(line) for line in open(results) if line.strip()]
work = os.path.dirname(os.path.abspath(out))


def series(prefix, value_of):
    pts = []
    for r in rows:
        if r["mta"] == "postwarden" and r["run"].startswith(prefix):
            pts.append((value_of(r["run"][len(prefix):]), r["accepted_per_s"], r["delivered_per_s"]))
    return sorted(pts)


def size(s):
    return {"k": 1024, "m": 1024 * 1024}[s[-1]] * float(s[:-1]) / 1024  # KB


panels = [
    ("rcpts", "recipients per message", series("growth rcpts=", float)),
    ("size", "message size (KB)", series("growth size=", size)),
    ("contacts", "contacts in the store", series("growth contacts=", float)),
]
plots = []
for name, xlabel, pts in panels:
    if not pts:
        continue
    path = os.path.join(work, f"growth-{name}.dat")
    with open(path, "w") as f:
        for x, acc, dlv in pts:
            f.write(f"{x} {acc} {dlv}\n")
    plots.append(f"""
set xlabel "{xlabel}"
set title "throughput against {xlabel}"
plot "{path}" using 1:2 with linespoints lw 2 title "accepted messages/s", \\
     "{path}" using 1:3 with linespoints lw 2 title "delivered recipients/s"
""")
if not plots:
    sys.exit("no growth figures in " + results)
script = f"""
set terminal pngcairo size 1500,450 font "sans,10"
set output "{out}"
set multiplot layout 1,{len(plots)} title "postwarden: throughput as it grows (20 sessions, reused connections)"
set logscale x
set logscale y
set grid
set key top left
set ylabel "per second"
{''.join(plots)}
unset multiplot
"""
subprocess.run(["gnuplot"], input=script.encode(), check=True)
print(f"plot: {out}")
