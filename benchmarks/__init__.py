"""Speed, latency and memory benchmarks: our runtime (ONNX Runtime bundle) against PyTorch eager.

`python -m benchmarks.e2e` writes benchmarks/results/; `python -m pytest benchmarks/
--benchmark-enable` runs the per-stage micro-benchmarks. Neither runs in the default test pass.
"""
