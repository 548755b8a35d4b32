"""Request bodies: parsed as strict JSON, then validated against the request schemas of our
own ``openapi.yaml`` (with jsonschema), so the contract and the server cannot drift.

Every refusal is a 400 ``bad_request`` whose message names the failing field, e.g.
``Field 'env[0].action' must be one of replace, append, prepend; got 'set'``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from typing import Any

import yaml
from jsonschema import Draft7Validator, ValidationError, validators
from jsonschema.exceptions import best_match

from session_ext.core import errors

OPENAPI_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "openapi.yaml")
MAX_JSON_DEPTH = 64  # nesting levels a request body may have
JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


# --- strict JSON ---------------------------------------------------------------------------


def loads(raw: bytes | str, what: str = "request body") -> Any:
    """JSON with no NaN or Infinity (nor numbers that overflow to it) and at most
    ``MAX_JSON_DEPTH`` levels of nesting; 400 naming the field otherwise."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise errors.bad_request(
            f"The {what} is nested more than {MAX_JSON_DEPTH} levels deep"
        ) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise errors.bad_request(f"The {what} is not valid JSON", details=str(e)) from None
    _check_tree(value, what)
    return value


def _check_tree(value: Any, what: str) -> None:
    """One pass over the parsed tree (no recursion): depth and finite numbers."""
    stack: list[tuple[Any, tuple]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            name = "NaN" if math.isnan(node) else "Infinity" if node > 0 else "-Infinity"
            raise errors.bad_request(f"{_subject(path, what)} must be a finite number, not {name}")
        if isinstance(node, (dict, list)):
            if len(path) >= MAX_JSON_DEPTH:
                raise errors.bad_request(
                    f"{_subject(path[:1], what)} is nested more than {MAX_JSON_DEPTH} levels deep"
                )
            items = node.items() if isinstance(node, dict) else enumerate(node)
            stack.extend((child, (*path, key)) for key, child in items)


def field_name(path: Any) -> str:
    """``('env', 0, 'name')`` → ``env[0].name``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _subject(path: Any, what: str = "request body") -> str:
    return f"Field '{field_name(path)}'" if path else f"The {what}"


# --- the schemas of openapi.yaml ----------------------------------------------------------


def _ecma_pattern(validator, pattern, instance, schema):
    """``pattern`` as OpenAPI means it (ECMA 262): ``$`` is the end of the string, where
    Python's ``re`` would also accept a trailing newline before it."""
    if isinstance(instance, str) and not _compiled(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def _compiled(pattern: str) -> re.Pattern:
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


Validator = validators.extend(Draft7Validator, {"pattern": _ecma_pattern})


def to_json_schema(node: Any, components: dict[str, Any]) -> Any:
    """An OpenAPI 3.0 schema as plain JSON Schema: references inlined, ``nullable`` as a
    ``null`` type (and ``None`` in an enum), ``oneOf: [X, NullBody]`` as a nullable X."""
    if isinstance(node, list):
        return [to_json_schema(v, components) for v in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = components[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return to_json_schema(merged, components)
    one_of = node.get("oneOf")
    if one_of and len(one_of) == 2 and {"$ref": "#/components/schemas/NullBody"} in one_of:
        other = next(s for s in one_of if s != {"$ref": "#/components/schemas/NullBody"})
        rest = {k: v for k, v in node.items() if k != "oneOf"}
        return to_json_schema({**other, **rest, "nullable": True}, components)
    schema = {k: to_json_schema(v, components) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        if "type" in schema:
            schema["type"] = [schema["type"], "null"]
        if "enum" in schema and None not in schema["enum"]:
            schema["enum"] = [*schema["enum"], None]
    return schema


@functools.cache
def validator(name: str) -> Any:
    """The validator of ``components.schemas[name]`` (built once)."""
    with open(OPENAPI_PATH, encoding="utf-8") as f:
        components = yaml.safe_load(f)["components"]["schemas"]
    return Validator(to_json_schema(components[name], components))


def validate(name: str, body: Any) -> dict[str, Any]:
    """``body`` checked against the schema ``name``; 400 naming the first failing field."""
    error = best_match(validator(name).iter_errors(body))
    if error is not None:
        raise errors.bad_request(describe(error))
    return body


def given(name: str, body: Any) -> dict[str, Any]:
    """The fields of a valid ``body``, nulls left out (null means absent)."""
    return {k: v for k, v in validate(name, body).items() if v is not None}


def describe(error: ValidationError) -> str:
    subject = _subject(error.absolute_path)
    kind, expected, value = error.validator, error.validator_value, error.instance
    if "x-error" in error.schema and kind not in ("type", "required"):
        return f"{subject} {error.schema['x-error']}"
    if kind == "type":
        types = [t for t in ([expected] if isinstance(expected, str) else expected) if t != "null"]
        names = " or ".join(f"{'an' if t[0] in 'aeio' else 'a'} {t}" for t in types)
        if not error.absolute_path:
            names = names.replace("an object", "a JSON object")
        return f"{subject} must be {names}, not {JSON_TYPES.get(type(value), 'unknown')}"
    if kind == "required":
        missing = next(n for n in expected if n not in value)
        return f"Field '{field_name([*error.absolute_path, missing])}' is required"
    if kind == "enum":
        allowed = ", ".join(str(v) for v in expected if v is not None)
        return f"{subject} must be one of {allowed}; got {value!r}"
    if kind in ("minimum", "maximum"):
        return f"{subject} must be {'>=' if kind == 'minimum' else '<='} {expected}; got {value}"
    if kind in ("minLength", "maxLength", "minItems", "maxItems", "maxProperties"):
        unit = "characters" if "Length" in kind else "items" if "Items" in kind else "keys"
        bound = "at least" if kind.startswith("min") else "at most"
        return f"{subject} must have {bound} {expected} {unit}"
    return f"{subject} is invalid: {error.message}"
