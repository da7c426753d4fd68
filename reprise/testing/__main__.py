"""`python -m reprise.testing --port N [--latency S] [--embeddings local]`: the fake upstream."""

from reprise.testing.upstream import main

main()
