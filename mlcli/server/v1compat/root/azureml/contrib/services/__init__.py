"""azureml.contrib.services: aml_request and aml_response are installed by mlcli.server.v1compat."""
