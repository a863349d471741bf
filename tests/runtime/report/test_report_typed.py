"""runtime/report/typed.py, the one validator of report.json's values, on small hand-made values:
what each type hint accepts, and the path and expectation its refusal names."""

from __future__ import annotations

import dataclasses
import math
from typing import TypedDict

import pytest


@dataclasses.dataclass
class Row:
    name: str
    count: int
    share: float | None
    flags: list[bool] = dataclasses.field(default_factory=list)


class Facts(TypedDict, total=False):
    cores: int
    versions: dict[str, str]


@dataclasses.dataclass
class Doc:
    rows: list[Row]
    facts: Facts
    shape: tuple[int, ...] = ()


def _read(data: dict) -> Doc:
    from runtime.report.typed import fields_of

    return Doc(**fields_of(Doc, data))


def test_values_of_the_right_type_are_read_and_an_int_for_a_float_becomes_a_float():
    doc = _read({"rows": [{"name": "a", "count": 2, "share": 1, "flags": [True]}],
                 "facts": {"cores": 4, "versions": {"numpy": "2.0"}, "newer_key": [1, "x"]}, "shape": [3, 16]})
    assert doc.rows == [Row("a", 2, 1.0, [True])] and isinstance(doc.rows[0].share, float)
    assert doc.facts == {"cores": 4, "versions": {"numpy": "2.0"}, "newer_key": [1, "x"]}  # other keys kept
    assert doc.shape == (3, 16)
    nan = _read({"rows": [{"name": "a", "count": 2, "share": math.nan}], "facts": {}})
    assert math.isnan(nan.rows[0].share)  # NaN/Inf are numbers; null where the hint allows it
    assert _read({"rows": [{"name": "a", "count": 2, "share": None}], "facts": {}}).rows[0].share is None


@pytest.mark.parametrize("change, message", [
    ({"rows": [{"name": "a", "count": "2", "share": 0.5}]}, "rows[0].count: expected an integer, got a string ('2')"),
    ({"rows": [{"name": "a", "count": True, "share": 0.5}]}, "rows[0].count: expected an integer, got a boolean"),
    ({"rows": [{"name": "a", "count": 2.0, "share": 0.5}]}, "rows[0].count: expected an integer, got a number"),
    ({"rows": [{"name": "a", "count": 2 ** 63, "share": 0.5}]}, "rows[0].count: expected an integer within int64"),
    ({"rows": [{"name": "a", "count": 2, "share": 10 ** 400}]}, "rows[0].share: expected a number within a float"),
    ({"rows": [{"name": "a", "count": 2, "share": "x"}]}, "rows[0].share: expected a number or null"),
    ({"rows": [{"name": "a", "count": 2, "share": 0.5, "flags": [1]}]}, "rows[0].flags[0]: expected true or false"),
    ({"rows": [{"name": "a", "share": 0.5}]}, "rows[0].count: expected an integer, got nothing (the key is missing)"),
    ({"rows": {"name": "a"}}, "rows: expected a list, got an object"),
    ({"facts": {"cores": "4"}}, "facts.cores: expected an integer"),
    ({"facts": {"versions": {"numpy": 2}}}, "facts.versions.numpy: expected a string, got a number"),
    ({"facts": {"newer_key": {"n": 10 ** 30}}}, "facts.newer_key.n: expected an integer within int64"),
    ({"facts": []}, "facts: expected an object, got a list"),
    ({"shape": [3, "N"]}, "shape[1]: expected an integer"),
])
def test_a_wrong_value_is_refused_naming_its_path_and_what_was_expected(change, message):
    from runtime.report.typed import FieldError

    data = {"rows": [{"name": "a", "count": 2, "share": 0.5}], "facts": {}, **change}
    with pytest.raises(FieldError) as info:
        _read(data)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)  # what summary.read_report turns into a BundleError
