"""Turning the call shapes users pass to ``deploy_server`` into one spec.

Only what is Python-specific lives here: accepting a dict or JSON text, and the two-argument
``deploy_server(server_id, config)`` form. Fields, their aliases (``type`` / ``server_type``
for ``transport``, an older-API ``server_type`` category becoming a tag) and their
validation belong to the node, so every client gets the same rules and errors.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Tuple, Union

from .errors import ConfigError

SpecLike = Union[Mapping[str, Any], str, bytes]

# The fields that may name a transport, in the order the node reads them.
TRANSPORT_FIELDS = ("transport", "type", "server_type")


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


def normalize(config_or_id: Any, config: Optional[SpecLike] = None) -> Tuple[Optional[str], dict]:
    """Accepts ``deploy_server(config)`` and ``deploy_server(server_id, config)``.

    Returns the server name (None if the spec has none: the node refuses it) and the spec
    dict, otherwise unchecked. In the two-argument form the id becomes the spec's ``name``;
    a different ``name`` inside becomes the ``description``.
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
    name = spec.get("name")
    return (name if isinstance(name, str) else None), spec


def spec_type(spec: Mapping[str, Any]) -> Optional[str]:
    """The transport a spec names, if any (``transport``, ``type`` or ``server_type``)."""
    for key in TRANSPORT_FIELDS:
        value = spec.get(key)
        if isinstance(value, str):
            return value.lower()
    return None
