"""Prints bench/run's results (JSON lines) as tables, with postwarden/Postfix ratios."""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]


def find(mta, run):
    return next((r for r in rows if r["mta"] == mta and r["run"] == run), None)


def fmt(v, digits=0):
    if v is None or v == "":
        return "-"
    return f"{v:,.{digits}f}"


print()
disk = find("disk", "ceiling")
if disk:
    print("Spool durable-write ceiling (10 KB values, fsync'd WAL):")
    print(f"  one at a time          {fmt(disk['synced_writes_per_second_one_at_a_time'])} writes/s")
    print(f"  batches of 100         {fmt(disk['synced_writes_per_second_batches_of_100'])} writes/s")
    print(f"  postwarden's committer {fmt(disk['store_commits_per_second'])} messages/s "
          f"({disk['store_writers']:.0f} concurrent writers, {disk['store_messages_per_sync']:.1f} messages per sync)")
    print()

print("postwarden next to Postfix (5 KB newsletter, 20 sessions; postwarden with every policy rule on):")
header = f"  {'run':<38} {'figure':<28} {'postwarden':>12} {'Postfix':>12} {'ratio':>7}"
print(header)
print("  " + "-" * (len(header) - 2))
figures = [
    ("accepted_per_s", "accepted messages/s", 0),
    ("delivered_per_s", "delivered messages/s (e2e)", 0),
    ("machine_cpu_s_per_1000", "machine CPU s / 1000 msgs", 2),
    ("tools_cpu_s_per_1000", "load tools' CPU s / 1000 msgs", 2),
    ("p50_ms", "acceptance latency p50 ms", 2),
    ("p99_ms", "acceptance latency p99 ms", 2),
    ("peak_rss_mb", "peak memory MB", 1),
]
for run in ["new connection per message", "reused connections (-d)",
            "latency, reused connections", "peak RSS"]:
    a, b = find("postwarden", run), find("postfix", run)
    for key, name, digits in figures:
        va = a.get(key) if a else None
        vb = b.get(key) if b else None
        if va is None and vb is None:
            continue
        ratio = f"{va / vb:.2f}x" if isinstance(va, float) and isinstance(vb, float) and vb else "-"
        print(f"  {run:<38} {name:<28} {fmt(va, digits):>12} {fmt(vb, digits):>12} {ratio:>7}")
tls = find("postwarden", "STARTTLS + AUTH, reused connections")
if tls:
    print(f"  {'STARTTLS + AUTH (postwarden only)':<38} {'accepted messages/s':<28} {fmt(tls['accepted_per_s']):>12}")
    print(f"  {'':<38} {'acceptance latency p50/p99':<28} {tls['p50_ms']:>8.2f}/{tls['p99_ms']:.2f} ms")
print("  (ratio: postwarden / Postfix; for CPU, latency and memory lower is better. Memory:")
print("   postwarden's peak RSS (VmHWM); Postfix's largest sum of PSS over its processes.)")
print()

reused, cores = find("postwarden", "reused connections (-d)"), find("machine", "cores")
if disk and reused and reused.get("tools_cpu_s_per_1000"):
    batched = disk["synced_writes_per_second_batches_of_100"]
    tools = reused["tools_cpu_s_per_1000"]
    n = cores["cores"] if cores else 1
    print("Acceptance against the spool's ceiling (reused connections):")
    print(f"  accepted {fmt(reused['accepted_per_s'])} messages/s; the ceiling in batches of 100 is "
          f"{batched / reused['accepted_per_s']:.1f}x that")
    print(f"  smtp-source and smtp-sink alone use {tools:.2f} CPU s per 1000 messages: on {n:.0f} cores "
          f"they leave room for at most {n * 1000 / tools:,.0f} messages/s,")
    print(f"  for an MTA that cost nothing ({batched / (n * 1000 / tools):.1f}x below the ceiling); "
          f"postwarden itself used {fmt(reused.get('process_cpu_s_per_1000'), 2)} CPU s per 1000 messages")
    print()

for r in rows:
    if r["mta"] == "postwarden" and r["run"].startswith("queue of"):
        print(f"postwarden with {r['queued']:,.0f} messages queued (destination unreachable): "
              f"RSS {r['rss_mb']:.0f} MB, peak {r['peak_rss_mb']:.0f} MB, spool {r['spool_mb']:.0f} MB on disk, "
              f"accepted at {r['accepted_per_s']:,.0f} messages/s")
        print()

wait = next((r for r in rows if r["run"] == "million queued, waiting"), None)
drain = next((r for r in rows if r["run"] == "million queued, draining"), None)
if wait:
    print(f"postwarden with {wait['queued']:,.0f} messages queued (bench/queue_fill.rs; next attempts an hour on):")
    print(f"  start (serve to listening) {wait['start_s']:.1f} s; while they wait: CPU {wait['idle_cpu_pct']:.2f} % "
          f"of a core over 30 s, RSS {wait['rss_mb']:.0f} MB (peak {wait['peak_rss_mb']:.0f}), "
          f"spool {wait['spool_mb']:,.0f} MB on disk; the first /metrics scrape {wait['scrape_s']:.2f} s "
          f"(it counts the queue), the next {wait.get('scrape_again_s', 0):.2f} s")
if drain:
    print(f"  destination back: `queue flush --all` {drain['flush_s']:.1f} s (daemon stopped); start {drain['start_s']:.1f} s, "
          f"first delivery after {drain['first_delivery_s']:.1f} s, {drain['delivered']:,.0f} delivered in "
          f"{drain['drain_s']:.0f} s ({drain['drain_per_s']:,.0f}/s), peak RSS {drain['peak_rss_mb']:.0f} MB")
if wait or drain:
    print()

shaped = find("postwarden", "shaped rate")
if shaped:
    off = (shaped["achieved_per_min"] / shaped["configured_per_min"] - 1) * 100
    print(f"Shaping: {shaped['messages']:,.0f} messages to a provider paced at "
          f"{shaped['configured_per_min']:,.0f}/min (no burst) went at {shaped['achieved_per_min']:,.1f}/min "
          f"over {shaped['seconds']:.1f} s ({off:+.1f} % from the configured rate)")
base, limits = find("postwarden", "shaping baseline (-d)"), find("postwarden", "shaping limits (-d)")
if base and limits:
    for key, name in [("accepted_per_s", "accepted msg/s"), ("delivered_per_s", "delivered msg/s")]:
        print(f"  {name:<16} shipped file only {fmt(base[key]):>8}   provider limits above the load "
              f"{fmt(limits[key]):>8} ({(limits[key] / base[key] - 1) * 100:+.1f} %)")
if shaped or base:
    print()

memory = [r for r in rows if r["mta"] == "postwarden" and r["run"].startswith("memory")]
if memory:
    print("postwarden's memory by part (MB; RocksDB's own counters, the rest is everything else):")
    print(f"  {'':<34} {'RSS':>7} {'peak':>7} {'memtables':>10} {'block cache':>12} {'table readers':>14} "
          f"{'other':>7} {'anon':>7} {'file':>7} {'threads':>8}")
    for r in memory:
        print(f"  {r['run']:<34} {r.get('rss_mb', 0):>7.1f} {r.get('peak_rss_mb', 0):>7.1f} "
              f"{r.get('memtables_mb', 0):>10.1f} {r.get('block_cache_mb', 0):>12.1f} "
              f"{r.get('table_readers_mb', 0):>14.1f} {r.get('other_mb', 0):>7.1f} "
              f"{r.get('rss_anon_mb', 0):>7.1f} {r.get('rss_file_mb', 0):>7.1f} {fmt(r.get('threads')):>8}")
    print("  (anon + file = RSS: anonymous memory, and pages of the program and libraries mapped from their files)")
    print()

fan = {(r["mta"], r["run"]): r for r in rows if r["run"].startswith("fan-out")}
if fan:
    n = next(iter(fan.values()))
    print(f"Fan-out: {n['messages']:,} recipients over {n['domains']} domains through MX look-ups "
          "(postwarden; Postfix by a transport map to the same receivers):")
    print(f"  {'':<46} {'postwarden':>11} {'Postfix':>11} {'ratio':>7}")
    one = find("postwarden", "reused connections (-d)")
    lines = [
        ("fast domains: recipients/s, all domains fast", "all-fast", "fast_per_s", 1),
        ("fast domains: recipients/s, beside the bad ones", "mixed", "fast_per_s", 1),
        ("fast domains: last one after s, all fast", "all-fast", "fast_done_s", 1),
        ("fast domains: last one after s, beside bad ones", "mixed", "fast_done_s", 1),
        ("slow domains (10 %): last one after s", "mixed", "slow_done_s", 1),
        ("4xx for 30 s (5 %): last one after s", "mixed", "tempfail_done_s", 1),
        ("delivered recipients/s, all fast", "all-fast", "delivered_per_s", 1),
        ("connections per message delivered, all fast", "all-fast", "connections_per_message", 3),
        ("connections per message delivered, mixed", "mixed", "connections_per_message", 3),
        ("DNS MX questions per domain, mixed", "mixed", "dns_mx_per_domain", 2),
        ("DNS questions per domain, mixed", "mixed", "dns_queries_per_domain", 2),
    ]
    for name, variant, key, digits in lines:
        a = fan.get(("postwarden", f"fan-out {variant}"), {}).get(key)
        b = fan.get(("postfix", f"fan-out {variant}"), {}).get(key)
        if key.startswith("dns"):
            b = None  # Postfix asked no DNS: its transport map names the addresses
        ratio = f"{a / b:.2f}x" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "-"
        print(f"  {name:<46} {fmt(a, digits):>11} {fmt(b, digits):>11} {ratio:>7}")
    a, b = fan.get(("postwarden", "fan-out all-fast")), fan.get(("postwarden", "fan-out mixed"))
    if a and b and a.get("fast_per_s") and b.get("fast_per_s"):
        print(f"  postwarden's fast domains beside the bad ones: {(b['fast_per_s'] / a['fast_per_s'] - 1) * 100:+.1f} % "
              "against without them (head-of-line blocking would show here)")
    if one and a and a.get("delivered_per_s"):
        print(f"  postwarden's fan-out against its one-relay run: {a['delivered_per_s']:,.0f} against "
              f"{one['delivered_per_s']:,.0f} delivered/s ({a['delivered_per_s'] / one['delivered_per_s']:.2f}x)")
    for r in fan.values():
        if not r.get("complete"):
            print(f"  note: {r['mta']} {r['run']}: not every expected recipient arrived before the wait ended "
                  f"(fast {r.get('fast_delivered')}/{r.get('fast_expected')}, slow {r.get('slow_delivered')}/"
                  f"{r.get('slow_expected')}, 4xx {r.get('tempfail_delivered')}/{r.get('tempfail_expected')})")
    print()

during, idle = find("postwarden", "retention pruning"), find("postwarden", "retention idle")
if during and idle:
    print(f"Retention: acceptance latency while a pruning pass ran ({during.get('pass_seconds', 0):.1f} s, "
          f"deleted {during.get('deleted', '?')}), against nothing to prune:")
    print(f"  {'':<22} {'messages':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, r in [("during the pass", during), ("nothing to prune", idle)]:
        print(f"  {name:<22} {r['messages']:>9.0f} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} "
              f"{r['p99_ms']:>8.2f} {r['max_ms']:>8.2f}")
    print()

print("Growth (postwarden, reused connections, 20 sessions):")
print(f"  {'run':<26} {'messages':>9} {'accepted msg/s':>15} {'delivered rcpt/s':>17} {'CPU s/1000 msgs':>16}")
for r in rows:
    if r["mta"] == "postwarden" and r["run"].startswith("growth"):
        print(f"  {r['run']:<26} {r['messages']:>9.0f} {fmt(r['accepted_per_s']):>15} "
              f"{fmt(r['delivered_per_s']):>17} {fmt(r.get('process_cpu_s_per_1000'), 2):>16}")
print()
for r in rows:
    if r.get("delivered") is not None and r.get("rcpts") and r["delivered"] < r["messages"] * r["rcpts"]:
        print(f"  note: {r['mta']} {r['run']}: only {r['delivered']:.0f} of "
              f"{r['messages'] * r['rcpts']:.0f} deliveries seen before the wait ended")
