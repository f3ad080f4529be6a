"""Data drift: has what a service receives moved away from what its model was trained on?

`ml datadrift` is the face; these modules are the core, each with one job:

  tables.py      a baseline or target read one column at a time with pyarrow (csv, parquet)
  collected.py   a service's collected model data (Azure's folder layout) as a target table
  features.py    which columns are numeric, categorical or text; text's derived features
  statistics.py  per-feature tests and distances from scipy, and the histograms plots need
  buckets.py     the target's rows by time bucket (--by, --since)
  request.py     what a run is asked, and what it refuses before comparing anything
  detector.py    one run: check both tables, compare overall and per bucket, decide
  runs.py        run records kept in the workspace (`ml datadrift list|show`)
  report.py      the self-contained HTML report (plotly, its JavaScript embedded)

Heavy libraries (pyarrow, numpy, scipy, plotly) are imported inside functions or by these
modules only, never by `mlcli.cli` at import time, so `ml --help` stays fast.
"""
