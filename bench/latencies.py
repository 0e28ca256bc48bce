"""One bench/run result row from a file of latencies (ms, one a line).

    latencies.py RUN FILE CHUNKS CHUNK [PASS_SECONDS [DELETED]]
"""
import json
import sys

run, path, chunks, chunk, *rest = sys.argv[1:]
lat = sorted(float(x) for x in open(path) if x.strip())


def pct(p):
    return lat[min(int(len(lat) * p), len(lat) - 1)] if lat else 0.0


row = {"mta": "postwarden", "run": run, "chunks": int(chunks), "chunk": int(chunk),
       "messages": len(lat), "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99),
       "max_ms": lat[-1] if lat else 0.0}
if rest and rest[0]:
    row["pass_seconds"] = float(rest[0])
    row["deleted"] = rest[1] if len(rest) > 1 else ""
print(json.dumps(row))
