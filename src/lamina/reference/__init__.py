"""Image reference grammar and Docker's normalisation (pure: no I/O).

Start with :func:`parse_reference`; see :mod:`lamina.reference._reference` for the
grammar and the normalisation rules.
"""

from lamina.reference._reference import (
    DEFAULT_DOMAIN,
    DEFAULT_TAG,
    NAME_TOTAL_LENGTH_MAX,
    Reference,
    is_image_id,
    parse_reference,
)

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "NAME_TOTAL_LENGTH_MAX",
    "Reference",
    "is_image_id",
    "parse_reference",
]
