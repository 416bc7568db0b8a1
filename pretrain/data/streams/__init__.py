"""Streams and loaders: the named stages, shard selection, batching, resumable train/eval loaders."""
