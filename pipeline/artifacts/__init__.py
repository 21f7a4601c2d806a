"""Artifacts and what travels with them: the artifact record, the run manifest, the reference preprocessing, partial
results.
"""
