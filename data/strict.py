"""The base of every settings and config model: strict, closed, immutable.

Strict: YAML ``true`` is not a batch size and ``"3"`` is not a number of rounds; closed:
an unknown (misspelled) field is an error, never ignored. Each component declares its own
settings on this base, next to its code; the campaign config embeds them.
"""

from pydantic import BaseModel, ConfigDict

__all__ = ["Strict"]


class Strict(BaseModel):
    """A pydantic model that refuses unknown fields, coercions and non-finite numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
