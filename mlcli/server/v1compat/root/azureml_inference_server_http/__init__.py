"""Stand-in parent for `azureml_inference_server_http.api.aml_request` / `.aml_response`."""
