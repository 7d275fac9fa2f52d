"""Tests of zgpu_pandas.Client (a package, so its conftest does not shadow tests/conftest.py)."""
