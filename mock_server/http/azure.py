"""What Azure OpenAI's model endpoints read besides the body: the deployment in the path, which picks
the model (and so the scenario) as `model` does elsewhere, and the `api-version` query parameter that
every request must carry, one of the versions Azure documents."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mock_server.errors import MissingApiVersionError, UnsupportedApiVersionError
from mock_server.http import embeddings, model_request, openapi
from mock_server.http.model_request import ModelRequest

GA_VERSIONS = ("2022-12-01", "2023-05-15", "2024-02-01", "2024-06-01", "2024-10-21")
PREVIEW_VERSIONS = (
    "2023-03-15-preview",
    "2023-06-01-preview",
    "2023-07-01-preview",
    "2023-08-01-preview",
    "2023-09-01-preview",
    "2023-10-01-preview",
    "2023-12-01-preview",
    "2024-02-15-preview",
    "2024-03-01-preview",
    "2024-04-01-preview",
    "2024-05-01-preview",
    "2024-07-01-preview",
    "2024-08-01-preview",
    "2024-09-01-preview",
    "2024-10-01-preview",
    "2024-12-01-preview",
    "2025-01-01-preview",
    "2025-02-01-preview",
    "2025-03-01-preview",
    "2025-04-01-preview",
)
API_VERSIONS = (*GA_VERSIONS, *PREVIEW_VERSIONS)
"""The data-plane inference versions of Azure OpenAI's REST reference (Azure/azure-rest-api-specs,
specification/cognitiveservices/data-plane/AzureOpenAI/inference/{stable,preview}), the only ones
accepted: any other, well-formed or not, is Azure's 400 "API version not supported"."""
EXAMPLE_VERSION = "2024-10-21"
"""The latest GA version: what the examples send."""
_ACCEPTED = frozenset(API_VERSIONS)


def check_api_version(query: Mapping[str, str]) -> None:
    """Pass a query with one of API_VERSIONS as `api-version`; raise Azure's error otherwise."""
    version = query.get("api-version")
    if not version:
        raise MissingApiVersionError(EXAMPLE_VERSION)
    if version not in _ACCEPTED:
        raise UnsupportedApiVersionError(version, API_VERSIONS)


def _for_deployment(body: Mapping[str, Any], params: Mapping[str, str]) -> Mapping[str, Any]:
    """The body with the deployment as its model: Azure ignores the body's `model` (which must still be a
    string when given: the reader refuses it otherwise, in its turn). A copy of the body's top level,
    not a copy of the request read (`dataclasses.replace`: 2 us)."""
    deployment = params.get("deployment")
    model = body.get("model")
    if deployment is None or not (model is None or isinstance(model, str)):
        return body
    return {**body, "model": deployment}


def read_chat(body: Mapping[str, Any], params: Mapping[str, str]) -> ModelRequest:
    return model_request.read_chat(_for_deployment(body, params), params)


def read_completions(body: Mapping[str, Any], params: Mapping[str, str]) -> ModelRequest:
    return model_request.read_legacy_completions(_for_deployment(body, params), params)


def read_embeddings(body: Mapping[str, Any], params: Mapping[str, str]) -> ModelRequest:
    """OpenAI's embeddings request, checked and answered for the deployment's name as its model."""
    deployment = params.get("deployment")
    return embeddings.read_embeddings(body if deployment is None else {**body, "model": deployment}, params)


def example_path(operation: str) -> Callable[[str, bool], str]:
    """Where a request for (model, stream) goes: the model's deployment, the latest GA version."""
    return lambda model, stream: f"/openai/deployments/{model}/{operation}?api-version={EXAMPLE_VERSION}"


def _with_parameters(extra: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` of an OpenAI route, with Azure's deployment and `api-version`."""
    parameters = [
        {"name": "deployment", "in": "path", "required": True, "schema": {"type": "string"}},
        {
            "name": "api-version",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "enum": list(API_VERSIONS)},
        },
    ]
    return {**extra, "parameters": parameters}


OPENAPI_CHAT = _with_parameters(openapi.CHAT)
OPENAPI_COMPLETIONS = _with_parameters(openapi.LEGACY)
OPENAPI_EMBEDDINGS = _with_parameters(openapi.EMBEDDINGS)
