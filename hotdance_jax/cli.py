"""Command-line plumbing shared by every `python -m ...` entry point.

Bad input ends a command with one line on stderr, `error: <what and where>`, and a non-zero exit:
status 1 for an InputError raised by the command, 2 for a bad flag, config file or config key.
Library logs (Orbax's INFO lines) are shown from WARNING up unless `-v 0` (or `--verbosity`) asks;
at the default, Orbax's warning that a checkpoint folder is opened read-only (the sampler always
opens it so) is dropped.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from absl import app, flags
from ml_collections import config_flags

from hotdance_jax.errors import InputError, Preempted


def fail(message: str, status: int) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def define_config(default: str, help_text: str = "Config file (configs/NAME.py).") -> Any:
    """`--config=FILE` (default configs/`default`.py of this repository, from any working
    folder) with `--config.a.b=value` overrides; an unknown key is a one-line error.

    ml_collections applies the overrides on sys.argv when the flag is defined, so an unknown key
    surfaces here, at import of the command's module.
    """
    global _config
    try:
        _config = config_flags.DEFINE_config_file("config", str(CONFIGS / f"{default}.py"),
                                                  help_text, lock_config=True)
    except (AttributeError, KeyError) as e:
        _fail_unknown_key(e)
    return _config


_config = None  # the FlagHolder of --config, once defined


def _fail_unknown_key(error: Exception) -> NoReturn:
    """Names the whole dotted key of the override that failed: ml_collections' KeyError names
    only its last part (quoted, perhaps with a suggestion)."""
    match = re.search(r"\w+", str(error))
    leaf = match.group(0) if match else str(error)
    overrides = [arg.removeprefix("--config.").split("=")[0] for arg in sys.argv
                 if arg.startswith("--config.")]
    key = next((key for key in overrides if key.split(".")[-1] == leaf), leaf)
    fail(f"config key {key!r} does not exist (check the --config.* overrides)", 2)


def drop_read_only_notice(record: logging.LogRecord) -> bool:
    """A logging filter: False for Orbax's "Given directory is read only" warning."""
    return not record.getMessage().startswith("Given directory is read only")


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with flag and config-file errors as one line; warnings-only logs."""
    try:
        remaining = flags.FLAGS(argv)
        if flags.FLAGS["verbosity"].using_default_value:
            flags.FLAGS.verbosity = -1  # absl.app would raise an unset verbosity to INFO
            logging.getLogger("absl").addFilter(drop_read_only_notice)
        if _config is not None:
            # Touching an attribute makes a config that failed to load raise its OSError here.
            _config.value.to_dict  # noqa: B018
    except (AttributeError, KeyError) as e:
        _fail_unknown_key(e)
    except flags.Error as e:
        fail(str(e).splitlines()[0], 2)
    except OSError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        fail(f"cannot load --config: {' '.join(lines[-3:])}", 2)
    return remaining


def require_flags(*names: str) -> None:
    """InputError "--NAME is required" for the first of the command's flags `names` not given."""
    for name in names:
        if not flags.FLAGS[name].value:
            raise InputError(f"--{name} is required")


def command(main: Callable[[list[str]], Any], define_flags: Callable[[], None]
            ) -> Callable[[], None]:
    """A module's command: defines its flags (only when it runs, so modules import side-effect
    free) and runs `main` as `run` does. Both its `python -m` entry and its console script
    (pyproject.toml) call it."""

    def start() -> None:
        define_flags()
        run(main)

    return start


def run(main: Callable[[list[str]], Any]) -> None:
    """app.run(main) where an InputError from main exits 1 with one line, and a preempted
    training (its message already printed) exits 0."""

    @functools.wraps(main)
    def guarded(argv: list[str]) -> Any:
        try:
            return main(argv)
        except InputError as e:
            fail(str(e), 1)
        except Preempted:
            sys.exit(0)

    app.run(guarded, flags_parser=_parse_flags)
