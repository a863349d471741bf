"""Which tensors of an ONNX file load their data from another file (ONNX "external data").

ONNX Runtime and TensorRT's parser read such a tensor from ``location``, a path relative to
the graph's folder that nothing in the manifest covers with a sha256 (and that may point out of
the bundle). edgeport's exporter never writes external data, so the reader refuses any graph
that has it (runtime/bundle.py). This is a small protobuf walk over the bytes that were just
hashed, because the ``onnx`` package is an export-side dependency the device may not have.

Field numbers are those of onnx/onnx.proto (stable across IR versions).
"""

from __future__ import annotations

# message -> {field number: message type of that (length-delimited) field}
_SCHEMA = {
    "model": {7: "graph", 25: "function"},
    "function": {7: "node"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
}
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_MAX_DEPTH = 64  # nested subgraphs (If/Loop bodies); deeper is not a graph edgeport wrote


class MalformedGraph(ValueError):
    """The bytes are not a protobuf message of the expected shape."""


def _varint(buf, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise MalformedGraph("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf, start: int, end: int):
    """(field number, wire type, value or (start, end) of a length-delimited field)."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, wire, value
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise MalformedGraph("a field runs past its message")
            yield number, wire, (pos, pos + size)
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise MalformedGraph(f"wire type {wire}")
    if pos != end:
        raise MalformedGraph("a field runs past its message")


def _tensor(buf, start: int, end: int) -> str | None:
    """The tensor's name when it uses external data, else None."""
    name, external = "?", False
    for number, wire, value in _fields(buf, start, end):
        if number == _TENSOR_NAME and wire == 2:
            name = bytes(buf[value[0]:value[1]]).decode("utf-8", "replace")
        elif number == _TENSOR_EXTERNAL_DATA and wire == 2:
            external = True
        elif number == _TENSOR_DATA_LOCATION and wire == 0 and value == 1:  # TensorProto.EXTERNAL
            external = True
    return name if external else None


def external_tensors(buf, kind: str = "model", start: int = 0, end: int | None = None, depth: int = 0) -> list[str]:
    """Names of the tensors in the serialized ONNX ``buf`` (bytes, mmap) that use external data."""
    if depth > _MAX_DEPTH:
        raise MalformedGraph("subgraphs nested too deeply")
    end = len(buf) if end is None else end
    found = []
    for number, wire, value in _fields(buf, start, end):
        child = _SCHEMA[kind].get(number)
        if child is None or wire != 2:
            continue
        if child == "tensor":
            name = _tensor(buf, *value)
            if name is not None:
                found.append(name)
        else:
            found += external_tensors(buf, child, value[0], value[1], depth + 1)
    return found
