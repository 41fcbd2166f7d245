"""Fuzz targets and their runner (issue 13 §4). See run.py for how to run them.

Convention: each ``target_<name>.py`` defines ``one_input(data: bytes) -> None``, which must
not raise anything except what it documents and catches itself, and optionally
``SEEDS: list[bytes]`` to start mutating from.
"""
