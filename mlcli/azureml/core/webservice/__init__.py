"""`azureml.core.webservice`: deployed services and their deployment configurations."""

from mlcli.azureml.core.webservice.aci import AciServiceDeploymentConfiguration, AciWebservice
from mlcli.azureml.core.webservice.aks import AksServiceDeploymentConfiguration, AksWebservice
from mlcli.azureml.core.webservice.deployment import WebserviceDeploymentConfiguration
from mlcli.azureml.core.webservice.local import (
    LocalWebservice,
    LocalWebserviceDeploymentConfiguration,
)
from mlcli.azureml.core.webservice.webservice import Webservice

__all__ = [
    "AciServiceDeploymentConfiguration",
    "AciWebservice",
    "AksServiceDeploymentConfiguration",
    "AksWebservice",
    "LocalWebservice",
    "LocalWebserviceDeploymentConfiguration",
    "Webservice",
    "WebserviceDeploymentConfiguration",
]
