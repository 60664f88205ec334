"""The key-value store's protocol core: tuple keys, typed values, versionstamps and atomic commits.

Pure and sans-IO like the rest of `shared/`: the origin's materialised index (origin/kv/index.py)
applies the commit records defined here, and the future HTTP API parses its bodies with them.
"""
