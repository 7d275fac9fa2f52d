"""Tests of zgpu_pandas.Client."""
