"""Release bundles: the chosen artifacts of one run, with everything a phone app or a reviewer needs to trust them.

`bundle.build` writes `<out>/<recipe>-<version>-<target>/` and the same tree as a reproducible `.tar.gz`;
`verify.verify` checks such a bundle end to end (safe extraction, SHA256SUMS, metadata schema, recorded outputs).
"""
