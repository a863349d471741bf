"""Reading and checking ONNX graphs: the graph index and the Q/DQ lint."""
