"""INT8: calibration data, Q/DQ quantization, the CPU INT8 graph, accuracy budgets and sensitivity."""
