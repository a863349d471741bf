"""Models: the registry, the seed architectures, user factories, ONNX files, weights and outputs."""
