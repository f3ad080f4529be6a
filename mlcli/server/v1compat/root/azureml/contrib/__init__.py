"""mlcli's stand-in for `azureml.contrib` (shares the namespace with installed azureml-*)."""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)
