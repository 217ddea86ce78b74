"""The nightly job: configuration, the per-shard pipeline, the CLI, the demo and
the synthetic book."""
