#!/usr/bin/env python3
"""Plots of the simulator's CSV tables: python3 sim/plot.py DIR (writes DIR/*.png)."""
import csv, os, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

out = sys.argv[1]

def rows(name):
    with open(os.path.join(out, name)) as f:
        return list(csv.DictReader(f))

lk = rows("lookups.csv")
fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
for down in sorted({r["down"] for r in lk}):
    rs = [r for r in lk if r["down"] == down]
    n = [int(r["relays"]) for r in rs]
    label = f"{float(down) * 100:.0f}% down"
    ax[0].plot(n, [float(r["hops_mean"]) for r in rs], "o-", label=label)
    ax[1].plot(n, [float(r["messages_mean"]) for r in rs], "o-", label=label)
    ax[2].plot(n, [float(r["ms_p50"]) for r in rs], "o-", label=label + " p50")
    ax[2].plot(n, [float(r["ms_p99"]) for r in rs], "x--", label=label + " p99")
for a, t in zip(ax, ["hops (mean)", "messages per lookup (mean)", "lookup time (ms)"]):
    a.set_xscale("log"); a.set_xlabel("relays"); a.set_title(t); a.grid(alpha=0.3); a.legend(fontsize=7)
fig.tight_layout()
fig.savefig(os.path.join(out, "lookups.png"), dpi=110)

cp = [r for r in rows("capture.csv") if r["fraction"] != "keys"]
fig, ax = plt.subplots(figsize=(7, 4.2))
for g in dict.fromkeys(r["group"] for r in cp):
    rs = [r for r in cp if r["group"] == g]
    f = [float(r["fraction"]) * 100 for r in rs]
    seen = [(x, float(r["simulated"])) for x, r in zip(f, rs) if float(r["simulated"]) > 0]
    line, = ax.plot([x for x, _ in seen], [y for _, y in seen], "o", label=g + " (simulated; none seen: no point)")
    law = [(x, float(r["binomial"])) for x, r in zip(f, rs) if float(r["binomial"]) >= 1e-9]
    ax.plot([x for x, _ in law], [y for _, y in law], "-", color=line.get_color(), alpha=0.6)
ax.set_yscale("log"); ax.set_xlabel("adversary's share of relays (%), random ids")
ax.set_ylabel("share of groups captured"); ax.grid(alpha=0.3); ax.legend(fontsize=7)
ax.set_title("Close groups captured (points: simulated; lines: binomial law)")
fig.tight_layout()
fig.savefig(os.path.join(out, "capture.png"), dpi=110)
print("plots written to", out)

du = [r for r in rows("durability.csv") if r["profile"] != "outage" and not r["profile"].startswith("tabs")]
fig, ax = plt.subplots(1, 2, figsize=(11, 4))
for prof in dict.fromkeys(r["profile"] for r in du):
    for code in dict.fromkeys((r["k"], r["m"]) for r in du):
        rs = [r for r in du if r["profile"] == prof and (r["k"], r["m"]) == code]
        g = [max(float(r["grace_h"]), 0.1) for r in rs]
        label = f"{prof} {code[0]}+{code[1]}"
        ax[0].plot(g, [float(r["moved_per_stored_year"]) for r in rs], "o-", label=label)
        ax[1].plot(g, [max(float(r["lost_per_year"]), 1e-4) for r in rs], "o-", label=label)
ax[0].set_title("shards read for repair per shard stored, per year")
ax[1].set_title("share of stripes lost per year (floor 1e-4: none seen)")
for a in ax:
    a.set_xscale("log"); a.set_yscale("log"); a.grid(alpha=0.3)
    a.set_xlabel("grace before repairing around a member that is down (h; 0.1 = seconds)")
ax[0].legend(fontsize=6, ncol=2)
fig.tight_layout()
fig.savefig(os.path.join(out, "durability.png"), dpi=110)
print("durability plot written")

au = os.path.join(out, "audits.csv")
if os.path.exists(au):
    ar = rows("audits.csv")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key in dict.fromkeys((r["holder"], r["scrub"]) for r in ar):
        rs = [r for r in ar if (r["holder"], r["scrub"]) == key]
        n = [int(r["shards_per_relay"]) for r in rs]
        label = key[0] + (" (scrub)" if key[1] == "true" else "")
        line, = ax.plot(n, [float(r["found_p50_s"]) / 3600 for r in rs], "o-", label=label)
        ax.plot(n, [float(r["found_p99_s"]) / 3600 for r in rs], "x--", color=line.get_color(), alpha=0.6)
    ax.set_xscale("log"); ax.set_yscale("log"); ax.set_xlabel("shards per relay")
    ax.set_ylabel("hours until a lost shard is found (o p50, x p99)")
    ax.grid(alpha=0.3); ax.legend(fontsize=7)
    ax.set_title("Silent loss and dishonest holders: time to find them")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "audits.png"), dpi=110)

ec = os.path.join(out, "economy.csv")
if os.path.exists(ec):
    er = rows("economy.csv")
    e = [int(r["epoch"]) for r in er]
    burnt = [float(r["burnt"]) for r in er]
    minted = [float(r["minted"]) for r in er]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].plot(e, burnt, label="burnt by batches (cumulative)")
    ax[0].plot(e, minted, label="minted as rewards (cumulative)")
    ax[0].plot(e, [b * 0.9 for b in burnt], "--", alpha=0.6, label="burnt less the 10% fee (bound)")
    ax[0].set_xlabel("epoch"); ax[0].set_title("credits"); ax[0].grid(alpha=0.3); ax[0].legend(fontsize=7)
    ax[1].plot(e, [m - b for m, b in zip(minted, burnt)], label="supply change (minted − burnt)")
    ax[1].set_xlabel("epoch"); ax[1].set_title("supply over time"); ax[1].grid(alpha=0.3); ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "economy.png"), dpi=110)
