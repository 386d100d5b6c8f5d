"""Experiments are data: every run is a record in an embedded SQLite database (db.py), sweeps
fan out over points on the local cores or a Dask cluster (sweep.py, engines.py), and the
experiment log lists, shows, diffs and plots the records (log.py)."""
