"""Frozen-dataclass configuration: dict/YAML round trips and checked overrides.

Every configurable object in voiceconv is a frozen dataclass. This module
turns them into plain dicts (for JSON model headers and YAML recipes) and back,
and applies command-line overrides such as ``--set features.n_mels=128``,
rejecting unknown keys with the list of valid ones.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from voiceconv.errors import ConfigError

T = TypeVar("T")


def to_dict(config: Any) -> dict[str, Any]:
    """A nested plain-dict copy of a dataclass (JSON/YAML serialisable)."""
    return dataclasses.asdict(config)


def from_dict(cls: type[T], values: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from a (nested) dict, rejecting unknown keys."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(_join(where, k) for k in unknown)}; "
            f"valid keys: {', '.join(_join(where, k) for k in fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(hints[name], value, _join(where, name)) for name, value in values.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as err:  # a dataclass's own check of its values (__post_init__)
        raise ConfigError(str(err)) from None


def apply_overrides(config: T, overrides: list[str]) -> T:
    """Return ``config`` with ``key.sub=value`` overrides applied (values parsed as YAML)."""
    values = to_dict(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key=value, e.g. features.n_mels=128")
        _set_path(values, key.strip().split("."), yaml.safe_load(raw), type(config))
    return from_dict(type(config), values)


def read_recipe(path: str | Path, _extending: tuple[Path, ...] = ()) -> dict:
    """The mapping of sections in a recipe (or config) YAML file: the one way recipes are read.

    ``extends: OTHER.yaml`` (a path relative to this file) starts from that recipe's sections; this file's
    values replace its values key by key, nested sections merged (lists are replaced whole).

    Raises :class:`ConfigError` when the file cannot be read, is not YAML, is not a mapping, or extends in a
    loop."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config file ({err.strerror})") from None
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections, got {type(values).__name__}")
    base = values.pop("extends", None)
    if base is None:
        return values
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: extends must name a recipe file, got {base!r}")
    chain, base_path = (*_extending, path.resolve()), (path.parent / base).resolve()
    if base_path in chain:
        raise ConfigError(f"{path}: extends {base} in a loop")
    return merged(read_recipe(base_path, chain), values)


def merged(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` applied key by key; mappings under the same key are merged the same way."""
    result = dict(base)
    for key, value in changes.items():
        both_mappings = isinstance(value, dict) and isinstance(result.get(key), dict)
        result[key] = merged(result[key], value) if both_mappings else value
    return result


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Load dataclass ``cls`` from a YAML file; missing keys keep their defaults."""
    values = read_recipe(path)
    try:
        return from_dict(cls, values)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def save_yaml(config: Any, path: str | Path) -> None:
    """Write a dataclass as YAML (tuples as lists)."""
    Path(path).write_text(yaml.safe_dump(_tuples_as_lists(to_dict(config)), sort_keys=False), encoding="utf-8")


def _tuples_as_lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _tuples_as_lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tuples_as_lists(v) for v in value]
    return value


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _set_path(values: dict, keys: list[str], value: Any, cls: type, where: str = "") -> None:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    head = keys[0]
    if head not in fields:
        raise ConfigError(
            f"unknown key {_join(where, head)!r}; valid keys: {', '.join(_join(where, k) for k in fields)}"
        )
    if len(keys) == 1:
        values[head] = value
        return
    sub_cls = typing.get_type_hints(cls)[head]
    if not dataclasses.is_dataclass(sub_cls):
        raise ConfigError(f"{_join(where, head)!r} is a value, not a section; use {_join(where, head)}=...")
    _set_path(values[head], keys[1:], value, sub_cls, _join(where, head))


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Check/convert ``value`` against a field's type hint (int -> float allowed)."""
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a valid {hint}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        items = [_coerce(item, v, where) for v in value] if item is not Any else list(value)
        return origin(items)
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, typing.get_args(hint)))}")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        return float(value)  # PyYAML reads exponents without a dot ("5e-5") as text
    if hint in (int, float, str, bool) and not (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value
