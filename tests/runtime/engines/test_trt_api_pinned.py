"""The fake ``tensorrt`` (tests/trt_fake.py) and edgeport's TensorRT calls, checked against NVIDIA's real API.

tests/data/trt_api.json was dumped from NVIDIA's own Python bindings by
scripts/trt_api/dump_api.py (TensorRT 8.6.1, 10.13.0.35 and 11.4.0.106 from their PyPI
wheels through a stand-in libnvinfer; TensorRT-RTX 1.7.1.116 imported for real). These
tests read only that file: no download, no TensorRT needed.

They check that (1) the fake has an enum member, class or class member exactly when the
real release does, with the real values, parameter names, return types and property
writability, and refuses attribute names the real objects refuse; (2) every TensorRT name
edgeport's code uses exists in the real API, and every flag a build plan sets exists in the
release the plan is for; (3) edgeport's calibrators implement every pure virtual hook the
real calibrator classes declare.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import re
from pathlib import Path

import pytest

from runtime.errors import EdgeportError, UsageError
from runtime.engines import calibration
from runtime.engines.builder import make_cache_calibrator, make_logger
from runtime.engines.policy import PRECISIONS, TrtVersion
from runtime.engines.tensorrt import plan_build
from trt_fake import FAKE_CLASSES, HELPERS, FakeTRT, _pure_virtual_error, api_key_for, load_api

REPO = Path(__file__).resolve().parents[3]
API = load_api()
PINNED = ["8.6.1", "10.13.0.35", "11.4.0.106"]  # the tensorrt releases in the data file (the fake emulates these)
ALL = {"fp32", "fp16", "int8"}
# Variable names edgeport gives TensorRT objects -> the real class (runtime/trt, runtime/runners).
OBJECTS = {"builder": "Builder", "config": "IBuilderConfig", "parser": "OnnxParser", "network": "INetworkDefinition",
           "runtime": "Runtime", "engine": "ICudaEngine", "context": "IExecutionContext", "ctx": "IExecutionContext"}


def api(version: str) -> dict:
    return API[f"tensorrt {version}"]


def _norm(type_text: str | None) -> str | None:
    """Compare type names across pybind11 spellings: typing.SupportsInt / List[...] / nvinfer1::X."""
    if type_text is None:
        return None
    # (the fake writes its return types as strings, which postponed annotations quote once more)
    text = re.sub(r"\b(?:typing(?:_extensions)?\.|nvinfer1::|nvonnxparser::)", "", type_text.strip("'\""))
    return text.replace("SupportsInt", "int").lower()


def _param(text: str) -> tuple[str, bool]:
    """'min_severity: ILogger.Severity = <...>' -> ('min_severity', True)."""
    return text.split(":")[0].split("=")[0].strip(), "=" in text


# -- what edgeport's code uses, read from its source (not from the code's behaviour) -------------
def _trt_sources() -> list[Path]:
    return sorted((REPO / "runtime" / "engines").glob("*.py")) + sorted((REPO / "runtime" / "runners").glob("tensorrt*.py"))


def _base_name(node) -> str | None:
    """'trt' for ``trt`` / ``self.trt``, 'config' for ``config`` / ``self.config``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


@functools.lru_cache(maxsize=1)
def used_api() -> frozenset[tuple[str, str | None]]:
    """(top-level name, member or None) pairs: trt.X -> (X, None), trt.X.Y and config.Y -> (X, Y)."""
    used: set[tuple[str, str | None]] = set()
    for path in _trt_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            if _base_name(node.value) == "trt" and not node.attr.startswith("__"):
                used.add((node.attr, None))
            elif isinstance(node.value, ast.Attribute) and _base_name(node.value.value) == "trt":
                used.add((node.value.attr, node.attr))
            elif _base_name(node.value) in OBJECTS:
                used.add((OBJECTS[_base_name(node.value)], node.attr))
    return frozenset(used)


def _members_anywhere(kind: str, name: str) -> set[str]:
    """Members of enum/class ``name`` in any dumped API (None entries: absent there)."""
    out = set()
    for entry in API.values():
        value = entry[kind].get(name)
        if value is not None:
            out |= {k for k, v in (value.items() if kind == "enums" else value["members"].items()) if v is not None}
    return out


def test_data_file_matches_the_dump_script():
    spec = importlib.util.spec_from_file_location("dump_api", REPO / "scripts" / "trt_api" / "dump_api.py")
    dump = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dump)
    assert list(API) == [key for key, _, _ in dump.TARGETS]
    for key, entry in API.items():
        assert key == f"{entry['module'].replace('_bindings', '')} {entry['version']}"
        assert list(entry["enums"]) == list(dump.ENUMS), "re-run scripts/trt_api/dump_api.py"
        assert {c: list(v["members"]) for c, v in entry["classes"].items() if v} == \
            {c: list(m) for c, m in dump.CLASSES.items() if entry["classes"][c]}, "re-run scripts/trt_api/dump_api.py"


def test_edgeport_uses_only_names_the_real_api_has():
    used = used_api()
    assert ("IBuilderConfig", "set_memory_pool_limit") in used and ("ILogger", "Severity") in used  # the scan works
    assert ("IExecutionContext", "set_tensor_address") in used and ("Logger", "ERROR") in used
    known_top = {n for e in API.values() for kind in ("enums", "classes", "functions") for n, v in e[kind].items() if v}
    unknown = []
    for top, member in sorted(used, key=str):
        if top not in known_top:
            unknown.append(f"trt.{top}")
        elif member is not None and member not in (_members_anywhere("enums", top) | _members_anywhere("classes", top)):
            unknown.append(f"{top}.{member}")
    assert not unknown, f"not in any real API in tests/data/trt_api.json (typo, or add it to dump_api.py): {unknown}"


# -- the fake against the real API, per pinned release -----------------------------------------------
@pytest.mark.parametrize("version", PINNED)
def test_fake_enums_are_the_real_enums(version):
    trt = FakeTRT(version)
    for name, members in api(version)["enums"].items():
        if "." in name:  # ILogger.Severity
            owner, inner = name.split(".")
            fake_enum = getattr(getattr(trt, owner), inner)
        else:
            fake_enum = getattr(trt, name, None)
        if members is None:
            assert fake_enum is None, f"{name} does not exist in TensorRT {version}"
            continue
        assert {k: int(v) for k, v in fake_enum.__members__.items()} == members, name


@pytest.mark.parametrize("version", PINNED)
def test_fake_module_has_what_the_real_module_has(version):
    trt, real = FakeTRT(version), api(version)
    for name, entry in real["classes"].items():
        if entry is None or name in FAKE_CLASSES:
            assert hasattr(trt, name) == (entry is not None), f"trt.{name} on TensorRT {version}"
    for name, entry in real["functions"].items():
        assert hasattr(trt, name) == (entry is not None)
    real_names = {n for kind in ("enums", "classes", "functions") for n, v in real[kind].items() if v is not None}
    fake_names = {n for n in vars(trt) if not n.startswith("_")} - set(HELPERS)
    assert fake_names <= real_names, f"the fake invents {sorted(fake_names - real_names)}"
    for name, _ in used_api():  # what edgeport uses exists in the fake exactly when it exists in the release
        if name in real["classes"] or name in real["enums"]:
            present = (real["classes"].get(name) or real["enums"].get(name)) is not None
            assert hasattr(trt, name) == present, f"trt.{name} on TensorRT {version}"


def _fake_defines(cls, name: str) -> bool:
    """Whether the fake itself (not object, not a builtin base such as bytes) gives ``cls`` this member."""
    return hasattr(cls, name) and any(name in vars(k) for k in cls.__mro__ if k.__module__ == "trt_fake")


def _own_public_members(cls) -> set[str]:
    return {n for k in cls.__mro__ if k.__module__ == "trt_fake" for n in vars(k)
            if not n.startswith("_") and _fake_defines(cls, n)}


@pytest.mark.parametrize("version", PINNED)
def test_fake_classes_have_exactly_the_real_members(version):
    trt, real = FakeTRT(version), api(version)
    used = used_api()
    for name in FAKE_CLASSES:
        entry = real["classes"][name]
        if entry is None:
            continue
        cls = getattr(trt, name)
        members = entry["members"]
        extra = _own_public_members(cls) - {m for m, v in members.items() if v is not None}
        assert not extra, f"fake {name} has {extra}, which TensorRT {version} lacks"
        for member, info in members.items():
            static = inspect.getattr_static(cls, member, None)
            if info is None:
                assert not hasattr(cls, member), f"{name}.{member} does not exist in TensorRT {version}"
            elif (name, member) in used or _fake_defines(cls, member):
                assert hasattr(cls, member), f"{name}.{member} exists in TensorRT {version}; the fake lacks it"
                _check_member(f"{name}.{member}", static, info)


def _check_member(where: str, static, info: dict) -> None:
    if info["kind"] == "property":
        assert isinstance(static, property), f"{where} is a property in TensorRT"
        assert (static.fset is not None) == info["writable"], f"{where}: writable={info['writable']} in TensorRT"
    elif info["kind"] == "method":
        fn = static.__func__ if isinstance(static, staticmethod) else static
        params = list(inspect.signature(fn).parameters.values())[1:]
        fake = [(p.name, p.default is not inspect.Parameter.empty) for p in params]
        fake_ret = _norm(fn.__annotations__.get("return"))
        overloads = [([_param(p) for p in sig["params"]], _norm(sig["returns"])) for sig in info["signatures"]]
        # The fake may leave out trailing parameters that have defaults in TensorRT.
        matches = [fake == ps[:len(fake)] and all(default for _, default in ps[len(fake):]) and fake_ret in (ret, None)
                   for ps, ret in overloads]
        assert True in matches, f"{where}{fake} -> {fake_ret} matches none of TensorRT's {overloads}"
    elif info["kind"] == "enum_value":
        assert int(static) == info["value"], where


@pytest.mark.parametrize("version", PINNED)
def test_fake_objects_refuse_unknown_attributes_like_the_real_ones(version):
    trt, real = FakeTRT(version), api(version)
    logger = trt.Logger(trt.Logger.ERROR)  # the real Logger takes a severity
    assert logger.min_severity == trt.ILogger.Severity.ERROR and isinstance(logger, trt.ILogger)
    objects = {"IBuilderConfig": trt.IBuilderConfig(), "Runtime": trt.Runtime(logger), "Builder": trt.Builder(logger),
               "IOptimizationProfile": trt.IOptimizationProfile()}
    for name, obj in objects.items():
        assert real["classes"][name]["dynamic_attributes"] is False
        with pytest.raises(AttributeError):
            obj.DLA_cores = 1  # a typo of DLA_core: the real object has no __dict__ to put it in
    with pytest.raises(AttributeError):
        objects["IBuilderConfig"].num_optimization_profiles = 3  # read-only in TensorRT
    with pytest.raises(AttributeError):
        objects["Builder"].num_DLA_cores = 2
    if real["classes"]["IBuilderConfig"]["members"]["int8_calibrator"] is None:
        with pytest.raises(AttributeError):
            objects["IBuilderConfig"].int8_calibrator = None


@pytest.mark.parametrize("version", PINNED)
def test_count_dla_cores_works_with_the_real_logger_signature(version):
    from runtime.engines.device import count_dla_cores

    assert count_dla_cores(FakeTRT(version, dla_cores=2)) == 2  # trt.Logger(trt.Logger.ERROR) must construct


def test_fake_versions_map_to_the_pinned_release_of_their_major():
    assert api_key_for("10.3.0.30") == "tensorrt 10.13.0.35" and api_key_for("8.6.1") == "tensorrt 8.6.1"
    assert api_key_for("11.0.0") == "tensorrt 11.4.0.106" and api_key_for("1.7.1", "tensorrt_rtx") == \
        "tensorrt_rtx 1.7.1.116"
    with pytest.raises(ValueError, match="no tensorrt 9.x API"):
        api_key_for("9.0.0")


# -- the known differences the comparison found -----------------------------------------------------------
def test_known_differences_between_releases():
    flags = {v: api(v)["enums"]["NetworkDefinitionCreationFlag"] for v in PINNED}
    assert "STRONGLY_TYPED" not in flags["8.6.1"] and flags["10.13.0.35"]["STRONGLY_TYPED"] == 1
    assert flags["11.4.0.106"]["STRONGLY_TYPED"] == 0 and "EXPLICIT_BATCH" not in flags["11.4.0.106"]
    config = {v: api(v)["classes"]["IBuilderConfig"]["members"] for v in PINNED}
    assert config["10.13.0.35"]["set_calibration_profile"] and config["11.4.0.106"]["set_calibration_profile"] is None
    assert config["11.4.0.106"]["int8_calibrator"] is None and api("11.4.0.106")["classes"]["IInt8Calibrator"] is None
    for v in PINNED:
        assert config[v]["add_optimization_profile"]["signatures"][0]["returns"] == "int"
        ctx = api(v)["classes"]["IExecutionContext"]["members"]
        assert ctx["set_tensor_address"]["signatures"][0]["returns"] == "bool"
    assert api("8.6.1")["classes"]["IInt8LegacyCalibrator"]["pure_virtual"] == \
        ["get_batch_size", "get_quantile", "get_regression_cutoff", "read_histogram_cache", "write_histogram_cache"]


# -- edgeport's build plans and calibrators against the release they target ----------------------------
def _plans(version: TrtVersion):
    options = [{}, {"version_compatible": True}, {"requested_path": "flags"}, {"requested_path": "strongly-typed"},
               {"hardware_compat": "ampere+", "compute_capability": "8.6"}, {"dla_core": 0},
               {"dla_core": 0, "gpu_fallback": True}]
    for precision in PRECISIONS:
        for opts in options:
            try:
                yield plan_build(version, precision, ALL, **opts)
            except (UsageError, EdgeportError):
                continue  # refused with a message: nothing is called on TensorRT


@pytest.mark.parametrize("version", PINNED)
def test_every_flag_a_plan_sets_exists_in_the_release_it_targets(version):
    real = api(version)
    net, builder = real["enums"]["NetworkDefinitionCreationFlag"], real["enums"]["BuilderFlag"]
    config = real["classes"]["IBuilderConfig"]["members"]
    plans = list(_plans(TrtVersion.parse(version)))
    assert len(plans) >= 6
    for plan in plans:
        assert set(plan.network_flags) <= set(net), (plan, sorted(net))
        assert set(plan.builder_flags) <= set(builder), (plan, sorted(builder))
        if plan.calibration_cache:
            assert config["int8_calibrator"] is not None
        if plan.dla_core is not None:
            assert config["DLA_core"] is not None and config["default_device_type"] is not None
        if plan.hardware_compat == "ampere+":
            assert "AMPERE_PLUS" in real["enums"]["HardwareCompatibilityLevel"]


@pytest.mark.parametrize("version", ["8.6.1", "10.13.0.35"])
@pytest.mark.parametrize("class_name", sorted(set(calibration.CALIBRATORS.values())))
def test_cache_calibrators_implement_every_pure_virtual_hook(version, class_name):
    trt = FakeTRT(version)
    declared = api(version)["classes"][class_name]["pure_virtual"]
    calib = make_cache_calibrator(trt, class_name, b"TRT-8601-LegacyCalibration\ninput: 3c010a14\n")
    assert isinstance(calib, getattr(trt, class_name))
    assert [h for h in declared if _pure_virtual_error(calib, h)] == []
    assert calib.read_calibration_cache().startswith(b"TRT-8601")


def test_fake_build_fails_like_tensorrt_when_a_hook_is_missing():
    trt = FakeTRT("10.13.0.35")

    class Incomplete(trt.IInt8LegacyCalibrator):  # what make_cache_calibrator built before the fix
        def get_batch_size(self):
            return 1

        def read_calibration_cache(self):
            return b"TRT-100300-LegacyCalibration\n"

    messages: list[str] = []
    builder = trt.Builder(make_logger(trt, messages))
    config = builder.create_builder_config()
    config.int8_calibrator = Incomplete()
    profile = builder.create_optimization_profile()
    profile.set_shape("input", (1, 3), (1, 3), (1, 3))
    config.add_optimization_profile(profile)
    assert builder.build_serialized_network(builder.create_network(0), config) is None
    assert any('pure virtual function "IInt8LegacyCalibrator::get_quantile"' in m for m in messages)
