"""Kernel plumbing shared by methods and runtimes: torch's CPU/CUDA weight-only layouts, MatMulNBits
packing, ONNX export, torch.ao int8 engines, torchao recipes and GPU capability rules. Imports no
method and no runtime."""
