"""Frontends: ONNX files and PyTorch modules become the shared graph IR (``bwsk.ir``)."""
