"""Prometheus's remote-write messages, generated from ``remote.proto`` by protoc (grpcio-tools).

Only the tests and the benchmark import ``remote_pb2`` (it needs the ``protobuf`` runtime):
the control plane reads these messages with its own decoder (``ingest/remote_write.py``).
"""
