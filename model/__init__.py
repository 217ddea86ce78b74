"""Pure computation on arrays: the household problem, its assembly, the HiGHS adapter,
the tax rules, the compliance checker and the estimates. No files, no DuckDB, no Ray."""
