"""Recipes and targets as validated data: the Config record, TOML reading, overrides, the target schema, input
resolution.
"""
