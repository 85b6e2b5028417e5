"""Loss curves as a PNG (matplotlib, Agg: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_curves(curves: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """One line per run for training loss, markers for validation loss at each evaluation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for i, (label, curve) in enumerate(curves.items()):
        color = f"C{i}"
        train = curve["train_loss"]
        ax.plot(range(1, len(train) + 1), train, color=color, lw=1.0, alpha=0.85,
                label=f"{label} train")
        val = curve.get("val") or []
        if val:
            ax.plot([v["step"] for v in val], [v["val_loss"] for v in val], "o--",
                    color=color, ms=4, lw=0.8, label=f"{label} val")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy per word token (nats)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
