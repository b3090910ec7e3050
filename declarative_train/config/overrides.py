"""Command-line overrides as users type them, made readable for Hydra's override grammar."""

from __future__ import annotations

import re

#: Groups whose choice names are numbers (``precision=32``): Hydra would read those as ints.
NUMERIC_CHOICE_GROUPS = ("precision",)
#: Keys whose values are file paths, which may hold '=' (``epoch=3-step=80.ckpt``) or commas.
PATH_KEYS = ("ckpt_path", "resume_dir", "hydra.run.dir", "hydra.sweep.dir")
_NUMERIC_CHOICE = re.compile(r"^(?P<key>[+~]?(?:{}))=(?P<value>[0-9][0-9,]*(?:,[^,]+)*)$".format("|".join(NUMERIC_CHOICE_GROUPS)))
_PATH_VALUE = re.compile(r"^(?P<key>[+]{{0,2}}(?:{}))=(?P<value>[^'\"].*)$".format("|".join(re.escape(k) for k in PATH_KEYS)))


def normalize_overrides(args: list[str]) -> list[str]:
    """Quote what Hydra's override grammar would misread.

    ``precision=32`` -> ``precision='32'`` (a choice name, not an int) and
    ``ckpt_path=ckpts/epoch=3-step=80.ckpt`` -> ``ckpt_path='ckpts/epoch=3-step=80.ckpt'``.
    """
    out = []
    for arg in args:
        choice = _NUMERIC_CHOICE.match(arg)
        path = _PATH_VALUE.match(arg)
        if choice:
            items = [f"'{v}'" if v.isdigit() else v for v in choice["value"].split(",")]
            arg = f"{choice['key']}={','.join(items)}"
        elif path and path["value"] not in ("null", ""):
            arg = f"{path['key']}='{path['value']}'"
        out.append(arg)
    return out


def stored_section_overrides(args: list[str], sections: tuple[str, ...] = ("data",)) -> list[str]:
    """``data.KEY=VALUE`` -> ``++data.KEY=VALUE`` when the command line chooses no ``data`` group.

    For commands that take a section from a checkpoint's stored config: the section composed from
    the defaults (``data=digits``) is replaced by the stored one, so a key only the stored one has
    (``data.predict_path`` of a table) must be accepted when composing; it is set again over the
    stored section, and validation checks it against the constructor it reaches.
    """
    chosen = {arg.partition("=")[0].lstrip("+~") for arg in args if "=" in arg}
    out = []
    for arg in args:
        key, equals, _ = arg.partition("=")
        section = key.partition(".")[0]
        if equals and section in sections and "." in key and section not in chosen and not key.startswith(("+", "~")):
            arg = "++" + arg
        out.append(arg)
    return out
