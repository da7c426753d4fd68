"""Operating a cache: stats, export and import, savings; shared by the admin API and the CLI."""
