"""Compression that survives conversion: structured pruning (channels really removed) and int8 quantization."""
