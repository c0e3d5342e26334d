"""results.md (a table per dataset, languages high- to low-resource) and PNG plots from results.json."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .._io import atomic_write

# Languages from high- to low-resource (by general and medical text available), then any others A-Z.
LANGUAGE_ORDER = ("en", "es", "fr", "de", "zh", "ja", "it", "nl", "pt", "ru", "ko", "tr", "fi", "th", "nna", "tw",
                  "dtp")
TABLE_METRICS = (("accuracy@1", "acc@1"), ("lenient@1", "lenient@1"), ("recall@1", "R@1"), ("recall@5", "R@5"),
                 ("recall@10", "R@10"), ("recall@64", "R@64"), ("mrr", "MRR"))


def order_languages(langs) -> list[str]:
    """High-resource languages first, unlisted ones (A-Z) before the very-low-resource tail (nna, tw, dtp)."""
    head, tail = LANGUAGE_ORDER[:-3], LANGUAGE_ORDER[-3:]
    langs = set(langs)
    return ([lang for lang in head if lang in langs] + sorted(langs - set(LANGUAGE_ORDER))
            + [lang for lang in tail if lang in langs])


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def _runs_of(results: dict, dataset: str, pipelines: list[str]) -> dict[str, dict]:
    return {p: results["runs"][f"{dataset}/{p}"] for p in pipelines if f"{dataset}/{p}" in results["runs"]}


def dataset_table(results: dict, dataset: str, pipelines: list[str]) -> str:
    """Rows = languages (then all), columns = pipelines x metrics present in the runs."""
    runs = _runs_of(results, dataset, pipelines)
    if not runs:
        return "_no finished runs_\n"
    metrics = [(k, short) for k, short in TABLE_METRICS if any(k in r["metrics"] for r in runs.values())]
    machine = set(results.get("datasets", {}).get(dataset, {}).get("machine_translated", []))
    langs = order_languages({lang for r in runs.values() for lang in r["per_language"]})
    header = ["language", "n"] + [f"{p} {short}" for p in runs for _, short in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def row(label, n, figures_by_pipeline):
        cells = [label, str(n)]
        for p in runs:
            figs = figures_by_pipeline.get(p) or {}
            cells += [_fmt(figs.get(k)) for k, _ in metrics]
        lines.append("| " + " | ".join(cells) + " |")

    for lang in langs:
        label = f"{lang} (machine)" if lang in machine else lang
        n = next((r["per_language"][lang].get("n") for r in runs.values() if lang in r["per_language"]), "")
        row(label, n, {p: r["per_language"].get(lang) for p, r in runs.items()})
    if len(langs) != 1:
        row("**all**", next(iter(runs.values()))["n_mentions"], {p: r["metrics"] for p, r in runs.items()})
    return "\n".join(lines) + "\n"


def timing_table(results: dict, dataset: str, pipelines: list[str]) -> str:
    runs = _runs_of(results, dataset, pipelines)
    lines = ["| pipeline | index names | index build s | link s | mentions/s | peak RSS MiB |",
             "|---|---|---|---|---|---|"]
    for p, r in runs.items():
        t = r["timing"]
        build = t["index_build_s"]
        if t.get("index_reused_from"):
            build = f"{build} (reused from {t['index_reused_from']})"
        lines.append(f"| {p} | {r['terminology']['names']} | {build} | {t['link_s']} | "
                     f"{t['mentions_per_s']} | {t['peak_rss_mb']} |")
    return "\n".join(lines) + "\n"


PAIRED_SHUFFLES = 10_000


def paired_table(results: dict, dataset: str, pipelines: list[str], baseline: str) -> str:
    """Each pipeline against ``baseline`` on the same gold mentions: acc@1 and MRR differences with two-sided
    approximate-randomization p-values, and the mentions won / lost at acc@1; per language, then all."""
    from ..eval.documents import compare_ranks
    from ..eval.stats import format_p

    runs = _runs_of(results, dataset, pipelines)
    if baseline not in runs or len(runs) < 2:
        return ""
    others = [p for p in runs if p != baseline]
    lines = [f"Paired against `{baseline}` (approximate randomization, {PAIRED_SHUFFLES:,} shuffles, seed 0; "
             "won / lost = mentions whose top prediction turned right / wrong):", "",
             "| pipeline | language | n | Δ acc@1 | p | won / lost | Δ MRR | p |", "|---|---|---|---|---|---|---|---|"]
    base_ranks = runs[baseline].get("gold_ranks")
    for p in others:
        ranks = runs[p].get("gold_ranks")
        if not base_ranks or not ranks or set(ranks) != set(base_ranks):
            lines.append(f"| {p} | – | – | no per-mention ranks in both runs (re-run them) | | | | |")
            continue
        langs = order_languages(ranks)
        groups = [(lang, [lang]) for lang in langs] + ([("**all**", langs)] if len(langs) > 1 else [])
        for label, group in groups:
            a = np.concatenate([base_ranks[g] for g in group]).astype(np.int64)
            b = np.concatenate([ranks[g] for g in group]).astype(np.int64)
            if len(a) != len(b):
                lines.append(f"| {p} | {label} | – | the runs hold different mentions (re-run them) | | | | |")
                continue
            c = compare_ranks(a, b, "randomization", n_resamples=PAIRED_SHUFFLES)
            acc, mrr = c["accuracy@1"], c["mrr"]
            lines.append(f"| {p} | {label} | {len(a)} | {acc['delta']:+.4f} | {format_p(acc['p_value'])} | "
                         f"{acc['won']} / {acc['lost']} | {mrr['delta']:+.4f} | {format_p(mrr['p_value'])} |")
    return "\n".join(lines) + "\n"


def write_report(results: dict, config, path: Path) -> None:
    """results.md: what ran where, then per dataset its table, timings and what the builder dropped."""
    m = results.get("machine", {})
    git = results.get("git", {})
    pipelines = [p.name for p in config.pipelines]
    out = [f"# Benchmark `{results['name']}`", ""]
    if config.description:
        out += [config.description.strip(), ""]
    out += [
        f"Config: `{results['config_path']}` · xnorm {results.get('xnorm_version')} · commit "
        f"`{(git.get('commit') or 'unknown')[:12]}`{' (uncommitted changes)' if git.get('dirty') else ''} · "
        f"updated {results.get('updated')}",
        f"Machine: {m.get('cpu_model')}, {m.get('cores_usable')} usable cores, {m.get('ram_gib')} GiB RAM, "
        f"torch {m.get('torch')} ({m.get('torch_threads')} threads), Python {m.get('python')}.",
        "",
        "Mention level over gold mentions: acc@1 = accuracy of the top prediction (equal to R@1 by definition), "
        "lenient@1 = the top prediction is a gold concept or its direct is_a parent or child (terminologies with a "
        "hierarchy only), R@k = a gold id among the top k, MRR = mean reciprocal rank of the first hit (0 when none "
        f"in the top {max(results.get('ks', [64]))}). Peak RSS is the process high-water mark when the run ended.",
        "",
    ]
    for p in config.pipelines:
        if p.description:
            out.append(f"- **{p.name}**: {p.description}")
    out.append("")
    for entry in config.datasets:
        info = results.get("datasets", {}).get(entry.name, {})
        out += [f"## {entry.name}", ""]
        if info:
            out.append(f"Dataset `{info['dataset']}`, {info['documents']} documents, {info['mentions']} mentions"
                       f", ids {info.get('db_name')}; options `{info.get('options')}`.")
            for spec, t in info.get("index_terminology", {}).items():
                extra = f", of which {t['extra_names_added']} in-language names added from the index half" \
                    if t.get("extra_names_added") else ""
                out.append(f"Index terminology `{spec}`: {t['names']} names, {t['concepts']} concepts{extra}.")
            langs = info.get("metadata", {}).get("languages")
            if isinstance(langs, dict):
                dropped = {k: v.get("dropped_obsolete", 0) for k, v in langs.items() if v.get("dropped_obsolete")}
                if dropped:
                    out.append(f"Dropped (obsolete HPO id with no replacement in hp.obo): {dropped}.")
            out.append("")
        out += [dataset_table(results, entry.name, pipelines), ""]
        if config.baseline:
            out += [paired_table(results, entry.name, pipelines, config.baseline), ""]
        out += [timing_table(results, entry.name, pipelines), ""]
    with atomic_write(path) as f:
        f.write("\n".join(out))


def write_plots(results: dict, config, out: Path) -> str | None:
    """recall@k curves per language and acc@1 bars per language, one PNG each per dataset.

    Returns a notice when matplotlib is missing (plots are then skipped; ``pip install xnorm[bench]``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: plots skipped (pip install 'xnorm[bench]')."
    pipelines = [p.name for p in config.pipelines]
    ks = sorted(results.get("ks", []))
    for entry in config.datasets:
        runs = _runs_of(results, entry.name, pipelines)
        if not runs:
            continue
        langs = order_languages({lang for r in runs.values() for lang in r["per_language"]})
        # recall@k: one panel per language, one line per pipeline.
        cols = min(4, len(langs))
        rows = -(-len(langs) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharey=True)
        for ax, lang in zip(axes.flat, langs):
            for p, r in runs.items():
                figs = r["per_language"].get(lang) or {}
                pts = [(k, figs[f"recall@{k}"]) for k in ks if f"recall@{k}" in figs]
                if pts:
                    ax.plot(*zip(*pts), marker="o", ms=3, label=p)
            ax.set_xscale("log", base=2)
            ax.set_xticks(ks, [str(k) for k in ks], fontsize=7)
            ax.minorticks_off()
            ax.set_title(f"{lang} (n={next((r['per_language'][lang]['n'] for r in runs.values() if lang in r['per_language']), '?')})",
                         fontsize=9)
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(langs):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.supxlabel("k")
        fig.supylabel("recall@k")
        fig.suptitle(f"{entry.name}: recall@k per language")
        fig.tight_layout()
        fig.savefig(out / f"{entry.name}-recall-at-k.png", dpi=110)
        plt.close(fig)
        # acc@1: grouped bars, languages high- to low-resource.
        fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(langs) * max(1, len(runs)) / 2 + 2), 3.2))
        width = 0.8 / len(runs)
        for i, (p, r) in enumerate(runs.items()):
            vals = [(r["per_language"].get(lang) or {}).get("accuracy@1", 0.0) for lang in langs]
            ax.bar([x + i * width for x in range(len(langs))], vals, width, label=p)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(langs))], langs)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy@1")
        ax.set_title(f"{entry.name}: acc@1 per language (high- to low-resource)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"{entry.name}-acc1.png", dpi=110)
        plt.close(fig)
    return None
