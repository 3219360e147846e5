"""Families of generalized linear mixed models, by name or as objects with a link.

``family=`` of :func:`mixedfx.glmm` takes any of::

    "binomial"                      # logit link
    "poisson"                       # log link
    "binomial(link='probit')"       # R's spelling (read, never evaluated)
    mfx.family.binomial("cloglog")  # objects
    mfx.family.poisson()

Binomial links: ``logit``, ``probit``, ``cloglog``; Poisson: ``log``. The
distributions and links themselves are in :mod:`mixedfx.engine.family`.
"""

from __future__ import annotations

import re

from .engine.family import CANONICAL, FAMILIES, Family, Link, make

__all__ = ["Family", "Link", "binomial", "poisson", "resolve"]

_CALL = re.compile(r"^\s*(\w+)\s*(?:\(\s*(?:link\s*=\s*)?(?:[\"']?(\w+)[\"']?)?\s*\))?\s*$")


def binomial(link: str = "logit") -> Family:
    """The binomial family (0/1 outcomes, or proportions with trials as weights)."""
    return _family("binomial", link)


def poisson(link: str = "log") -> Family:
    """The Poisson family (counts)."""
    return _family("poisson", link)


def resolve(family: str | Family) -> Family:
    """A :class:`Family` from a name, an R-style call or itself.

    ``"binomial"``, ``"binomial(link='probit')"``, ``binomial("probit")``.

    Raises
    ------
    ValueError
        For an unknown family or link, naming the ones there are.
    """
    if isinstance(family, Family):
        return family
    if not isinstance(family, str):
        raise ValueError(
            f"family must be 'binomial', 'poisson' or mixedfx.family.binomial(link=...), "
            f"got {family!r}"
        )
    match = _CALL.match(family)
    if match is None:
        raise ValueError(
            f"cannot read family {family!r}; write e.g. 'binomial' or \"binomial(link='probit')\""
        )
    return _family(match.group(1), match.group(2))


def _family(name: str, link: str | None) -> Family:
    if name not in FAMILIES:
        hint = "; for a Gaussian response use mixedfx.lmm" if name == "gaussian" else ""
        raise ValueError(f"unknown family {name!r}; mixedfx fits {sorted(FAMILIES)}{hint}")
    link = CANONICAL[name] if link is None else link
    if link not in FAMILIES[name]:
        raise ValueError(f"the {name} family takes the links {list(FAMILIES[name])}, not {link!r}")
    return make(name, link)
