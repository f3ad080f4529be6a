"""Config documents: a JSON or YAML file read into a dict and checked against a JSON Schema.

Every problem becomes one ConfigError paragraph: the file, the line or the field path, what was
wrong and what is allowed.
"""

import difflib
import json
from pathlib import Path
from typing import Any

from mlcli.errors import ConfigError


def read_document(path: Path) -> dict[str, Any]:
    """A JSON or YAML file holding an object; a ConfigError naming the line otherwise."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ConfigError(
            "the file does not exist.", where=where, fix="Check the path and the file name."
        ) from exc
    except IsADirectoryError as exc:
        raise ConfigError(
            "is a folder, not a config file.", where=where, fix="Give the JSON or YAML file."
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot be read ({exc}).", where=where, fix="Check its permissions and encoding."
        ) from exc
    if path.suffix.lower() in (".yml", ".yaml"):
        data = _parse_yaml(text, where)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if path.suffix.lower() == ".json":
                raise ConfigError(
                    f"line {exc.lineno}, column {exc.colno}: {exc.msg}.",
                    where=where,
                    fix="Fix the JSON syntax.",
                ) from exc
            data = _parse_yaml(text, where)
    if not isinstance(data, dict):
        raise ConfigError(
            f"holds {_json_type(data)} at the top; a config file holds an object of fields.",
            where=where,
            fix="Write the fields as a JSON object ({...}) or a YAML mapping.",
        )
    return data


def _parse_yaml(text: str, where: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{at}{problem}.", where=where, fix="Fix the YAML syntax.") from exc


def drop_unset(data: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """v1's "not set": a field whose value is null (JSON null, or a YAML key left empty) or an
    empty string, where the schema does not require it, is left out, as v1 read it. Published
    v1 configs carry `"baseImage": null` and MLOpsPython's YAML leaves `sourceDirectory:`
    empty. Objects the schema describes field by field are cleaned the same way; free-form
    maps (tags, properties, environmentVariables) keep their values, empty strings included.
    """
    fields = schema.get("properties")
    if not fields:
        return data
    required = set(schema.get("required", ()))
    cleaned = {}
    for name, value in data.items():
        spec = fields.get(name) or {}
        if name not in required and (value is None or (value == "" and _is_string(spec))):
            continue
        if isinstance(value, dict) and spec.get("properties"):
            value = drop_unset(value, spec)
        cleaned[name] = value
    return cleaned


def _is_string(spec: dict[str, Any]) -> bool:
    kind = spec.get("type")
    return kind == "string" or (isinstance(kind, list) and "string" in kind)


def validate(
    data: dict[str, Any], schema: dict[str, Any], path: Path | str, *, fix: str = ""
) -> None:
    """Check `data` against a JSON Schema; every violation in one ConfigError paragraph."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        problems = "; ".join(_describe(e) for e in errors)
        raise ConfigError(
            problems if problems.endswith(".") else problems + ".",
            where=str(path),
            fix=fix,
        )


def _describe(error: Any) -> str:
    """One jsonschema error as 'field.path: what was wrong, what is allowed'."""
    field_path = _field_path(error.absolute_path)
    prefix = f"{field_path}: " if field_path else ""
    value, rule, kw = error.instance, error.validator_value, error.validator
    if kw == "enum":
        return f"{prefix}{value!r} is not one of {', '.join(map(str, rule))}"
    if kw == "type":
        wanted = " or ".join(rule) if isinstance(rule, list) else rule
        return f"{prefix}{json.dumps(value)} is {_json_type(value)}; expected {_article(wanted)}"
    if kw == "required":
        missing = [name for name in rule if name not in value]
        return f"{prefix}missing required field {', '.join(map(repr, missing))}"
    if kw == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extras = sorted(set(value) - set(allowed))
        parts = []
        for extra in extras:
            close = difflib.get_close_matches(extra, allowed, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
            parts.append(f"{prefix}unknown field {extra!r} ({hint})")
        return "; ".join(parts)
    bounds = {
        "minimum": "at least",
        "maximum": "at most",
        "exclusiveMinimum": "more than",
        "exclusiveMaximum": "less than",
    }
    if kw in bounds:
        return f"{prefix}{value!r} is out of range; it must be {bounds[kw]} {rule}"
    if kw == "minLength":
        return f"{prefix}must not be empty"
    if kw == "pattern":
        allowed = error.schema.get("x-allowed", f"it must match {rule}")
        return f"{prefix}{value!r} is not valid; {allowed}"
    return f"{prefix}{error.message}"


def _field_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _article(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
