"""Thin adapters between DataFrame libraries and the core: convert the caller's rows in
(``Rows``), call the core, convert the results out. One module per library."""
