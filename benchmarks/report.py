"""Turn a benchmark results dict into results.json, results.md (tables) and rtf.png (plots)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _spread(summary: dict | None, digits: int = 3) -> str:
    if not summary:
        return "-"
    return f"{summary['median']:.{digits}f} ({summary['min']:.{digits}f}-{summary['max']:.{digits}f})"


def _load(row: dict) -> str:
    loads = [r["load"][0] for r in row.get("reps", [])]
    return "-" if not loads else f"{min(loads):.1f}-{max(loads):.1f}"


def _graphs(row: dict) -> str:
    g = row.get("graph_ms_per_block_mean", {})
    return " / ".join(_f(g.get(k), 0) for k in ("pitch", "content", "generator"))


def _contexts(row: dict) -> str:
    """Encoder / generator left context of a streaming row in seconds (one number when equal)."""
    enc, gen = row.get("context_s"), row.get("generator_context_s", row.get("context_s"))
    return _f(enc, 2) if gen == enc else f"{_f(enc, 2)} / {_f(gen, 2)}"


def machine_lines(results: dict) -> list[str]:
    m = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    return [
        f"- CPU: {m['cpu']}, {m['logical_cores']} logical cores, {m['memory_gib']} GiB RAM ({m['platform']})",
        f"- Python {m['python']}; {versions}; code at git {_commits(results)} (plus uncommitted work of others)",
        f"- Run {results['started_utc']} to {results.get('finished_utc', '?')}; load average at start "
        f"{results['load_at_start']}, at end {results.get('load_at_end', '?')} (the CPU was shared)",
        "- Threads: torch `set_num_threads` = ONNX Runtime intra-op threads = the `threads` column "
        f"(default of a run: {results['settings']['threads']})",
        *[f"- Bundle `{size}`: exported by {info.get('tool', '?')} {info.get('svc_toolkit', '')}, graph passes: "
          f"{info.get('graph_passes') or 'none'}" for size, info in sorted(results.get("bundles", {}).items())],
    ]


def _commits(results: dict) -> str:
    """The commit of the run, or the first..last when merged sections ran at different commits."""
    commits = [r.get("git_commit") for r in results.get("runs", []) if r.get("git_commit")]
    commits = list(dict.fromkeys(commits)) or [results["machine"].get("git_commit") or "?"]
    return commits[0] if len(commits) == 1 else f"{commits[0]}..{commits[-1]}"


def markdown(results: dict) -> str:
    lines = ["# Benchmark results", "", *machine_lines(results), ""]
    for key, section in SECTIONS:
        if results.get(key):
            lines += section(results[key]) + [""]
    return "\n".join(lines)


def _throughput(rows: list[dict]) -> list[str]:
    lines = ["## Throughput (real-time factor = wall s / audio s; lower is faster)", "",
             "| size | threads | input s | impl | RTF median (min-max) | torch/ours ratio | CPU s per audio s | "
             "slowest stage | load (1 min) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        stages = r["stages_median_s"]
        slow = max(stages, key=stages.get) if stages else "-"
        share = stages[slow] / sum(stages.values()) if stages else 0
        lines.append(f"| {r['size']} | {r.get('threads', '-')} | {r['input_seconds']:.1f} | {r['impl']} | "
                     f"{_spread(r['rtf'])} | {_spread(r['ratio_torch_over_ours'], 2)} | "
                     f"{_f((r.get('cpu_per_audio_second') or {}).get('median'), 2)} | {slow} ({share:.0%}) | {_load(r)} |")
    lines += ["", "### Seconds per stage (median over repetitions)", ""]
    names: list[str] = []
    for r in rows:
        names += [k for k in r["stages_median_s"] if k not in names]
    lines += ["| size | threads | input s | impl | " + " | ".join(names) + " |",
              "|---|---|---|---|" + "---|" * len(names)]
    for r in rows:
        cells = " | ".join(_f(r["stages_median_s"].get(k), 2) for k in names)
        lines.append(f"| {r['size']} | {r.get('threads', '-')} | {r['input_seconds']:.1f} | {r['impl']} | {cells} |")
    return lines


def _batch(rows: list[dict]) -> list[str]:
    lines = ["## Batch scaling (files converted at once)", "",
             "| size | files | impl | audio s | wall s | x real time | load |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['files']} | {r['impl']} | {r['audio_seconds']:.1f} | {r['wall']:.2f} | "
                     f"{r['throughput_x_realtime']:.2f} | {r['load'][0]:.1f} |")
    return lines


def _streaming(rows: list[dict]) -> list[str]:
    lines = ["## Streaming (ours, `svc_runtime.StreamingConverter`)", "",
             "| size | context s (encoder / generator) | block ms | algorithmic latency ms | "
             "compute ms/block median | p95 | max | "
             "compute/block | keeps up | pitch / content / generator ms per block | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["compute_ms"]
        lines.append(f"| {r['size']} | {_contexts(r)} | {r['block_ms']:.0f} | {r['latency_ms']:.0f} | {c['median']:.1f} | "
                     f"{c['p95']:.1f} | {c['max']:.1f} | {r['rtf_median']:.2f} | "
                     f"{'yes' if r['keeps_up'] else 'no'} | {_graphs(r)} | {r['load'][0]:.1f} |")
    return lines


def _memory(rows: list[dict]) -> list[str]:
    lines = ["## Peak memory (one fresh process per row)", "",
             "| size | impl | input s | peak RSS MiB | RSS after load MiB | growth MiB | tracemalloc peak MiB | "
             "load |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['impl']} | {r['input_seconds']:.0f} | {r['peak_rss_mib']:.0f} | "
                     f"{r['rss_after_load_mib']:.0f} | {r['peak_rss_mib'] - r['peak_rss_before_convert_mib']:.0f} | "
                     f"{r['tracemalloc_peak_mib']:.1f} | {r['load'][0]:.1f} |")
    return lines


def _coldstart(rows: list[dict]) -> list[str]:
    lines = ["## Cold start (process start to the first converted second)", "",
             "| size | impl | to models loaded s | to first second s |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['impl']} | {_spread(r['to_models_loaded'], 2)} | "
                     f"{_spread(r['to_first_second'], 2)} |")
    return lines


def _tuning(rows: list[dict]) -> list[str]:
    lines = ["## ONNX Runtime session settings (ours)", "",
             "| size | variant | RTF median (min-max) | speed-up vs default | generator s | max abs diff | what |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['variant']} | {_spread(r['rtf'])} | {_spread(r['speedup_vs_default'], 2)} | "
                     f"{_f(r['stages_median_s'].get('generator'), 2)} | {r['max_abs_diff_vs_default']:.1e} | {r['description']} |")
    return lines


def _graphs_alone(rows: list[dict]) -> list[str]:
    lines = ["## Each graph alone: 1-D convolutions as 2-D (NCHWc), speed-up over the exported graph", "",
             "| size | graph | threads | speed-up median (min-max) | reps | max abs diff / output peak | load |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['graph']} | {r['threads']} | {_spread(r['speedup'], 2)} | {r['reps']} | "
                     f"{r['max_abs_diff']:.1e} / {r['output_peak']:.2f} | {r['load'][0]:.1f} |")
    return lines


SECTIONS = (("throughput", _throughput), ("batch", _batch), ("streaming", _streaming), ("memory", _memory),
            ("coldstart", _coldstart), ("tuning", _tuning), ("graphs", _graphs_alone))
"""Result key -> its markdown section, in the report's order."""


def plot_results(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    series: dict[tuple[str, str, object], list[tuple[float, float]]] = {}
    for r in results.get("throughput", []):
        key = (r["size"], r["impl"], r.get("threads", "-"))
        series.setdefault(key, []).append((r["input_seconds"], r["rtf"]["median"]))
    for (size, impl, threads), points in sorted(series.items(), key=str):
        # a length measured in several runs: every run a marker, the line through their median
        lengths = sorted({x for x, _ in points})
        line = [float(np.median([y for x, y in points if x == length])) for length in lengths]
        style = "--" if impl == "torch" else "-"
        drawn = left.plot(lengths, line, linestyle=style, label=f"{impl} ({size}, {threads} thr)")
        left.scatter(*zip(*points), color=drawn[0].get_color(), s=18, zorder=3)
    left.axhline(1.0, color="grey", linewidth=0.8)
    left.set_xlabel("input length (s)")
    left.set_ylabel("real-time factor (lower is faster)")
    left.set_title("Whole-file conversion (shared CPU: see load)")
    if series:
        left.legend(fontsize=7)
    streams: dict[tuple[str, float], list[tuple[float, float]]] = {}
    for r in results.get("streaming", []):
        streams.setdefault((r["size"], _contexts(r)), []).append((r["block_ms"], r["rtf_median"]))
    for (size, context), points in sorted(streams.items()):
        xs, ys = zip(*sorted(points))
        right.plot(xs, ys, marker="o", label=f"ours ({size}, context {context} s)")
    right.axhline(1.0, color="grey", linewidth=0.8)
    right.set_xscale("log")
    ticks = sorted({int(round(r["block_ms"])) for r in results.get("streaming", [])}) or [32, 64, 128, 256, 500]
    right.set_xticks(ticks, labels=[str(t) for t in ticks])
    right.minorticks_off()
    right.set_xlabel("block size (ms)")
    right.set_ylabel("compute time / block duration")
    right.set_title("Streaming (keeps up below 1)")
    if streams:
        right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(results: dict, out: Path, plot: bool = True, stem: str = "results") -> None:
    """<stem>.json, <stem>.md and (unless `plot` is False) <stem>_rtf.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (out / f"{stem}.md").write_text(markdown(results) + "\n", encoding="utf-8")
    if plot:
        plot_results(results, out / ("rtf.png" if stem == "results" else f"{stem}_rtf.png"))


LIST_SECTIONS = ("throughput", "batch", "streaming", "memory", "coldstart", "tuning", "graphs")


def merge(parts: list[dict]) -> dict:
    """One results dict from several runs (sections run as separate processes): lists concatenated,
    machine and settings from the first, start of the first, end of the last."""
    if not parts:
        raise ValueError("nothing to merge")
    merged = {k: v for k, v in parts[0].items() if k not in LIST_SECTIONS}
    merged["finished_utc"] = parts[-1].get("finished_utc")
    merged["load_at_end"] = parts[-1].get("load_at_end")
    merged["runs"] = [{"settings": p["settings"], "started_utc": p["started_utc"],
                       "finished_utc": p.get("finished_utc"), "git_commit": p["machine"].get("git_commit"),
                       "load_at_start": p.get("load_at_start")} for p in parts]
    bundles = {size: info for p in parts for size, info in p.get("bundles", {}).items()}
    if bundles:
        merged["bundles"] = bundles
    for section in LIST_SECTIONS:
        rows = [row for p in parts for row in p.get(section, [])]
        for p in parts:  # threads differ between runs: keep them on every row
            for row in p.get(section, []):
                row.setdefault("threads", p["settings"]["threads"])
        if rows:
            merged[section] = rows
    return merged


def main(argv: list[str] | None = None) -> None:
    """`python -m benchmarks.report OUT_DIR RUN_DIR...`: merge runs' results.json into OUT_DIR."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--stem", default="e2e", help="file names: STEM.json, STEM.md, STEM_rtf.png")
    args = parser.parse_args(argv)
    parts = [json.loads((d / "results.json").read_text(encoding="utf-8")) for d in args.runs]
    write_reports(merge(parts), args.out, plot=not args.no_plot, stem=args.stem)


if __name__ == "__main__":
    main()
