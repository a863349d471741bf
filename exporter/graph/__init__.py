"""Graph rewrites on Q/DQ graphs: layers back to float, FP16 regions."""
