"""`azureml.core.compute`: compute targets are Azure resources; these names raise on use."""

from mlcli.azureml._unavailable import AksCompute, AmlCompute, ComputeInstance, ComputeTarget

__all__ = ["AksCompute", "AmlCompute", "ComputeInstance", "ComputeTarget"]
