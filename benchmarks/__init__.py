"""Measuring tools, run from the checkout root as ``python -m benchmarks.NAME`` (docs/performance.md).

Each prints one JSON document. ``--smoke`` runs the tool's own code on tiny random networks and a
few frames in seconds: a check that it works (tests/project/test_documented_commands.py runs every
documented command so); its figures describe no real model.
"""
