"""Draws the ratio chart of tools/bench --plot: plot.py DATA.json OUT.png"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src, dst):
    with open(src) as f:
        data = json.load(f)
    rows = data["rows"]
    labels = [r["label"] for r in rows]
    y = list(range(len(rows)))[::-1]
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(rows) + 1.8))
    h = 0.38
    ours = [r.get("ours", 0) for r in rows]
    asy = [r.get("asyncio", 0) for r in rows]
    ax.barh([v + h / 2 for v in y], ours, height=h, color="#2b7bba", label="ours")
    ax.barh([v - h / 2 for v in y], asy, height=h, color="#bbbbbb", label="asyncio")
    first = True
    for yy, r in zip(y, rows):
        if r.get("target"):
            ax.plot([r["target"]] * 2, [yy - 0.45, yy + 0.45], color="#d62728", lw=2,
                    label="target" if first else None)
            first = False
        if r.get("ours"):
            ax.text(r["ours"] * 1.05, yy + h / 2, "%.2f×" % r["ours"], va="center", fontsize=7)
    ax.axvline(1.0, color="black", lw=1, ls="--", label="greenlet = 1")
    ax.set_xscale("log")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("per operation, relative to raw greenlet in the same run (log scale; lower is better)")
    ax.set_title("Carbon runtime and asyncio vs greenlet — Python %s, %s" % (
        data["python"], data.get("backend") or "?"), fontsize=11)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
