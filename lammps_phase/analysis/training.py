"""The report written beside a trained checkpoint: held-out accuracy, where it fails, and how training went.

A single accuracy number hides what matters for shocks: which phases are confused with which, and whether
accuracy collapses at high temperature or pressure (where thermal noise blurs the structures). So the report
breaks held-out accuracy down by class, by temperature bin and by pressure bin, next to the confusion
matrix and the loss curves, as JSON (for tools and tests) and as markdown with figures (for people).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from lammps_phase.atomic_write import atomic_paths
from lammps_phase.errors import LammpsPhaseError

__all__ = ["write_training_report", "accuracy_by_bins", "confusion_counts", "nice_bin_width"]

OTHER = "other"  # column name for predictions below the confidence threshold (label -1)
_TEMPERATURE_WIDTHS = (25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0)  # K
_PRESSURE_WIDTHS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)  # GPa
_MAX_BINS = 12  # more rows than this make the tables and plots unreadable
_HISTORY_KEYS = ("train_loss", "train_ce", "train_rot", "val_loss", "val_accuracy", "batch_ce")


# ----------------------------------------------------------------------------------------------------------
# numbers


def nice_bin_width(values: np.ndarray, widths: Sequence[float], max_bins: int = _MAX_BINS) -> float:
    """The smallest round width from `widths` that covers the values' range in at most max_bins bins."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float(widths[0])
    for width in widths:
        lo = math.floor(finite.min() / width) * width
        if (finite.max() - lo) / width <= max_bins:
            return float(width)
    return float(widths[-1])


def _bin_edges(values: np.ndarray, width: float) -> np.ndarray:
    """Edges at multiples of width, so bins read as round numbers (250–500 K, not 263–513 K)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.array([0.0, width])
    lo = math.floor(finite.min() / width) * width
    # The last bin is closed on the right, so 300–3000 K in 250 K bins ends with 2750–3000 K, not 3000–3250 K.
    count = max(1, int(math.ceil((finite.max() - lo) / width - 1e-9)))
    return lo + width * np.arange(count + 1)


def confusion_counts(true_labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C+1) counts: row = true class, column = predicted class, last column = 'other' (prediction -1)."""
    columns = np.where(predicted < 0, num_classes, predicted)
    flat = true_labels * (num_classes + 1) + columns
    return np.bincount(flat, minlength=num_classes * (num_classes + 1)).reshape(num_classes, num_classes + 1)


def accuracy_by_bins(values: np.ndarray, correct: np.ndarray, true_labels: np.ndarray, classes: Sequence[str],
                     width: float) -> dict[str, Any]:
    """Accuracy and support per bin of `values`, overall and per true class; empty bins give None."""
    edges = _bin_edges(values, width)
    finite = np.isfinite(values)
    index = np.clip(np.searchsorted(edges, values[finite], side="right") - 1, 0, len(edges) - 2)
    nbins = len(edges) - 1

    def rows(mask: np.ndarray) -> tuple[list[float | None], list[int]]:
        support = np.bincount(index[mask], minlength=nbins)
        hits = np.bincount(index[mask], weights=correct[finite][mask].astype(float), minlength=nbins)
        acc = [float(h / s) if s else None for h, s in zip(hits, support)]
        return acc, [int(s) for s in support]

    overall_acc, overall_support = rows(np.ones(index.shape, bool))
    per_class = {}
    for c, name in enumerate(classes):
        acc, support = rows(true_labels[finite] == c)
        per_class[name] = {"accuracy": acc, "support": support}
    return {
        "width": float(width),
        "edges": [float(e) for e in edges],
        "accuracy": overall_acc,
        "support": overall_support,
        "per_class": per_class,
        "unbinned": int((~finite).sum()),
    }


def _validated(classes: Sequence[str], true_labels: np.ndarray, predicted: np.ndarray, temperature: np.ndarray,
               pressure: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    num = len(classes)
    if num == 0:
        raise LammpsPhaseError("write_training_report needs at least one class name")
    true_labels = np.asarray(true_labels).reshape(-1)
    predicted = np.asarray(predicted).reshape(-1)
    temperature = np.asarray(temperature, dtype=np.float64).reshape(-1)
    pressure = np.asarray(pressure, dtype=np.float64).reshape(-1)
    n = len(true_labels)
    if n == 0:
        raise LammpsPhaseError("write_training_report got no test atoms; evaluate on a non-empty held-out set")
    shapes = {"predicted": len(predicted), "temperature": len(temperature), "pressure": len(pressure)}
    bad = {name: size for name, size in shapes.items() if size != n}
    if bad:
        raise LammpsPhaseError(
            f"write_training_report: true_labels has {n} atoms but "
            + ", ".join(f"{name} has {size}" for name, size in bad.items())
            + "; pass one value per test atom"
        )
    for name, labels in (("true_labels", true_labels), ("predicted", predicted)):
        if labels.dtype.kind not in "iu" and not np.all(labels == np.round(labels)):
            raise LammpsPhaseError(f"write_training_report: {name} must hold integer class indices")
    true_labels = true_labels.astype(np.int64)
    predicted = predicted.astype(np.int64)
    if true_labels.min() < 0 or true_labels.max() >= num:
        raise LammpsPhaseError(
            f"write_training_report: true_labels must lie in 0..{num - 1} (one per class name), "
            f"got {true_labels.min()}..{true_labels.max()}"
        )
    if predicted.min() < -1 or predicted.max() >= num:
        raise LammpsPhaseError(
            f"write_training_report: predicted must lie in -1..{num - 1} (-1 = other), "
            f"got {predicted.min()}..{predicted.max()}"
        )
    return true_labels, predicted, temperature, pressure


def _jsonable(value: Any) -> Any:
    """numpy scalars/arrays and NaN → plain JSON (NaN and inf become null: JSON has no such numbers)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


# ----------------------------------------------------------------------------------------------------------
# the report


def write_training_report(
    outdir: str | Path,
    classes: list[str],
    *,
    true_labels: np.ndarray,
    predicted: np.ndarray,
    temperature: np.ndarray,
    pressure: np.ndarray,
    history: dict,
    extra: dict | None = None,
    title: str = "",
    temperature_bin_width: float | None = None,
    pressure_bin_width: float | None = None,
) -> dict:
    """Write report.json, report.md, confusion.png, accuracy_vs_temperature.png, loss_curves.png; return the JSON.

    true_labels/predicted: per held-out atom (predicted -1 = "other", below the confidence threshold, counted as
    wrong). temperature (K) / pressure (GPa): per atom, for the binned accuracies; bin widths default to the
    smallest round width giving at most 12 bins. history: the trainer's History.to_dict(). extra: anything else
    worth publishing (rotation agreement, second-potential accuracy, dropped classes), stored under "extra".
    """
    classes = [str(c) for c in classes]
    true_labels, predicted, temperature, pressure = _validated(classes, true_labels, predicted, temperature, pressure)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)

    correct = true_labels == predicted
    counts = confusion_counts(true_labels, predicted, len(classes))
    support = counts.sum(axis=1)
    per_class = {
        name: {
            "accuracy": float(counts[c, c] / support[c]) if support[c] else None,
            "support": int(support[c]),
            "predicted_other": int(counts[c, -1]),
        }
        for c, name in enumerate(classes)
    }
    t_width = temperature_bin_width or nice_bin_width(temperature, _TEMPERATURE_WIDTHS)
    p_width = pressure_bin_width or nice_bin_width(pressure, _PRESSURE_WIDTHS)
    hist = {key: [float(v) for v in history.get(key, []) or []] for key in _HISTORY_KEYS}
    hist["best_epoch"] = int(history.get("best_epoch", -1))
    hist["seconds"] = float(history.get("seconds", 0.0))
    report = {
        "title": title,
        "classes": classes,
        "n_atoms": int(len(true_labels)),
        "overall_accuracy": float(correct.mean()),
        "other_fraction": float((predicted < 0).mean()),
        "per_class": per_class,
        "confusion": {"rows": classes, "columns": classes + [OTHER], "counts": counts.tolist()},
        "per_temperature": accuracy_by_bins(temperature, correct, true_labels, classes, t_width),
        "per_pressure": accuracy_by_bins(pressure, correct, true_labels, classes, p_width),
        "history": hist,
        "extra": _jsonable(dict(extra or {})),
        "figures": {
            "confusion": "confusion.png",
            "accuracy_vs_temperature": "accuracy_vs_temperature.png",
            "loss_curves": "loss_curves.png",
        },
    }
    report = _jsonable(report)
    names = ["report.json", "confusion.png", "accuracy_vs_temperature.png", "loss_curves.png", "report.md"]
    with atomic_paths([outdir / name for name in names]) as (json_tmp, confusion, per_t, loss, md_tmp):
        json_tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        _plot_confusion(confusion, counts, classes, title)
        _plot_accuracy_vs_temperature(per_t, report["per_temperature"], classes, title)
        _plot_loss_curves(loss, hist, title)
        md_tmp.write_text(_markdown(report), encoding="utf-8")
    return report


# ----------------------------------------------------------------------------------------------------------
# markdown


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100.0 * value:.1f} %"


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_fmt_value(v) for v in value) if value else "(none)"
    if value is None:
        return "–"
    return str(value)


def _binned_table(section: Mapping[str, Any], classes: Sequence[str], unit: str, digits: int) -> list[str]:
    edges = section["edges"]
    header = f"| {unit} | atoms | all | " + " | ".join(classes) + " |"
    lines = [header, "|" + "---|" * (3 + len(classes))]
    for b in range(len(edges) - 1):
        if section["support"][b] == 0:
            continue
        cells = [_pct(section["per_class"][name]["accuracy"][b]) for name in classes]
        lines.append(
            f"| {edges[b]:.{digits}f}–{edges[b + 1]:.{digits}f} | {section['support'][b]} | "
            f"{_pct(section['accuracy'][b])} | " + " | ".join(cells) + " |"
        )
    return lines


def _extra_lines(extra: Mapping[str, Any]) -> list[str]:
    """Scalars and lists as a key: value list; dicts of numbers as two-column tables; other dicts as nested lists."""
    lines: list[str] = []
    scalars = {k: v for k, v in extra.items() if not isinstance(v, Mapping)}
    for key, value in scalars.items():
        lines.append(f"- **{key}**: {_fmt_value(value)}")
    for key, value in extra.items():
        if not isinstance(value, Mapping):
            continue
        lines += ["", f"**{key}**", ""]
        if value and all(isinstance(v, (int, float)) or v is None for v in value.values()):
            lines += ["| name | value |", "|---|---|"]
            lines += [f"| {k} | {_fmt_value(v)} |" for k, v in value.items()]
        else:
            lines += [f"- {k}: {json.dumps(v) if isinstance(v, Mapping) else _fmt_value(v)}" for k, v in value.items()]
    return lines


def _markdown(report: Mapping[str, Any]) -> str:
    classes = report["classes"]
    hist = report["history"]
    lines = [f"# Training report{': ' + report['title'] if report['title'] else ''}", ""]
    lines.append(
        f"Held-out accuracy **{_pct(report['overall_accuracy'])}** on {report['n_atoms']} atoms "
        f"({_pct(report['other_fraction'])} labelled *other*, counted as wrong)."
    )
    if hist["val_accuracy"]:
        best = hist["best_epoch"]
        epochs = len(hist["val_accuracy"])
        best_text = (f"best validation epoch {best + 1} (validation accuracy {_pct(hist['val_accuracy'][best])})"
                     if 0 <= best < epochs else "no best epoch recorded")
        lines.append(f"Training: {epochs} epochs in {hist['seconds']:.0f} s; {best_text}.")
    lines += ["", "## Per class", "", "| class | atoms | accuracy | labelled other |", "|---|---|---|---|"]
    for name in classes:
        row = report["per_class"][name]
        lines.append(f"| {name} | {row['support']} | {_pct(row['accuracy'])} | {row['predicted_other']} |")
    columns = report["confusion"]["columns"]
    lines += ["", "## Confusion matrix (rows: true, columns: predicted)", "",
              "| true \\ predicted | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name, row in zip(classes, report["confusion"]["counts"]):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "![confusion matrix](confusion.png)", ""]
    t = report["per_temperature"]
    lines += [f"## Accuracy by temperature ({t['width']:g} K bins)", ""]
    lines += _binned_table(t, classes, "T (K)", 0)
    lines += ["", "![accuracy vs temperature](accuracy_vs_temperature.png)", ""]
    p = report["per_pressure"]
    lines += [f"## Accuracy by pressure ({p['width']:g} GPa bins)", ""]
    lines += _binned_table(p, classes, "P (GPa)", 1)
    lines += ["", "## Training curves", "", "![loss curves](loss_curves.png)", ""]
    if report["extra"]:
        lines += ["## Further measurements", ""] + _extra_lines(report["extra"]) + [""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_confusion(path: Path, counts: np.ndarray, classes: Sequence[str], title: str) -> None:
    """Row-normalised (recall per true class), annotated with percentage and count; 'other' only if used."""
    plt = _pyplot()
    shown = counts if counts[:, -1].any() else counts[:, :-1]
    columns = list(classes) + ([OTHER] if shown.shape[1] > len(classes) else [])
    rows = shown.sum(axis=1, keepdims=True)
    fraction = np.divide(shown, rows, out=np.zeros(shown.shape, float), where=rows > 0)
    size = max(4.5, 0.9 * len(columns) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(fraction, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    font = 9 if len(columns) <= 6 else 7
    for i in range(shown.shape[0]):
        for j in range(shown.shape[1]):
            colour = "white" if fraction[i, j] > 0.6 else "black"
            ax.text(j, i, f"{100 * fraction[i, j]:.1f}%\n{shown[i, j]}", ha="center", va="center",
                    color=colour, fontsize=font)
    ax.set_xticks(range(len(columns)), columns, rotation=35, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion (row-normalised){' — ' + title if title else ''}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_accuracy_vs_temperature(path: Path, section: Mapping[str, Any], classes: Sequence[str], title: str) -> None:
    plt = _pyplot()
    edges = np.asarray(section["edges"])
    centres = 0.5 * (edges[:-1] + edges[1:])

    def as_array(values: Sequence[float | None]) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in values], dtype=float)

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    markers = "osD^v<>pPX*h"
    for c, name in enumerate(classes):
        acc = as_array(section["per_class"][name]["accuracy"])
        if np.isfinite(acc).any():
            ax.plot(centres, acc, marker=markers[c % len(markers)], label=name)
    ax.plot(centres, as_array(section["accuracy"]), color="black", linestyle="--", marker=".", label="all")
    ax.set_xlabel(f"temperature (K), {section['width']:g} K bins")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2 if len(classes) > 5 else 1, loc="best")
    ax.set_title(f"Accuracy vs temperature{' — ' + title if title else ''}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_loss_curves(path: Path, hist: Mapping[str, Any], title: str) -> None:
    """Per-epoch losses on the left axis (log scale when positive), validation accuracy on a twin axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    epochs = max((len(hist[k]) for k in _HISTORY_KEYS if k != "batch_ce"), default=0)
    batch = np.asarray(hist["batch_ce"], dtype=float)
    if batch.size and epochs:
        # Batch b of B spread evenly over epochs 1..E, so it lines up with the epoch means.
        x = 0.5 + epochs * (np.arange(batch.size) + 0.5) / batch.size
        ax.plot(x, batch, color="tab:gray", alpha=0.25, linewidth=0.8, label="train CE (per batch)")
    styles = {"train_loss": ("tab:blue", "-", "train loss"), "train_ce": ("tab:orange", "-", "train CE"),
              "train_rot": ("tab:green", "-", "train rotation term"), "val_loss": ("tab:red", "--", "validation loss")}
    for key, (colour, style, label) in styles.items():
        values = np.asarray(hist[key], dtype=float)
        if values.size and np.any(values != 0):  # phi = 1 training has an all-zero rotation term: nothing to show
            ax.plot(np.arange(1, values.size + 1), values, color=colour, linestyle=style, marker="o", markersize=3,
                    label=label)
    positive = [np.asarray(hist[k]) for k in ("train_loss", "train_ce", "val_loss", "batch_ce") if len(hist[k])]
    if positive and all(np.all(v > 0) for v in positive):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if hist["val_accuracy"]:
        twin = ax.twinx()
        acc = np.asarray(hist["val_accuracy"], dtype=float)
        line = twin.plot(np.arange(1, acc.size + 1), acc, color="black", marker="s", markersize=3,
                         label="validation accuracy")
        twin.set_ylabel("validation accuracy")
        twin.set_ylim(min(0.0, float(np.nanmin(acc))), 1.02)
        handles += line
        labels += ["validation accuracy"]
    best = hist["best_epoch"]
    if best >= 0:
        ax.axvline(best + 1, color="black", linestyle=":", linewidth=1)
        ax.text(best + 1, 1.0, " best", transform=ax.get_xaxis_transform(), va="top", fontsize=8)
    if not handles:
        ax.text(0.5, 0.5, "no training history recorded", transform=ax.transAxes, ha="center", va="center")
    else:  # below the axes, so it hides no curve
        fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=3, frameon=False)
    ax.set_title(f"Training curves{' — ' + title if title else ''}")
    fig.tight_layout(rect=(0.0, 0.12, 1.0, 1.0))
    fig.savefig(path, dpi=120)
    plt.close(fig)
