"""Layer 9: traffic, labels and fault runs against a running stack (tests, demo, chaos, benchmarks)."""
