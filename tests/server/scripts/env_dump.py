"""Prints once at init and per request, and returns the variables azmlinfsrv sets for scripts."""

import os

NAMES = (
    "AML_APP_ROOT",
    "AZUREML_ENTRY_SCRIPT",
    "AZUREML_MODEL_DIR",
    "AML_APP_INSIGHTS_ENABLED",
    "AML_APP_INSIGHTS_KEY",
    "SERVER_VERSION_LOG_RESPONSE_ENABLED",
    "HTTP_X_MS_SERVER_VERSION",
    "WORKER_COUNT",
    "SERVER_PORT",
    "HEALTH_PORT",
    "AML_CORS_ORIGINS",
    "AZUREML_CONFIG_FILE",
    "TRANSPORT_PROTOCOL",
    "WORKER_TIMEOUT",
    "SEPERATE_HEALTH_ENDPOINT",
)


def init():
    print("env_dump: init called")


def run(data):
    print("env_dump: run called")
    return {name: os.environ.get(name) for name in NAMES}
