#!/usr/bin/python3
"""Draws the soak's CSV (bench/soak/soak.cpp) as one PNG: publish and stored
rate, publish-to-stored latency, recorder RSS, the disk spool with the
recorder's queue, and the write-ahead journal on disk, over time, store
outages shaded.

    /usr/bin/python3 bench/soak/plot.py soak.csv soak.png [--title TEXT]

The outage windows come from soak.csv.outages (stop requested, store up
again, store process gone: seconds, one outage per line),
written by the soak next to its CSV.
"""
import argparse
import csv
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def num(v):
    return float(v) if v not in ("", None) else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("png")
    ap.add_argument("--title", default="iotbridge soak")
    a = ap.parse_args()

    with open(a.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    col = {k: [num(r[k]) for r in rows] for k in rows[0]}
    t = col["t_s"]
    outages = []
    if os.path.exists(a.csv + ".outages"):
        with open(a.csv + ".outages") as f:
            outages = [tuple(map(float, line.split(","))) for line in f if line.strip()]

    fig, ax = plt.subplots(5, 1, figsize=(11, 12), sharex=True)
    ax[0].plot(t, col["pub_rate"], lw=0.8, label="published /s")
    ax[0].plot(t, col["stored_rate"], lw=0.8, label="stored /s")
    ax[0].set_ylabel("readings / s")
    ax[0].legend(loc="upper right", fontsize=8)

    ax[1].plot(t, col["lat_p50_ms"], ".", ms=2, label="p50")
    ax[1].plot(t, col["lat_p99_ms"], ".", ms=2, label="p99")
    ax[1].set_yscale("log")
    ax[1].set_ylabel("publish-to-stored\nms (per second)")
    ax[1].legend(loc="upper right", fontsize=8)

    ax[2].plot(t, [v / 1024 for v in col["rss_kb"]], lw=0.9, color="tab:red")
    ax[2].set_ylabel("recorder RSS (MB)")
    ax[2].set_ylim(bottom=0)

    mb = 1024 * 1024
    ax[3].plot(t, [v / mb for v in col["disk_spool_bytes"]], lw=0.9, label="spool/ on disk (MB)")
    ax[3].set_ylabel("spool (MB)")
    ax[3].set_ylim(bottom=0)
    q = ax[3].twinx()
    q.plot(t, col["queue_depth"], lw=0.6, color="tab:gray", label="queue depth")
    q.set_ylabel("queue (readings)")
    q.set_ylim(bottom=0)
    h1, l1 = ax[3].get_legend_handles_labels()
    h2, l2 = q.get_legend_handles_labels()
    ax[3].legend(h1 + h2, l1 + l2, loc="upper right", fontsize=8)

    ax[4].plot(t, [v / mb for v in col["disk_wal_bytes"]], lw=0.9, color="tab:green")
    ax[4].set_ylabel("write-ahead\njournal (MB)")
    ax[4].set_ylim(bottom=0)
    ax[4].set_xlabel("seconds")

    for axis in ax:
        for o in outages:
            # light: the stop was requested (the store shuts down gracefully);
            # dark: the store process was gone, until it accepted connections again.
            axis.axvspan(o[0], o[1], color="tab:orange", alpha=0.15, lw=0)
            if len(o) > 2:
                axis.axvspan(o[2], o[1], color="tab:orange", alpha=0.25, lw=0)
        axis.grid(alpha=0.3)
    fig.suptitle(a.title + "\n(shaded: store stopping / stopped)", fontsize=10)
    fig.tight_layout()
    fig.savefig(a.png, dpi=90)


if __name__ == "__main__":
    main()
