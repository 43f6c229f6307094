"""Helpers for the ml_collections config files under configs/."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import ml_collections


def sibling_config(config_file: str, name: str) -> ml_collections.ConfigDict:
    """`get_config()` of NAME.py beside `config_file`, for configs that extend another."""
    path = Path(config_file).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"hotdance_config_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def parse_setting(text: str) -> tuple[str, object]:
    """KEY=VALUE -> (KEY, VALUE as a Python literal such as 0.5 or (0, 16), else the string);
    ValueError without an "=" or a key."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"{text!r}: expected KEY=VALUE")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def apply_overrides(config, overrides: str) -> None:
    """key=value[,key=value...] onto a ConfigDict; values are Python literals (tuples too: a
    comma starts a new setting only before another key=) or strings."""
    for item in filter(None, re.split(r",(?=[A-Za-z_][\w.]*=)", overrides)):
        key, value = parse_setting(item)
        *path, name = key.split(".")
        section = config
        for part in path:
            section = section[part]
        section[name] = value
