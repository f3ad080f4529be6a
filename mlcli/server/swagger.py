"""/swagger.json: the OpenAPI document azmlinfsrv serves, versions 2, 3 and 3.1.

A swagger.json (version 2; also swagger2.json) or swagger3.json / swagger3.1.json in the app
root is served as the user wrote it. Otherwise the document describes the three routes, with
ServiceInput/ServiceOutput from inference-schema's decorators (empty objects without them).
Built once, in the worker (which has the script and inference-schema), sent to the front.
"""

from __future__ import annotations

import json
from pathlib import Path

VERSIONS = {"2": "2", "2.0": "2", "3": "3", "3.0": "3", "3.1": "3.1"}  # alias -> document
UNDECORATED = {"type": "object", "example": {}}
ERROR = {"type": "object", "properties": {"message": {"type": "string"}}}
FAILED = "The service failed to execute due to an error."
BEARER = {
    "type": "apiKey",
    "name": "Authorization",
    "in": "header",
    "description": "For example: Bearer abc123",
}


def documents(script, settings) -> dict[str, dict | None]:
    """Each swagger version ("2", "3", "3.1") -> its document, or None when not available."""
    result: dict[str, dict | None] = {}
    for version in ("2", "3", "3.1"):
        result[version] = _user_document(settings.app_root, version) or _generate(
            script, settings, version
        )
    return result


def _user_document(app_root: str, version: str) -> dict | None:
    names = ["swagger.json", "swagger2.json"] if version == "2" else [f"swagger{version}.json"]
    for name in names:
        try:
            with (Path(app_root) / name).open(encoding="utf-8") as file:
                return json.load(file)
        except FileNotFoundError:
            continue
    return None


def _generate(script, settings, version: str) -> dict | None:
    schemas = _schemas(script.run, version)
    if schemas is None:
        return None
    service_input, service_output = schemas
    prefix = "/" + settings.service_path_prefix.strip("/") if settings.service_path_prefix else ""
    info = {
        "title": settings.service_name,
        "description": "API specification for the Azure Machine Learning service "
        + settings.service_name,
        "version": settings.service_version,
    }
    if version == "2":
        return _swagger2(info, prefix, service_input, service_output)
    document = _openapi3(info, prefix, service_input, service_output)
    if version == "3.1":
        document["openapi"] = "3.1.0"
    return document


def _schemas(run, version: str) -> tuple[dict, dict] | None:
    try:
        from inference_schema.schema_util import (
            get_input_schema,
            get_output_schema,
            get_supported_versions,
            is_schema_decorated,
        )
    except ImportError:
        return UNDECORATED, UNDECORATED
    aliases = {alias for alias, target in VERSIONS.items() if target == version}
    if not aliases.intersection(get_supported_versions(run)):
        return None
    if is_schema_decorated(run):
        return get_input_schema(run), get_output_schema(run)
    return UNDECORATED, UNDECORATED


def _swagger2(info: dict, prefix: str, service_input: dict, service_output: dict) -> dict:
    def ref(name: str) -> dict:
        return {"$ref": f"#/definitions/{name}"}

    default = {"description": FAILED, "schema": ref("ErrorResponse")}
    return {
        "swagger": "2.0",
        "info": info,
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {"Bearer": BEARER},
        "paths": {
            f"{prefix}/": {
                "get": _health_operation(
                    {"schema": {"type": "string"}, "examples": {"application/json": "Healthy"}},
                    default,
                )
            },
            f"{prefix}/score": {
                "post": {
                    **_score_operation_head(),
                    "parameters": [
                        {
                            "name": "serviceInputPayload",
                            "in": "body",
                            "description": _PAYLOAD,
                            "schema": ref("ServiceInput"),
                        }
                    ],
                    "responses": {
                        "200": {"description": _SCORED, "schema": ref("ServiceOutput")},
                        "default": default,
                    },
                }
            },
            f"{prefix}/swagger.json": {
                "get": _swagger_operation(
                    {"type": "integer", "enum": [2, 3]},
                    {"schema": {"type": "string"}},
                    default,
                )
            },
        },
        "definitions": {
            "ServiceInput": service_input,
            "ServiceOutput": service_output,
            "ErrorResponse": ERROR,
        },
    }


def _openapi3(info: dict, prefix: str, service_input: dict, service_output: dict) -> dict:
    def json_content(name: str) -> dict:
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}

    default = {"description": FAILED, "content": json_content("ErrorResponse")}
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        "openapi": "3.0.3",
        "info": info,
        "security": [{"Bearer": []}],
        "paths": {
            f"{prefix}/": {
                "get": _health_operation(
                    {
                        "content": {
                            "text/plain": {"schema": {"type": "string", "example": "Healthy"}}
                        }
                    },
                    default,
                )
            },
            f"{prefix}/score": {
                "post": {
                    **_score_operation_head(),
                    "requestBody": {
                        "description": _PAYLOAD,
                        "content": json_content("ServiceInput"),
                    },
                    "responses": {
                        "200": {"description": _SCORED, "content": json_content("ServiceOutput")},
                        "default": default,
                    },
                }
            },
            f"{prefix}/swagger.json": {
                "get": _swagger_operation(
                    {"schema": {"type": "integer", "enum": [2, 3]}},
                    {"content": text},
                    default,
                )
            },
        },
        "components": {
            "schemas": {
                "ServiceInput": service_input,
                "ServiceOutput": service_output,
                "ErrorResponse": ERROR,
            },
            "securitySchemes": {"Bearer": BEARER},
        },
    }


_PAYLOAD = "The input payload for executing the real-time machine learning service."
_SCORED = (
    "The service processed the input correctly and provided a result prediction, if applicable."
)


def _health_operation(ok: dict, default: dict) -> dict:
    return {
        "operationId": "ServiceHealthCheck",
        "description": "Simple health check endpoint to ensure the service is up at any given "
        "point.",
        "responses": {
            "200": {
                "description": "If service is up and running, this response will be returned "
                "with the content 'Healthy'",
                **ok,
            },
            "default": default,
        },
    }


def _score_operation_head() -> dict:
    return {
        "operationId": "RunMLService",
        "description": "Run web service's model and get the prediction output",
        "security": [{"Bearer": []}],
    }


def _swagger_operation(version_type: dict, ok: dict, default: dict) -> dict:
    parameter = {"name": "version", "in": "query", "required": False, **version_type}
    return {
        "operationId": "GetSwaggerSpec",
        "description": "Get the Swagger specification.",
        "parameters": [parameter],
        "responses": {
            "200": {"description": "The Swagger specification.", **ok},
            "default": default,
        },
    }
