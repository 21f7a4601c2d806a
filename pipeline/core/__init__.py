"""Foundations every layer may use: errors and one-line messages, subprocesses, names, settings schemas, bounded JSON,
logging, progress, the network guard, figures.
"""
