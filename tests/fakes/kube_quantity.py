"""Kubernetes resource quantities ("500m", "8Gi", "2"), parsed and printed as the API does.

Reference: "Resource units in Kubernetes" (kubernetes.io/docs/concepts/configuration/
manage-resources-containers/#resource-units-in-kubernetes) and apimachinery
pkg/api/resource/quantity.go: binary suffixes Ki Mi Gi Ti Pi Ei, decimal suffixes
n u m k M G T P E, plain or exponent numbers.
"""

from __future__ import annotations

import re
from fractions import Fraction

_SUFFIX = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(?:[eE]([+-]?[0-9]+))?(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$")


def parse(text: str | int | float) -> Fraction:
    """The quantity's value; raises ValueError like the API server's 422 would."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(f"quantities must match the regular expression {_QUANTITY.pattern!r}")
    number, exponent, suffix = match.groups()
    value = Fraction(number) * _SUFFIX[suffix or ""]
    return value * Fraction(10) ** int(exponent) if exponent else value


def show(value: Fraction, binary: bool) -> str:
    """Canonical form as Quantity.String() prints it in quota messages: '16Gi', '8', '500m'."""
    if binary and value and value.denominator == 1:
        for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
            if value % _SUFFIX[suffix] == 0:
                return f"{value // _SUFFIX[suffix]}{suffix}"
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value * 1000:.0f}m"
