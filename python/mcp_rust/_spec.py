"""Turning the call shapes users pass to ``deploy_server`` into one spec JSON text."""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Tuple, Union

from .errors import ConfigError

SpecLike = Union[Mapping[str, Any], str, bytes]

# Values of `transport` / `type` / `server_type` that name a transport; the node decides
# which are supported (docker is refused there with a clear error).
TRANSPORT_VALUES = frozenset(
    {"stdio", "http", "streamable-http", "streamable_http", "streamablehttp", "docker", "mock"}
)


def spec_dict(spec: SpecLike, what: str = "config") -> dict:
    """A spec as a fresh dict, from a mapping or JSON text."""
    if isinstance(spec, (bytes, bytearray)):
        spec = spec.decode("utf-8")
    if isinstance(spec, str):
        try:
            value = json.loads(spec)
        except ValueError as e:
            raise ConfigError(f"{what} is not valid JSON: {e}", field=what) from None
        if not isinstance(value, dict):
            raise ConfigError(f"{what} must be a JSON object, got {type(value).__name__}", field=what)
        return value
    if isinstance(spec, Mapping):
        return dict(spec)
    raise ConfigError(
        f"{what} must be a dict or a JSON object string, got {type(spec).__name__}", field=what
    )


def normalize(config_or_id: Any, config: Optional[SpecLike] = None) -> Tuple[str, dict]:
    """Accepts ``deploy_server(config)`` and ``deploy_server(server_id, config)``.

    Returns the server name and the spec dict. In the two-argument form the id becomes the
    spec's ``name``; a different ``name`` inside becomes the ``description``. The older API's
    ``server_type`` categories that are not transports (``"infrastructure"``, ...) become a
    tag, so a spec written for it deploys unchanged.
    """
    if config is None:
        spec = spec_dict(config_or_id)
    else:
        if not isinstance(config_or_id, str):
            raise ConfigError("server_id must be a string", field="server_id")
        spec = spec_dict(config, "config_json")
        named = spec.get("name")
        if named is not None and named != config_or_id and "description" not in spec:
            # The older API kept a display name next to the id: keep it as the description.
            spec["description"] = str(named)
        spec["name"] = config_or_id
    category = spec.get("server_type")
    if isinstance(category, str) and category.lower() not in TRANSPORT_VALUES:
        del spec["server_type"]
        tags = list(spec.get("tags") or [])
        if category not in tags:
            tags.append(category)
        spec["tags"] = tags
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError('missing field "name" (the server id)', field="name")
    return name, spec


def spec_type(spec: Mapping[str, Any]) -> Optional[str]:
    """The transport a spec names, if any (``transport``, ``type`` or ``server_type``)."""
    for key in ("transport", "type", "server_type"):
        value = spec.get(key)
        if isinstance(value, str):
            return value.lower()
    return None
