"""Each runtime's per-layer outputs, matched to the model's own modules, and the metrics that compare them: what
`debug` draws, and what int8 fallback and sensitivity ranking use to name layers.
"""
