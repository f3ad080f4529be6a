"""mlcli: Azure ML v1 "deploy an existing model", self-hosted."""

__version__ = "0.1.0"
