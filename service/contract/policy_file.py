"""Reading the policy file (TOML) into a validated :class:`~allocator.policy.Policy`."""

from __future__ import annotations

import errno
import os
import re
import tomllib
from pathlib import Path

from allocator.errors import InputError, InputProblem
from allocator.policy import Policy, policy_from_dict

_WHERE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def load_policy_text(text: str, file: str = "policy.toml") -> Policy:
    """Parse and validate a policy given as TOML text.

    Parameters
    ----------
    text : str
        The TOML document.
    file : str
        Name used in problem reports.

    Returns
    -------
    Policy

    Raises
    ------
    InputError
        A TOML syntax error (one problem whose ``row`` is the line), or every
        policy problem found by :func:`allocator.policy.policy_from_dict`.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _WHERE.search(message)
        if found is None:
            rule = f"invalid TOML: {message}"
            line = None
        else:
            line = int(found.group(1))
            rule = f"invalid TOML at line {line}, column {found.group(2)}: " + message[
                : found.start()
            ]
        raise InputError([InputProblem(file, line, None, None, rule)]) from None
    return policy_from_dict(data, file=file)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read, parse and validate a policy file.

    Parameters
    ----------
    path : path-like
        The TOML file (UTF-8).

    Returns
    -------
    Policy

    Raises
    ------
    FileNotFoundError
        When there is no such file.
    InputError
        When the file is not UTF-8, not TOML, or breaks a policy rule.
    """
    p = Path(path)
    file = str(path)
    if not p.is_file():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), file)
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError([InputProblem(file, None, None, None, f"the file is not UTF-8 text "
                                       f"({exc.reason} at byte {exc.start})")]) from None
    return load_policy_text(text, file)
