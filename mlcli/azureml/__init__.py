"""The Azure ML v1 Python SDK's names (`azureml.core`, `azureml.exceptions`) over mlcli's core.

A v1 notebook or script runs against mlcli when its imports say `mlcli.azureml.` where they
said `azureml.`: the same classes, parameter names, positional order, defaults and return
types, calling the same core functions as the `ml` command (registry, config, deploy), so the
two faces see one registry and one set of services. What needs Azure itself (workspace
creation, compute targets, datasets, experiments) raises one error naming what to use here;
an argument mlcli accepts but cannot honour is reported with a warning
(`mlcli.azureml.MlcliSdkWarning`, a UserWarning: `warnings.filterwarnings` silences it).
"""

from mlcli.azureml._support import MlcliSdkWarning

__all__ = ["MlcliSdkWarning"]
