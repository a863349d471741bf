"""report.json and report.md: the accuracy diff, readable by people and by tools."""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from pathlib import Path

from .bundle import Bundle
from .compare import Comparison

REPORT_VERSION = 1
# Per-sample lists are kept in report.json (for plots) but not in the Markdown table.
SUMMARY_FIELDS = (
    "backend", "provider", "precision", "samples", "max_abs_diff", "mean_abs_diff",
    "max_rel_diff", "cosine_min", "cosine_mean", "top1_agreement", "top5_overlap",
    "nonfinite", "passed", "failures", "tolerance",
)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder and rename, so readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_report(bundle: Bundle) -> dict:
    path = bundle.report_path("json")
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("results"), list):
                return data
        except (OSError, json.JSONDecodeError):
            pass
    return {"report_version": REPORT_VERSION, "results": []}


def merge_results(report: dict, comparisons: list[Comparison], golden_names: list[str] | None = None) -> dict:
    """Replace results with the same (backend, provider, precision) key; keep the others."""
    keys = {(c.backend, c.provider, c.precision) for c in comparisons}
    kept = [r for r in report.get("results", [])
            if (r.get("backend"), r.get("provider"), r.get("precision")) not in keys]
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    new = []
    for c in comparisons:
        d = c.to_dict()
        d["verified_at"] = now
        new.append(d)
    report["results"] = kept + new
    if golden_names is not None:
        report["golden_names"] = golden_names
    return report


def write_reports(bundle: Bundle, comparisons: list[Comparison]) -> dict:
    """Merge ``comparisons`` into the bundle's report.json and regenerate report.md."""
    golden = bundle.manifest.get("golden", {})
    report = load_report(bundle)
    report["report_version"] = REPORT_VERSION
    report["model"] = bundle.name
    report["weights"] = bundle.manifest.get("weights", {})
    report["golden"] = {k: golden.get(k) for k in ("samples", "source")}
    merge_results(report, comparisons)
    report["passed"] = all(r.get("passed") for r in report["results"])
    atomic_write_text(bundle.report_path("json"), json.dumps(report, indent=2) + "\n")
    atomic_write_text(bundle.report_path("md"), render_markdown(report))
    return report


def _fmt(x, digits=3):
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if x == 0:
            return "0"
        if abs(x) < 1e-2 or abs(x) >= 1e4:
            return f"{x:.2e}"
        return f"{x:.{digits}f}"
    return str(x)


def summary_rows(results: list[dict]) -> list[list[str]]:
    rows = []
    for r in results:
        rows.append([
            r["precision"], f'{r["backend"]}/{r["provider"]}', str(r["samples"]),
            _fmt(r["max_abs_diff"]), _fmt(r["max_rel_diff"]), f'{r["cosine_min"]:.6f}',
            f'{r["cosine_mean"]:.6f}', f'{r["top1_agreement"]:.1%}', f'{r["top5_overlap"]:.1%}',
            "PASS" if r["passed"] else "FAIL",
        ])
    return rows


SUMMARY_HEADER = ["precision", "backend", "samples", "max abs diff", "max rel diff",
                  "cosine min", "cosine mean", "top-1 agree", "top-5 overlap", "verdict"]


def render_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: dict) -> str:
    results = report.get("results", [])
    verdict = "PASS" if results and all(r.get("passed") for r in results) else "FAIL"
    failed = [r for r in results if not r.get("passed")]
    lines = [f"## edgeport: {report.get('model', '?')} - {verdict}", ""]
    if failed:
        for r in failed:
            lines.append(f"- **{r['precision']} on {r['backend']}/{r['provider']} failed**: "
                         + "; ".join(r.get("failures", [])))
        lines.append("")
    lines.append(render_table(SUMMARY_HEADER, summary_rows(results)))
    lines.append("")
    weights = report.get("weights", {})
    golden = report.get("golden", {})
    lines.append(f"Weights: {weights.get('description', weights.get('spec', '?'))}. "
                 f"Reference: PyTorch FP32 on {golden.get('samples', '?')} held-out images "
                 f"({golden.get('source', '?')}). Cosine is over centered logits; "
                 "max rel diff is relative to each sample's reference logit range.")
    if weights.get("random_init"):
        lines.append("")
        lines.append("> Random-init weights: only fidelity to PyTorch is meaningful, not task accuracy; "
                     "top-1 agreement on a random-init net is not informative.")
    lines.append("")
    lines.append("Tolerances: " + "; ".join(
        f"{r['precision']}: " + ", ".join(f"{k}={v}" for k, v in r["tolerance"].items() if v is not None)
        for r in results))
    return "\n".join(lines) + "\n"
