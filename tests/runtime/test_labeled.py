"""Labeled accuracy: `edgeport verify BUNDLE --labeled-data DIR [--labels FILE]` (runtime/labeled.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import COLOR_CLASSES, invoke, write_color_images

NAMES = list(COLOR_CLASSES)


ARTIFACT = {"fp32": "model.onnx", "fp16": "model.fp16.onnx"}


def expected_accuracy(bundle, root, pairs, precision="fp32"):
    """Top-1/top-5 computed independently of runtime.labeled and runtime.predict: the bundle's
    preprocessing by hand (PIL resize + crop, numpy normalize), a bare ONNX Runtime session."""
    import onnxruntime as ort
    from PIL import Image

    m = json.loads((bundle / "manifest.json").read_text())
    pre = m["preprocessing"]
    xs = []
    for f, _ in pairs:
        img = Image.open(root / f).convert("RGB")
        w, h = img.size
        r, long_ = pre["resize"], int(pre["resize"] * max(w, h) / min(w, h))
        img = img.resize((long_, r) if w > h else (r, long_), Image.BILINEAR)
        left, top = int(round((img.width - pre["crop"]) / 2)), int(round((img.height - pre["crop"]) / 2))
        arr = np.asarray(img.crop((left, top, left + pre["crop"], top + pre["crop"])), np.float32) / 255.0
        xs.append(((arr - pre["mean"]) / pre["std"]).transpose(2, 0, 1))
    sess = ort.InferenceSession(str(bundle / ARTIFACT[precision]), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {m["input"]["name"]: np.stack(xs).astype(np.float32)})[0]
    top5 = [[NAMES[i] for i in np.argsort(-row)[:5]] for row in logits]
    top1 = np.mean([t[0] == label for t, (_, label) in zip(top5, pairs)])
    top5_hit = np.mean([label in t for t, (_, label) in zip(top5, pairs)])
    return float(top1), float(top5_hit)


def test_imagefolder_top1_top5_for_every_artifact(color_bundle, copy_bundle, tmp_path):
    bundle = copy_bundle(color_bundle)
    data = tmp_path / "val"
    pairs = write_color_images(data, per_class=6, seed=11)
    result = invoke("verify", bundle, "--labeled-data", data)
    assert result.exit_code == 0, result.output
    assert "labeled accuracy on 36 images" in result.output
    acc = json.loads((bundle / "report.json").read_text())["accuracy"]
    assert acc["samples"] == 36 and acc["skipped"] == 0 and acc["classes_present"] == 6
    assert acc["label_source"] == "manifest class names" and acc["layout"] == "imagefolder"
    ref = acc["reference"]
    assert ref["precision"] == "fp32" and "model.onnx" in ref["label"]
    top1, top5 = expected_accuracy(bundle, data, pairs)
    assert ref["top1"] == pytest.approx(top1) and ref["top5"] == pytest.approx(top5)
    assert ref["top1"] >= 0.9  # a trained model: the colour is easy to tell
    by_precision = {r["precision"]: r for r in acc["results"]}
    assert set(by_precision) == {"fp32", "fp16"}
    for precision, r in by_precision.items():
        t1, t5 = expected_accuracy(bundle, data, pairs, precision)
        assert r["top1"] == pytest.approx(t1) and r["top5"] == pytest.approx(t5)
        assert r["top1_drop_points"] == pytest.approx(100 * (ref["top1"] - r["top1"]), abs=1e-3)
        assert r["samples"] == 36
    assert by_precision["fp32"]["agreement_with_reference"] == 1.0
    # Every report format carries it.
    md = (bundle / "report.md").read_text()
    assert "### Labeled accuracy: 36 images" in md and "| fp16 | onnxruntime/cpu |" in md
    page = (bundle / "report.html").read_text()
    assert 'id="accuracy-table"' in page and 'id="plot-accuracy"' in page


def test_labels_file_with_wrong_labels_lowers_accuracy_exactly(color_bundle, copy_bundle, tmp_path):
    """A flat folder + labels file; a third of the labels point at the wrong class, so the
    measured accuracy must drop to what an independent count says."""
    bundle = copy_bundle(color_bundle)
    data = tmp_path / "flat"
    pairs = write_color_images(data, per_class=5, seed=12, flat=True)
    labeled = []
    for i, (f, name) in enumerate(pairs):
        if i % 3 == 0:
            name = NAMES[(NAMES.index(name) + 1) % len(NAMES)]
        labeled.append((f, name))
    # Mixed label styles: class names and integer indexes, plus a header and a comment.
    lines = ["file,label", "# ImageNet-val style"]
    lines += [f"{f},{NAMES.index(n) if i % 2 else n}" for i, (f, n) in enumerate(labeled)]
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(lines) + "\n")
    result = invoke("verify", bundle, "--precision", "fp16", "--labeled-data", data, "--labels", labels)
    assert result.exit_code == 0, result.output
    acc = json.loads((bundle / "report.json").read_text())["accuracy"]
    top1, top5 = expected_accuracy(bundle, data, labeled)
    assert acc["reference"]["top1"] == pytest.approx(top1)
    assert acc["reference"]["top5"] == pytest.approx(top5)
    assert acc["reference"]["top1"] <= 0.7  # 10 of 30 labels are wrong
    assert [r["precision"] for r in acc["results"]] == ["fp16"]
    assert acc["layout"].startswith("labels file")


def test_unreadable_images_are_skipped_and_counted(color_bundle, copy_bundle, tmp_path):
    bundle = copy_bundle(color_bundle)
    data = tmp_path / "val"
    write_color_images(data, per_class=2, seed=13)
    (data / "red" / "broken.jpg").write_bytes(b"not a jpeg")
    result = invoke("verify", bundle, "--labeled-data", data)
    assert result.exit_code == 0, result.output
    acc = json.loads((bundle / "report.json").read_text())["accuracy"]
    assert acc["samples"] == 12 and acc["skipped"] == 1
    assert "red/broken.jpg" in acc["skipped_examples"][0]


def test_labeled_samples_spread_over_classes(tmp_path):
    from runtime.labeled import load_labeled_set

    write_color_images(tmp_path, per_class=5, seed=14)
    ds = load_labeled_set(tmp_path, None, class_names=NAMES, num_classes=6, limit=6)
    assert len(ds.files) == 6 and sorted(ds.labels.tolist()) == list(range(6))


def test_label_mapping_rules(tmp_path):
    from runtime.errors import EdgeportError
    from runtime.labeled import load_labeled_set

    # No class names: sorted folder names, only when every class has a folder.
    write_color_images(tmp_path / "a", per_class=1, seed=15)
    ds = load_labeled_set(tmp_path / "a", None, class_names=None, num_classes=6)
    assert ds.label_source == "sorted names"
    by_folder = {f.parent.name: int(lab) for f, lab in zip(ds.files, ds.labels)}
    assert by_folder == {n: i for i, n in enumerate(sorted(NAMES))}
    with pytest.raises(EdgeportError, match=r"Cannot map 6 class folders \(blue, .*\) to the model.s 10 classes"):
        load_labeled_set(tmp_path / "a", None, class_names=None, num_classes=10)
    # Integer folder names are class indexes.
    for idx in (0, 4):
        (tmp_path / "b" / str(idx)).mkdir(parents=True)
        shutil.copy(tmp_path / "a" / "red" / "red_000.png", tmp_path / "b" / str(idx) / "y.png")
    ds = load_labeled_set(tmp_path / "b", None, class_names=None, num_classes=6)
    assert ds.label_source == "integer labels" and set(ds.labels.tolist()) == {0, 4}
    # Class names match loosely (folders cannot hold every character).
    names = ["Red Car", "green", "blue", "yellow", "magenta", "cyan"]
    (tmp_path / "a" / "red").rename(tmp_path / "a" / "red_car")
    ds = load_labeled_set(tmp_path / "a", None, class_names=names, num_classes=6)
    assert ds.label_source == "manifest class names"
    assert {f.parent.name: int(lab) for f, lab in zip(ds.files, ds.labels)}["red_car"] == 0
    # A folder that is not a class name, next to ones that are: a typo, named in the error.
    (tmp_path / "a" / "red_car").rename(tmp_path / "a" / "rde")
    with pytest.raises(EdgeportError, match="neither class names.*: rde"):
        load_labeled_set(tmp_path / "a", None, class_names=names, num_classes=6)


@pytest.mark.parametrize("case", ["labels-without-data", "flat-without-labels", "missing-file", "bad-index"])
def test_data_option_errors(color_bundle, copy_bundle, tmp_path, case):
    bundle = copy_bundle(color_bundle)
    flat = tmp_path / "flat"
    write_color_images(flat, per_class=1, seed=16, flat=True)
    labels = tmp_path / "labels.txt"
    if case == "labels-without-data":
        labels.write_text("red_000.png red\n")
        result, code, text = invoke("verify", bundle, "--labels", labels), 2, "need --labeled-data"
    elif case == "flat-without-labels":
        result, code, text = invoke("verify", bundle, "--labeled-data", flat), 2, "no class sub-folders"
    elif case == "missing-file":
        labels.write_text("red_000.png red\nnope.png green\n")
        result, code, text = invoke("verify", bundle, "--labeled-data", flat, "--labels", labels), 3, "nope.png"
    else:
        labels.write_text("red_000.png 7\n")
        result, code, text = invoke("verify", bundle, "--labeled-data", flat, "--labels", labels), 3, "outside the model's classes 0..5"
    assert result.exit_code == code, result.output
    assert text in result.output
    # Option errors come before any verification: the report was not rewritten.
    assert json.loads((bundle / "report.json").read_text()).get("accuracy") is None


def test_merge_keeps_other_backends_for_the_same_data():
    from runtime.labeled import AccuracyReference, AccuracyRow, LabeledAccuracy, merge_accuracy

    def section(backend, data="d", samples=10):
        row = AccuracyRow(backend=backend, provider="cpu", precision="fp32", samples=samples, top1=0.5, top5=0.9,
                          top1_drop_points=0.0, top5_drop_points=0.0, agreement_with_reference=1.0)
        ref = AccuracyReference(label="model.onnx FP32", precision="fp32", backend="onnxruntime", provider="cpu",
                                description="", top1=0.5, top5=0.9)
        return LabeledAccuracy(data=data, layout="imagefolder", label_source="integer labels", samples=samples,
                               classes_present=2, skipped=0, skipped_examples=[], reference=ref, results=[row],
                               evaluated_at="")

    merged = merge_accuracy(section("tensorrt"), section("onnxruntime"))
    assert [r.backend for r in merged.results] == ["tensorrt", "onnxruntime"]
    assert [r.backend for r in merge_accuracy(section("tensorrt", data="other"),
                                              section("onnxruntime")).results] == ["onnxruntime"]
    # The section reads back from report.json as it was written.
    assert LabeledAccuracy.from_dict(json.loads(json.dumps(merged.to_dict()))) == merged


def test_read_class_names(tmp_path):
    from runtime.errors import EdgeportError
    from runtime.labeled import read_class_names

    f = tmp_path / "n.txt"
    f.write_text("cat\n\n dog \n")
    assert read_class_names(f) == ["cat", "dog"]
    f.write_text("cat\ncat\n")
    with pytest.raises(EdgeportError, match="repeats 1 name"):
        read_class_names(f)


def test_progress_plain_lines_in_pipes_and_quiet(color_bundle, copy_bundle, tmp_path):
    from conftest import run_cli

    bundle = copy_bundle(color_bundle)
    data = tmp_path / "val"
    write_color_images(data, per_class=2, seed=17)
    proc = run_cli("verify", bundle, "--labeled-data", data)
    assert proc.returncode == 0, proc.stderr
    assert "[edgeport] labeled accuracy: 12/12 done in" in proc.stderr
    assert "[edgeport] fp16 golden set: 21/21 done in" in proc.stderr
    assert "\r" not in proc.stderr and "\x1b[" not in proc.stderr  # no terminal codes in logs
    quiet = run_cli("verify", bundle, "--labeled-data", data, "-q")
    assert quiet.returncode == 0 and "done in" not in quiet.stderr


def test_progress_bar_on_a_terminal(monkeypatch):
    import io

    from runtime import console

    class Tty(io.StringIO):
        def isatty(self):
            return True

    err = Tty()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setenv("TERM", "xterm")
    console.set_quiet(False)
    with console.Progress(4, "step") as p:
        for _ in range(4):
            p.update()
    text = err.getvalue()
    assert "\r\x1b[K[edgeport] step [" in text and "4/4" in text
    assert "#" * 30 in text  # the full bar was drawn at the end
    assert text.rstrip().endswith("step: 4/4 done in 0.0 s")
