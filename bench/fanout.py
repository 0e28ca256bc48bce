"""bench/run's fan-out runs: waits for the receivers of bench/fanout_world.rs
to have the mail they should get, then prints one JSON row of figures.

    python3 bench/fanout.py MTA VARIANT STATS_JSON T0 MESSAGES DOMAINS TIMEOUT

Recipient n (1 .. MESSAGES) is at domain n mod DOMAINS (bench/smtp_load.rs
--domains), whose class (fanout_world.rs) is its number mod 100: 0-1
refuse, 2-6 answer 4xx for a while, 7-16 slow, the rest fast. It waits
until every recipient of the fast, slow and greylisting classes has
arrived (the refused ones never do), or TIMEOUT seconds after T0. Times are
from T0 (the start of sending) to the class's last message.
"""
import json
import sys
import time

mta, variant, stats_path, t0, messages, domains, timeout = sys.argv[1:]
t0, messages, domains, timeout = float(t0), int(messages), int(domains), float(timeout)


def klass(domain):
    k = domain % 100
    return "refuse" if k < 2 else "tempfail" if k < 7 else "slow" if k < 17 else "fast"


expected = {"refuse": 0, "tempfail": 0, "slow": 0, "fast": 0}
for n in range(1, messages + 1):
    expected[klass(n % domains)] += 1
if variant == "all-fast":
    # Every domain answers: the "refuse" ones receive too.
    wanted = dict(expected)
else:
    wanted = dict(expected, refuse=0)


def read():
    try:
        with open(stats_path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


stats = None
while time.time() < t0 + timeout:
    stats = read() or stats
    if stats and all(stats["classes"][c]["messages"] >= wanted[c] for c in wanted):
        break
    time.sleep(0.5)
time.sleep(1)  # the last stats snapshot after the last message
stats = read() or stats
classes = stats["classes"]
row = {"mta": mta, "run": f"fan-out {variant}", "messages": messages, "domains": domains}
for c, v in classes.items():
    got = v["messages"]
    row[f"{c}_delivered"] = got
    row[f"{c}_expected"] = wanted[c]
    if got and v["last_ms"]:
        row[f"{c}_done_s"] = round(v["last_ms"] / 1000 - t0, 2)
fast = classes["fast"]
if fast["messages"] and fast["last_ms"]:
    row["fast_per_s"] = round(fast["messages"] / (fast["last_ms"] / 1000 - t0), 1)
delivered = sum(v["messages"] for v in classes.values())
last = max((v["last_ms"] for v in classes.values()), default=0)
row["delivered"] = delivered
if delivered and last:
    row["delivered_per_s"] = round(delivered / (last / 1000 - t0), 1)
connections = sum(v["connections"] for v in classes.values())
row["connections"] = connections
row["connections_per_message"] = round(connections / delivered, 3) if delivered else None
row["fast_connections_per_message"] = (
    round(fast["connections"] / fast["messages"], 3) if fast["messages"] else None)
dns = stats.get("dns", {})
row["dns_mx_per_domain"] = round(dns.get("MX", 0) / domains, 2)
row["dns_queries_per_domain"] = round(sum(dns.values()) / domains, 2)
row["complete"] = all(classes[c]["messages"] >= wanted[c] for c in wanted)
print(json.dumps(row))
