"""Benchmark sections, one module each, registered in ``bench/run.py``.

A section module has a one-line ``TITLE`` and a ``run(settings)`` function
that measures its figures with :mod:`harness` and returns them as a list of
:class:`harness.Row`, each with its peer measured in the same run.
"""
