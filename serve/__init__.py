"""Serves the exported MNIST ONNX model over gRPC: the mnist_edge.v1 Classifier API and the Open Inference
Protocol (KServe v2), with health, reflection, dynamic batching and Prometheus metrics.

Depends only on onnxruntime, grpcio, protobuf, numpy, prometheus-client and Pillow; never on torch.
"""
