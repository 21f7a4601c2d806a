"""The engine: composes stages into a run (plan, then execute), caches each result by the hash of its code, settings and
inputs, and holds one lock per run folder.
"""
