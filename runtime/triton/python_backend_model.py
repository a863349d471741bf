"""Triton python-backend model written by ``edgeport triton --backend python``.

This file is copied verbatim into ``<repository>/<model>/1/model.py``. It runs inside
Triton's python backend, so it depends only on numpy, onnxruntime and the backend's own
``triton_python_backend_utils``: never on edgeport, which need not be installed there.

What it reads from config.pbtxt (written by edgeport next to it):

- the one input and the one output (names and data types);
- ``parameters { key: "onnx_file" }``: the ONNX file in the version folder;
- ``parameters { key: "intra_op_threads" }`` (optional): ONNX Runtime threads per instance;
  without it, the cores this server process may use (``os.sched_getaffinity``) divided by the
  instance count, so ``--instances N`` never runs N x all-cores threads;
- ``parameters { key: "edgeport.allow_numpy2" }`` (optional, "true"): skip the numpy guard below.

numpy 2 is refused at load: with Triton 2.51's python backend stub (built against numpy 1)
every response came back empty under numpy 2, with no error. A failed load names the fix;
an empty answer would not.

Every ``execute`` call runs the requests Triton's dynamic batcher merged as one ONNX
Runtime batch, then splits the result back per request, so batching pays off here too.
An instance of kind GPU runs on the CUDA execution provider when onnxruntime-gpu is
installed, and on the CPU otherwise.
"""

import json
import os

import numpy as np

# Triton data types of the tensors edgeport bundles use -> numpy.
_NUMPY_TYPES = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_FP64": np.float64,
                "TYPE_INT64": np.int64, "TYPE_INT32": np.int32, "TYPE_INT8": np.int8, "TYPE_UINT8": np.uint8}


def _parameters(config):
    return {k: v.get("string_value", "") for k, v in (config.get("parameters") or {}).items()}


def _check_numpy(pb_utils, params):
    """Refuse numpy 2 (see the module docstring) unless the config allows it explicitly."""
    major = int(np.__version__.split(".")[0])
    if major < 2 or params.get("edgeport.allow_numpy2", "").lower() == "true":
        return
    raise pb_utils.TritonModelException(
        f"edgeport model.py: this python backend runs numpy {np.__version__}, and with Triton's python "
        "backend stub built against numpy 1 (Triton 2.51 and pytriton's build included) every response "
        "comes back empty under numpy 2. Install numpy<2 in the Python the backend runs "
        "(`pip install 'numpy<2'`), or, for a stub built against numpy 2, add parameters "
        '{ key: "edgeport.allow_numpy2" value { string_value: "true" } } to config.pbtxt.')


def _intra_op_threads(params, config):
    """--threads when given, else the usable cores of this server process shared by the instances."""
    threads = int(params.get("intra_op_threads") or 0)
    if threads > 0:
        return threads
    try:
        cores = len(os.sched_getaffinity(0))  # a container's or taskset's limit, not the host's count
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    groups = config.get("instance_group") or [{}]
    instances = sum(int(g.get("count") or 1) for g in groups)
    return max(1, cores // max(1, instances))


def _providers(ort, kind, device_id):
    """CUDA for a GPU instance when this onnxruntime has it; the CPU otherwise."""
    if kind == "GPU" and "CUDAExecutionProvider" in ort.get_available_providers():
        return [("CUDAExecutionProvider", {"device_id": int(device_id or 0)}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class TritonPythonModel:
    """One instance of the model: an ONNX Runtime session on the artifact."""

    def initialize(self, args):
        import onnxruntime as ort
        import triton_python_backend_utils as pb_utils

        self.pb_utils = pb_utils
        config = json.loads(args["model_config"])
        params = _parameters(config)
        _check_numpy(pb_utils, params)
        (inp,), (out,) = config["input"], config["output"]
        self.input_name, self.output_name = inp["name"], out["name"]
        self.input_type = _NUMPY_TYPES[inp["data_type"]]
        self.output_type = _NUMPY_TYPES[out["data_type"]]
        path = os.path.join(args["model_repository"], args["model_version"], params.get("onnx_file", "model.onnx"))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = _intra_op_threads(params, config)
        options.inter_op_num_threads = 1
        providers = _providers(ort, args.get("model_instance_kind"), args.get("model_instance_device_id"))
        self.session = ort.InferenceSession(path, sess_options=options, providers=providers)

    def execute(self, requests):
        """One ONNX Runtime run for all ``requests``; one response per request, in order."""
        pb = self.pb_utils
        arrays = [pb.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests]
        sizes = [len(a) for a in arrays]
        batch = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
        try:
            (out,) = self.session.run([self.output_name], {self.input_name: batch.astype(self.input_type, copy=False)})
        except Exception as exc:  # noqa: BLE001 - every request gets the error, the model stays up
            error = pb.TritonError(f"ONNX Runtime failed on a batch of {len(batch)}: {exc}")
            return [pb.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        out = np.asarray(out, dtype=self.output_type)
        responses = []
        start = 0
        for size in sizes:
            chunk = np.ascontiguousarray(out[start:start + size])
            start += size
            responses.append(pb.InferenceResponse(output_tensors=[pb.Tensor(self.output_name, chunk)]))
        return responses

    def finalize(self):
        self.session = None
