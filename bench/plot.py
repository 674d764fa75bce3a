"""Bar chart of ``bench/results/latest.json``: bulk texts/s and single-text p50 per runtime and model.

    .venv-ref/bin/python -m bench.plot bench/results/latest.json bench/results/latest.png
"""

from __future__ import annotations

import json
import sys

COLORS = {"ours": "#d62728", "onnxruntime": "#1f77b4", "sentence-transformers": "#ff7f0e", "tfhub-style": "#7f7f7f"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    src, dst = argv[0], argv[1]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = json.loads(open(src, encoding="utf-8").read())
    models = report["models"]
    fig, axes = plt.subplots(2, len(models), figsize=(5.5 * len(models), 7.5), squeeze=False)
    metrics = [("texts_per_s", f"bulk texts/s (batch {report.get('batch_size', 32)}, length-sorted) — higher is better"),
               ("single_p50_ms", "single text p50 latency, ms — lower is better")]  # fmt: skip
    for col, res in enumerate(models):
        names = list(res["runtimes"])
        for row, (key, title) in enumerate(metrics):
            ax = axes[row][col]
            values = [res["runtimes"][rt][key] for rt in names]
            bars = ax.bar(names, values, color=[COLORS.get(rt, "#2ca02c") for rt in names])
            if key == "texts_per_s":
                for rt, bar in zip(names, bars, strict=True):
                    lo, hi = res["runtimes"][rt]["texts_per_s_range"]
                    x = bar.get_x() + bar.get_width() / 2
                    ax.plot([x, x], [lo, hi], color="black", linewidth=1)
            ax.bar_label(bars, fmt="%.1f", fontsize=8)
            ax.set_title(f"{res['label']}\n{title}" if row == 0 else title, fontsize=9)
            ax.tick_params(axis="x", labelsize=8, rotation=15)
            ax.margins(y=0.15)
    m = report["machine"]
    fig.suptitle(f"bert2vec vs peers — {m['cpu']}, {m['cores']} cores, {report['started']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
