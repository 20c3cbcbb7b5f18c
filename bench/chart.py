#!/usr/bin/env python3
"""Draws the benchmark chart (PNG) from the aggregated cells bench.py writes.

  python chart.py CELLS.json OUT.png      (needs matplotlib)

One panel per workload: the server's CPU time per operation (W4: bytes per
idle connection), a bar per server at the median, a whisker from the lowest
to the highest round, the reference server's value as a dashed line (the C
epoll server's; nginx's in the TLS workloads, W5, W6, W6r, as the C server has
no TLS). Lower is better everywhere.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"c": "#7f7f7f", "sock": "#e8590c", "tokio": "#1c7ed6", "lua": "#2f9e44", "nginx": "#9c36b5"}
GROUP_NAMES = {"c": "C epoll (the limit)", "sock": "sock", "tokio": "tokio",
               "lua": "Lua event libraries", "nginx": "nginx (+lua)"}


def main(src, png):
    with open(src) as f:
        d = json.load(f)
    servers = d["servers"]
    wls = d["workloads"]
    cells = {(c["workload"], c["server"]): c for c in d["cells"]}
    n = len(wls)
    cols = 3 if n > 2 else n
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 0.42 * len(servers) * rows + 1.6 * rows),
                             squeeze=False)
    labels = [s["label"] for s in servers]
    ys = list(range(len(servers)))[::-1]
    for i, w in enumerate(wls):
        ax = axes[i // cols][i % cols]
        idle = w["key"] == "W4"
        key = "rate" if idle else "cpu_op"
        vals, lo, hi = [], [], []
        for s in servers:
            c = cells.get((w["key"], s["key"]), {})
            v = c.get(key)
            vals.append(v["median"] if v else None)
            lo.append(v["min"] if v else None)
            hi.append(v["max"] if v else None)
        top = max([h for h in hi if h is not None] or [1])
        for y, s, v, a, b in zip(ys, servers, vals, lo, hi):
            color = COLORS.get(s["group"], "#444")
            if v is None:
                c = cells.get((w["key"], s["key"]), {})
                serves = s.get("serves") if s.get("serves") is not None else (
                    [k for k in ("W1", "W1b", "W2", "W3", "W4")
                     if s["echo"] or k not in ("W1", "W1b")])
                why = ("n/a (no TLS)" if w.get("ref") == "nginx" else "n/a (HTTP only)") \
                    if w["key"] not in serves else (
                    "failed" if c.get("errors") else "missing")
                ax.text(top * 0.03, y, why, va="center", fontsize=8, color="#888", style="italic")
                continue
            if idle and s["buf"]:
                # The program's own buffers, hatched, then the library's part.
                buf = min(s["buf"], v)
                ax.barh(y, buf, color="white", edgecolor=color, hatch="///", height=0.7)
                ax.barh(y, v - buf, left=buf, color=color, height=0.7)
            else:
                ax.barh(y, v, color=color, height=0.7)
            if a is not None and b is not None and b > a:
                ax.plot([a, b], [y, y], color="black", lw=1)
                ax.plot([a, a], [y - 0.15, y + 0.15], color="black", lw=1)
                ax.plot([b, b], [y - 0.15, y + 0.15], color="black", lw=1)
            text = f"{v:,.0f}" if v >= 100 else f"{v:.2f}" if v < 10 else f"{v:.1f}"
            ratio = cells.get((w["key"], s["key"]), {}).get("ratio")
            if not idle and ratio and s["key"] != w.get("ref", "c"):
                text += f"  ({ratio['median']:.2f}x)"
            ax.text(max(b or v, v) + top * 0.02, y, text, va="center", fontsize=8)
        ref = w.get("ref", "c")
        base = cells.get((w["key"], ref), {}).get(key)
        if base:
            ax.axvline(base["median"], color=COLORS["nginx" if ref == "nginx" else "c"], ls="--",
                       lw=1)
        ax.set_ylim(-0.7, len(servers) - 0.3)
        ax.set_yticks(ys)
        ax.set_yticklabels(labels, fontsize=9)
        ax.set_xlim(0, top * 1.4)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if idle:
            ax.set_title(f"{w['short']}: memory per idle connection, B\n(hatched: the program's own "
                         "buffer)", fontsize=10)
        else:
            ax.set_title(f"{w['short']}: server CPU {w['cpu_unit']}", fontsize=10)
    for j in range(n, rows * cols):
        ax = axes[j // cols][j % cols]
        ax.axis("off")
        cfg, env = d["config"], d["env"]
        used = []
        for s in servers:
            if s["group"] not in used:
                used.append(s["group"])
        handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS[g]) for g in used]
        ax.legend(handles, [GROUP_NAMES[g] for g in used], loc="upper left", frameon=False, fontsize=9)
        info = (f"Lower is better. Bars: median of {cfg['rounds']}\nround(s), whiskers: lowest to "
                f"highest;\ndashed: C epoll (TLS: nginx).\n\n{env.get('cpu', '')}, {env.get('cpus')} CPUs\n"
                "servers on CPU 0"
                + (" (2-worker\nmulticore ones: CPUs 0 and 1)"
                   if any(s.get("workers", 1) > 1 for s in servers) else "")
                + ",\nload generator on CPU 1\n"
                + f"{env.get('date', '')}"
                + ("\nquick mode: not for comparison" if cfg.get("quick") else ""))
        ax.text(0.0, 0.45, info, transform=ax.transAxes, va="top", fontsize=9)
    fig.suptitle("sock against its peers: the server's cost per operation (lower is better)", fontsize=13,
                 fontweight="bold")
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
