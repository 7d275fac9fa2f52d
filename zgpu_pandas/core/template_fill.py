"""What an empty field of a prompt template does (``missing=``).

With ``prompt="Subject: {subject}\\nBody: {body}"`` a row whose ``body`` is missing or blank
is, by default (``missing="skip"``), not sent: status ``skipped``, code ``missing_prompt`` or
``empty_prompt``, the reason naming the column. That default never sends a half-filled
prompt, but on a frame where one field is often empty it drops rows that had something to
ask, so there is a choice:

- ``missing="empty"``: an empty field becomes empty text; a row is skipped only when every
  field of the template is missing or blank (there is nothing to ask);
- ``missing={"body": "(no body)"}``: a fill text per column; the columns not named keep
  skipping.

Example::

    fill = fills_for("empty", ["subject", "body"])     # {"subject": "", "body": ""}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ..errors import OptionError

__all__ = ["MissingOption", "fills_for"]

MissingOption = Literal["skip", "empty"] | Mapping[str, str]


def fills_for(missing: Any, columns: Sequence[Any]) -> dict[Any, str]:
    """The fill text of each template column that gets one (none for ``"skip"``)."""
    if isinstance(missing, str):
        if missing == "skip":
            return {}
        if missing == "empty":
            return {c: "" for c in columns}
    elif isinstance(missing, Mapping):
        names = {str(c): c for c in columns}
        unknown = [k for k in missing if str(k) not in names]
        if unknown:
            raise OptionError(
                f"missing= names {', '.join(map(repr, unknown))}, which the template does not "
                f"use (its fields: {', '.join(map(repr, names))})."
            )
        bad = [k for k, v in missing.items() if not isinstance(v, str)]
        if bad:
            raise OptionError(
                f"missing= fill values must be text; {', '.join(map(repr, bad))} is not."
            )
        return {names[str(k)]: v for k, v in missing.items()}
    raise OptionError(
        f"missing= must be 'skip', 'empty' or a dict of fill texts per column, not {missing!r}."
    )
