"""mlcli's stand-in for the `azureml` namespace (shares it with any installed azureml-* package)."""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)
