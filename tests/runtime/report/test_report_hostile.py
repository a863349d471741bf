"""report.json is bundle data an attacker may write (docs/security.md): a battery of hostile values.

One real report.json, written by edgeport's own commands on a small bundle (export with the INT8
budget, a failing INT8 verification with its diagnosis, labeled accuracy, bench, and an engine
entry from a recorded TensorRT-RTX build log), holds every section. Each leaf (and each object or
list) is then replaced by values of the wrong JSON type, a huge number or NaN, and
`edgeport report` must either render it (exit 0) or refuse it (exit 3) naming report.json;
never "probably a bug in edgeport" or a traceback.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import invoke, write_color_images
from fault_models import DEAD_CHANNEL_NET

# INT8 fails at /conv2/Conv by construction (tests/fault_models.py): the diagnosis names a culprit,
# and --max-drop keeps that one layer in float.
NET = DEAD_CHANNEL_NET
CLASSES = ["red", "green", "blue", "yellow", "magenta", "cyan", "c6", "c7", "c8", "c9"]
RTX_LOG = Path(__file__).resolve().parents[2] / "data" / "rtx_layer_info.log"
SECTIONS = {"results", "lint", "calibration", "benchmarks", "accuracy", "sensitivity", "mixed_precision",
            "int8_diagnosis", "engines", "weights", "golden"}


def _export(work: Path, name: str, *extra: str) -> Path:
    args = ("export", "--model", f"{work / 'deadnet.py'}:dead", "--input-size", "16", "--int8",
            "--class-names", work / "classes.txt", "--engine", "no", "--name", name, "-o", work / "out", "-q")
    result = invoke(*args, *extra)
    assert result.exit_code in (0, 1), result.output  # 1: the INT8 check failed, the bundle is written
    return work / "out" / name


@pytest.fixture(scope="module")
def real_report(tmp_path_factory) -> tuple[Path, dict]:
    """(bundle, its report.json) with every section, each written by the command that owns it."""
    from runtime.bundle import Bundle
    from runtime.engines.layers import summarize_build_log
    from runtime.report.engines import engine_entry
    from runtime.report.summary import load_report, record_engines, save_report

    work = tmp_path_factory.mktemp("hostile")
    (work / "deadnet.py").write_text(NET)
    (work / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    write_color_images(work / "labeled", per_class=2, seed=0)
    budget = _export(work, "budget", "--max-drop", "1", "--max-float-layers", "1", "--no-int8-cpu")
    bundle = _export(work, "failing", "--fp16")  # INT8 fails: the diagnosis names /conv2/Conv
    for args in (("verify", bundle, "--labeled-data", work / "labeled"),
                 ("bench", bundle, "--batch", "1", "--iterations", "2", "--warmup", "1")):
        result = invoke(*args, "-q")
        assert result.exit_code in (0, 1), result.output
    composition = summarize_build_log(RTX_LOG.read_text().splitlines()).to_dict()
    b = Bundle.open(bundle)
    assert record_engines(b, {"model.int8.engine": engine_entry("int8", "tensorrt-rtx", "1.7.1.116", composition)})
    report, budgeted = load_report(b), load_report(Bundle.open(budget))  # export --max-drop's two sections
    report.mixed_precision, report.sensitivity = budgeted.mixed_precision, budgeted.sensitivity
    save_report(b, report)
    data = json.loads((bundle / "report.json").read_text())
    assert SECTIONS <= set(data), sorted(data)
    assert data["int8_diagnosis"]["int8"]["layer"] == "/conv2/Conv", data["int8_diagnosis"]
    return bundle, data


def leaves(value, path=()):
    """(path, value) of every object, list and scalar in ``value``; of a list of scalars only the
    first item (the others are the same type), of a list of objects every item."""
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, (*path, k))
    elif isinstance(value, list):
        items = value if any(isinstance(v, (dict, list)) for v in value) else value[:1]
        for i, v in enumerate(items):
            yield from leaves(v, (*path, i))


def distinct(pairs):
    """The (path, value) pairs whose path, list indexes aside, was not seen before: results[3]'s
    fields are results[0]'s (fields only some items have, such as an FP16 result's, still come)."""
    seen = set()
    for path, value in pairs:
        shape = tuple("[]" if isinstance(k, int) else k for k in path)
        if shape not in seen:
            seen.add(shape)
            yield path, value


def replaced(data, path, value):
    """A deep copy of ``data`` with the item at ``path`` set to ``value``."""
    out = json.loads(json.dumps(data))
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


def hostile_values(value) -> list:
    """Values of another JSON type than ``value`` (plus huge numbers, NaN and Inf for a number)."""
    wrong = ["abc", 7, 2.5, [1], {"k": 1}, None, 10 ** 400, 1e308, -math.inf, math.nan, True]
    return [w for w in wrong if type(w) is not type(value) or isinstance(value, (int, float))]


def _show(path) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")


def _render(bundle: Path, data) -> object:
    # allow_nan: the file holds NaN as Python writes it (JSON has no NaN; Python's reader takes it)
    (bundle / "report.json").write_text(json.dumps(data, allow_nan=True))
    return invoke("report", bundle)


def _read(bundle: Path, data) -> str:
    """"refused", "accepted" or the crash, of runtime/report/summary.py read_report (what every
    command that reads report.json calls) on ``data``, in-process."""
    from runtime.errors import BundleError
    from runtime.report.summary import read_report

    (bundle / "report.json").write_text(json.dumps(data, allow_nan=True))
    try:
        read_report(bundle / "report.json")
    except BundleError:
        return "refused"
    except Exception as exc:  # noqa: BLE001 - anything else is what the CLI calls a bug
        return f"{type(exc).__name__}: {exc}"
    return "accepted"


def _crash(bundle: Path, data) -> str | None:
    """Why `edgeport report` on ``data`` is not a render (exit 0) or a refusal naming report.json."""
    result = _render(bundle, data)
    out = result.output
    if "Traceback" in out or "bug in edgeport" in out or result.exit_code not in (0, 3) or (
            result.exit_code == 3 and "report.json" not in out):
        return f"exit {result.exit_code}: {out.strip()[-300:]}"
    return None


def _nested(a: tuple, b: tuple) -> bool:
    """One path is inside the other (or they are the same): they cannot be substituted together."""
    return a[:len(b)] == b or b[:len(a)] == a


def test_every_hostile_value_renders_or_is_refused_naming_report_json(real_report, copy_bundle):
    """Each hostile value goes through the reader alone; the CLI then renders, per section and
    hostile value, the accepted substitutions together (none inside another; each alone when
    that fails), and one refusal per section."""
    bundle = copy_bundle(real_report[0])
    data = real_report[1]
    bad, groups, singles, refused = [], {}, [], {}
    for path, value in distinct(leaves(data)):
        for wrong in hostile_values(value) if path else ():
            hostile = replaced(data, path, wrong)
            outcome = _read(bundle, hostile)
            if outcome == "refused":
                refused.setdefault(path[0], hostile)
            elif outcome != "accepted":
                bad.append(f"{_show(path)} = {wrong!r}: {outcome}")
            else:
                batches = groups.setdefault((path[0], repr(wrong)), [])
                batch = next((b for b in batches if not any(_nested(path, p) for p, _ in b)), None)
                if batch is None:
                    batches.append(batch := [])
                batch.append((path, wrong))
    for hostile in refused.values():
        crash = _crash(bundle, hostile)
        bad += [crash] if crash else []
    for group in (batch for batches in groups.values() for batch in batches):
        together = data
        for path, wrong in group:
            together = replaced(together, path, wrong)
        if _crash(bundle, together):
            singles += group  # find which
    for path, wrong in singles:
        crash = _crash(bundle, replaced(data, path, wrong))
        bad += [f"{_show(path)} = {wrong!r}: {crash}"] if crash else []
    assert not bad, f"{len(bad)} hostile values crashed `edgeport report`:\n" + "\n".join(bad[:40])
    # Both outcomes happen in every section: the battery reached the reader and the renderers.
    assert SECTIONS <= set(refused) and SECTIONS <= {section for section, _ in groups}, (sorted(refused), groups)


def test_a_wrong_type_is_refused_at_read_naming_its_path(real_report, copy_bundle):
    """The report of the issue: a string for a number, in a result and in the INT8 diagnosis."""
    bundle = copy_bundle(real_report[0])
    for path, shown in ((("results", 0, "cosine_min"), "results[0].cosine_min"),
                        (("int8_diagnosis", "int8", "cosine_at"), "int8_diagnosis.int8.cosine_at"),
                        (("engines", "model.int8.engine", "composition", "tensors"),
                         "engines.model.int8.engine.composition.tensors"),
                        (("benchmarks", "machine", "versions"), "benchmarks.machine.versions")):
        result = _render(bundle, replaced(real_report[1], path, "abc"))
        assert result.exit_code == 3, result.output
        assert f"{shown}: expected" in result.output and "got a string ('abc')" in result.output, result.output
        assert "report.json" in result.output and "bug" not in result.output


def test_a_huge_integer_and_a_bool_for_a_number_are_refused(real_report, copy_bundle):
    bundle = copy_bundle(real_report[0])
    for path, wrong, expected in ((("results", 0, "samples"), 10 ** 30, "an integer within int64"),
                                  (("results", 0, "max_abs_diff"), 10 ** 400, "a number within a float's range"),
                                  (("results", 0, "cosine_min"), True, "a number"),
                                  (("golden", "samples"), False, "an integer")):
        result = _render(bundle, replaced(real_report[1], path, wrong))
        assert result.exit_code == 3 and f"expected {expected}" in result.output, result.output


def test_nan_numbers_render(real_report, copy_bundle):
    """NaN is a float: JSON written by Python may hold it, and the pages say "nan", not crash."""
    bundle = copy_bundle(real_report[0])
    data = real_report[1]
    for path, value in leaves(data):
        if isinstance(value, float):
            data = replaced(data, path, math.nan)
    result = _render(bundle, data)
    assert result.exit_code == 0, result.output
    assert "nan" in (bundle / "report.md").read_text()


def test_report_strings_are_escaped_in_the_page(real_report, copy_bundle):
    """Every string of report.json set to markup (one render): none reaches report.html as a tag."""
    bundle = copy_bundle(real_report[0])
    data = real_report[1]
    for n, (path, value) in enumerate(leaves(data)):
        if isinstance(value, str):
            data = replaced(data, path, f"<img src=x id=hostile{n}>")
    result = _render(bundle, data)
    assert result.exit_code == 0, result.output
    page = (bundle / "report.html").read_text()
    assert "<img src=x" not in page and "&lt;img src=x id=hostile" in page


def test_verify_refuses_a_hostile_report_before_the_work_and_leaves_it(real_report, copy_bundle):
    """verify reads report.json first (its sections are merged into the new one): a wrong type is
    refused before any artifact runs, and the file stays as it was for the user to look at."""
    bundle = copy_bundle(real_report[0])
    text = json.dumps(replaced(real_report[1], ("int8_diagnosis", "int8", "cosine_at"), "abc"))
    (bundle / "report.json").write_text(text)
    result = invoke("verify", bundle)
    assert result.exit_code == 3, result.output
    assert "int8_diagnosis.int8.cosine_at" in result.output and "Move it aside" in result.output
    assert "verifying" not in result.output and "bug" not in result.output
    assert (bundle / "report.json").read_text() == text


def test_verify_merges_a_report_full_of_nan_and_nulls_and_writes_a_fresh_one(real_report, copy_bundle):
    """Values the reader accepts (NaN numbers, null where null is allowed) go through verify's
    merge and come out as a report.json edgeport reads back."""
    from runtime.bundle import Bundle
    from runtime.report.summary import load_report

    bundle = copy_bundle(real_report[0])
    data = real_report[1]
    for path, value in leaves(data):
        if isinstance(value, float):
            data = replaced(data, path, math.nan)
    data = replaced(data, ("benchmarks", "machine", "load_avg_before"), None)
    data = replaced(data, ("golden", "samples"), None)
    (bundle / "report.json").write_text(json.dumps(data))
    result = invoke("verify", bundle, "--precision", "fp32")
    assert result.exit_code == 0, result.output
    fresh = load_report(Bundle.open(bundle), required=True)
    fp32 = [r for r in fresh.results if r.precision == "fp32"]
    assert len(fp32) == 1 and fp32[0].cosine_min > 0.99  # measured again, not the NaN read
    assert fresh.benchmarks is not None and fresh.golden["samples"] == 21  # the header is written anew
