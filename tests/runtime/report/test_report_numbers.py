"""runtime/report/numbers.py: the numbers and words report.md, report.html and the CLI print.
Every expected string is written by hand from the rule in the module's docstring."""

from __future__ import annotations

import pytest

from runtime.report import numbers


@pytest.mark.parametrize("value, text", [
    (1982.029, "1,982 ms"), (12345.6, "12,346 ms"), (192.4, "192 ms"), (99.97, "100 ms"), (19.24, "19.2 ms"),
    (6.912, "6.9 ms"), (1.0, "1.0 ms"), (0.4213, "0.42 ms"), (0.0571, "0.057 ms"), (0.0, "0 ms"), (None, "-")])
def test_latency_is_milliseconds_without_exponents(value, text):
    assert numbers.ms(value) == text
    assert "e" not in numbers.ms_value(value)


@pytest.mark.parametrize("count, text", [
    (14.8866e9, "14.9 GMACs"), (1.814e9, "1.81 GMACs"), (164.14e9, "164 GMACs"), (1e9, "1 GMACs"),
    (555.4e6, "555 MMACs"), (125.3e6, "125 MMACs"), (3.14159e6, "3.14 MMACs"), (310_000, "0.31 MMACs"),
    (None, "-")])
def test_macs_have_three_significant_digits_and_small_nets_read_in_mmacs(count, text):
    assert numbers.macs(count) == text


def test_gmacs_of_the_manifest_read_like_macs():
    assert numbers.gmacs(14.8866) == "14.9 GMACs"
    assert numbers.gmacs(0.00031) == "0.31 MMACs"  # a 16x16 test net, not "0.000 GMACs"


@pytest.mark.parametrize("nbytes, text", [
    (812, "812 B"), (3 * 1024 + 512, "3.5 KiB"), (102_236_160, "97.5 MiB"), (5 * 2 ** 30, "5.0 GiB"),
    (None, "-")])
def test_sizes_are_binary_units_named_as_computed(nbytes, text):
    assert numbers.size(nbytes) == text


def test_mib_column_divides_by_two_to_the_twentieth():
    assert numbers.mib(26_214_400) == "25.0"  # 25 * 2**20 bytes; 26.2 would be MB
    assert numbers.mib(None) == "-"


@pytest.mark.parametrize("share, text", [
    (0.99973, "99.97%"), (0.9999, "99.99%"), (0.999996, "> 99.99%"), (1.0, "100.0%"), (0.5, "50.0%"),
    (0.0004, "0.04%"), (0.0, "0.0%"), (0.000001, "< 0.01%")])
def test_share_never_rounds_to_100_or_0_percent(share, text):
    assert numbers.percent(share) == text


def test_keys_read_as_words():
    assert numbers.words("int8_layers") == "INT8 layers"
    assert numbers.words("qdq_nodes") == "Q/DQ nodes"
    assert numbers.words("some_new_key") == "some new key"
    assert numbers.tolerance({"cosine_min": 0.99, "max_rel_diff": 0.05, "top1_agreement": None}) == \
        "cosine min \u2265 0.99, max rel diff \u2264 0.05"
    assert numbers.tolerance({}) == "none"


def test_input_shape_names_the_batch_axis():
    assert numbers.input_shape(["batch", 3, 256, 256], (1, 8)) == "N \u00d7 3 \u00d7 256 \u00d7 256 (N: batch 1-8)"
    assert numbers.input_shape(["batch", 1, 28, 28], (4, 4)) == "N \u00d7 1 \u00d7 28 \u00d7 28 (N: batch 4)"
    assert numbers.input_shape([1, 3, 224, 224]) == "1 \u00d7 3 \u00d7 224 \u00d7 224"


def test_threads_and_throughput_in_words_and_separators():
    assert numbers.threads(None) == "runtime default"
    assert numbers.threads(4) == "4"
    assert numbers.rate(12345.4) == "12,345"
    assert numbers.rate(52.34) == "52.3"
    assert numbers.params(25_557_032) == "25.56 M parameters"
    assert numbers.params(12_345) == "12,345 parameters"
