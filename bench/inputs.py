"""Inputs for bench/run: contact lists and newsletters of several sizes.

    python3 bench/inputs.py WORKDIR bench/newsletter.eml

Contacts are `N` + `bench@example.test` for N = 1 .. count, the addresses
`smtp-source -N -t bench@example.test` and bench/smtp_load.rs send to, all
double opt-in confirmed with evidence (the strict policy's requirement).
Messages are the 5 KB newsletter with its HTML part padded (or cut) to 2 KB,
50 KB and 1 MB, every policy rule still met.
"""
import os
import sys

work, newsletter = sys.argv[1], sys.argv[2]

for count in (10_000, 100_000, 1_000_000):
    with open(os.path.join(work, f"contacts-{count}.csv"), "w") as f:
        f.write("email,state,opted_in_at,opted_in_ip,confirmed_at\n")
        for n in range(1, count + 1):
            f.write(f"{n}bench@example.test,double_opt_in_confirmed,1790000000,192.0.2.1,1790000600\n")

base = open(newsletter, encoding="utf-8").read()
with open(os.path.join(work, "msg-5k.eml"), "w", encoding="utf-8") as f:
    f.write(base)

paragraph = ("<p>More trails, more gear, more stories from our readers: this autumn's walks "
             "took us from the river meadows to the high ridges, and we wrote down every turn.</p>\n")

# 2 KB: the plain-text part alone, with the unsubscribe link and the footer.
head, _, rest = base.partition("\n\n")
head = head.replace('Content-Type: multipart/alternative; boundary="=_bench_alt_1"',
                    "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit")
text = rest.split("Content-Transfer-Encoding: 8bit\n\n", 1)[1].split("--=_bench_alt_1", 1)[0]
small = head + "\n\n" + text
while len(small.encode()) > 2048:
    lines = small.split("\n")
    # drop a tip line from the middle, never the footer
    cut = next(i for i, l in enumerate(lines) if l.startswith("- "))
    del lines[cut]
    small = "\n".join(lines)
with open(os.path.join(work, "msg-2k.eml"), "w", encoding="utf-8") as f:
    f.write(small)

for name, size in (("50k", 50 * 1024), ("1m", 1024 * 1024)):
    padding = paragraph * ((size - len(base.encode())) // len(paragraph.encode()) + 1)
    msg = base.replace("<tr><td><p>Our new rain jackets",
                       "<tr><td>" + padding + "</td></tr>\n<tr><td><p>Our new rain jackets", 1)
    with open(os.path.join(work, f"msg-{name}.eml"), "w", encoding="utf-8") as f:
        f.write(msg)
