"""DuckDB and Parquet: reading and validating the input contract, sharding,
writing outputs with the commit protocol, and the warm-start state."""
