"""Plain-text tables of evaluation results (what ``xnorm evaluate`` prints without ``--json``)."""
from __future__ import annotations

from typing import Sequence

from .entity import MODES
from .ranking import metric_names


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned with two spaces between them; the first column left-aligned, the others right-aligned."""
    table = [list(header)] + [list(r) for r in rows]
    widths = [max(len(r[j]) for r in table) for j in range(len(header))]
    lines = []
    for r in table:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _num(x: float) -> str:
    return f"{x:.4f}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _ks_of(result: dict) -> list[int]:
    return [int(k.split("@", 1)[1]) for k in result if k.startswith("recall@")]


def format_report(result: dict) -> str:
    """The mention-level, entity-level, per-group and comparison tables of one evaluation result."""
    parts = []
    names = metric_names(_ks_of(result))
    ci = result.get("ci")
    header = ["metric", "value"] + ([f"{int(ci['confidence'] * 100)}% CI"] if ci else [])
    rows = []
    for name in names:
        row = [name, _num(result[name])]
        if ci:
            row.append(f"[{_num(ci[name][0])}, {_num(ci[name][1])}]")
        rows.append(row)
    parts.append(f"mention level: {_count(result['n_mentions'], 'gold mention')} with an id in "
                 f"{_count(result['n_documents'], 'document')} ({result['n_nil_gold']} NIL left out), "
                 f"up to {_count(result['max_predictions'], 'prediction')} each")
    parts.append(format_table(header, rows))

    h = result.get("hierarchy")
    if h:
        levels = "any number of" if h["max_levels"] is None else str(h["max_levels"])
        n = max(h["n_mentions"], 1)
        parts.append(f"\nhierarchy: top-1 answers within {levels} is_a level(s) of a gold concept "
                     f"({h['n_gold_in_hierarchy']} of {h['n_mentions']} gold mentions have an id in the hierarchy)")
        parts.append(format_table(["top-1 answer", "mentions", "share"], [
            ["exact (accuracy@1)", str(round(h["accuracy@1"] * h["n_mentions"])), _num(h["accuracy@1"])],
            ["finer than gold (descendant)", str(h["finer"]), _num(h["finer"] / n)],
            ["coarser than gold (ancestor)", str(h["coarser"]), _num(h["coarser"] / n)],
            ["lenient@1 (any of these)", str(round(h["lenient@1"] * h["n_mentions"])), _num(h["lenient@1"])],
        ]))

    rows = []
    for mode in MODES:
        if mode not in result:
            continue
        m = result[mode]
        for avg in ("micro", "macro"):
            rows.append([f"{mode} {avg}", _num(m[avg]["precision"]), _num(m[avg]["recall"]), _num(m[avg]["f1"])])
    if rows:
        parts.append("\nentity level (top-1 prediction per entity)")
        parts.append(format_table(["match", "precision", "recall", "f1"], rows))

    for key, groups in (result.get("per") or {}).items():
        lenient = ["lenient@1"] if any("lenient@1" in v for v in groups.values()) else []
        short = ["acc@1"] + [f"R@{k}" for k in _ks_of(result)] + ["mrr"] + lenient
        rows = [[g or "(none)"] + [_num(v[name]) for name in names + lenient] + [str(v["n_mentions"])]
                for g, v in groups.items()]
        parts.append(f"\nper {key}")
        parts.append(format_table([key] + short + ["n"], rows))

    comp = result.get("comparison")
    if comp:
        rows = []
        for metric in ("accuracy@1", "lenient@1", "mrr"):
            if metric in comp:
                c = comp[metric]
                won_lost = f"{c['won']} / {c['lost']}" if "won" in c else ""
                rows.append([metric, _num(c["baseline"]), _num(c["run"]), f"{c['delta']:+.4f}", f"{c['p_value']:.4f}",
                             won_lost])
        parts.append(f"\npaired {comp['test']} test against {comp['baseline']} (seed {comp['seed']})")
        parts.append(format_table(["metric", "baseline", "run", "delta", "p", "won / lost"], rows))
    return "\n".join(parts)
