"""Models: feature contracts, model cards, the on-disk registry and the ONNX Runtime scorer.

Pure Python + numpy + onnx/onnxruntime; never imports pyflink or confluent_kafka.
Training-only dependencies (scikit-learn, skl2onnx) are imported only by
``models.build_demo``.
"""
