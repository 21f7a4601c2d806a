"""Measuring latency and load: the forked benchmark worker, statistics over rounds, the machine's load."""
