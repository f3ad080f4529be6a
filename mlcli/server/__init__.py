"""The scoring server: runs an Azure ML v1 entry script (score.py) behind azmlinfsrv's HTTP API.

It runs inside each model's own environment as `python -m mlcli.server` and imports only the
standard library and the packages in requirements.txt: nothing from the rest of mlcli.
"""
