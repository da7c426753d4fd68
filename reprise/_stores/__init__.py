"""Vector stores: the embedded default (SQLite + in-memory index) and Redis with RediSearch."""
