"""Prices: the units a component's ``cost`` is given in, the catalogue of instance types, and
one line of a design's cost.

Every price is in US dollars (USD); a month is 730 hours (8,760 hours a year over 12 months),
so an hourly price times 730 is a month of one box. The catalogue maps an instance type's
name (``m7g.large``) to its on-demand price per hour and its core count (the vCPUs its
provider lists). The built-in one ships as ``catalogue.yaml`` next to this module, each
figure with the page it was read from and when; a spec's top-level ``catalogue`` names a
file of the same format (or gives the mapping inline) whose types are added to it, and
replace built-in ones of the same name. The cost model itself is :mod:`simarch.model.cost`.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import functools
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import Field, model_validator

from ..errors import SpecError, excerpt
from .fields import MAX_WORKERS, Real, _Model
from .files import open_text
from .yamlio import yaml_load

CURRENCY = "USD"
HOURS_PER_MONTH = 730.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0  # 2,628,000

#: The units of price a spec may give, and what one unit of each is.
UNITS: MappingProxyType[str, str] = MappingProxyType({
    "per_instance_hour": "instance-hour",
    "per_replica_hour": "replica-hour",
    "per_gb_month": "GB-month",
    "per_million_messages": "million messages",
})
HOURLY_UNITS = ("per_instance_hour", "per_replica_hour")

BUILTIN = Path(__file__).resolve().with_name("catalogue.yaml")


class CostSpec(_Model):
    """A component's price, in exactly one unit (which units a kind accepts is the kind's
    ``cost_units``): USD per instance-hour, per replica-hour, per GB-month of cache memory,
    or per million messages."""

    per_instance_hour: Real | None = Field(None, ge=0, description="USD per instance and hour")
    per_replica_hour: Real | None = Field(None, ge=0, description="USD per datastore replica and hour")
    per_gb_month: Real | None = Field(None, ge=0, description="USD per GB of cache memory and month")
    per_million_messages: Real | None = Field(None, ge=0, description="USD per million messages")

    @model_validator(mode="after")
    def _one_unit(self) -> CostSpec:
        given = [u for u in UNITS if getattr(self, u) is not None]
        if len(given) != 1:
            raise ValueError(f"give the price in one unit, not {' and '.join(given)}" if given
                             else f"give the price in one unit ({', '.join(UNITS)})")
        return self

    @property
    def unit(self) -> str:
        return next(u for u in UNITS if getattr(self, u) is not None)

    @property
    def price(self) -> float:
        return float(getattr(self, self.unit))


# --------------------------------------------------------------------------- instance types


@dataclass(frozen=True)
class InstanceType:
    """One entry of a catalogue: an on-demand price per hour (USD) and a core count."""

    name: str
    per_hour: float
    cores: int
    memory_gib: float | None = None
    provider: str | None = None
    service: str | None = None
    region: str | None = None
    source: str | None = None  # the page the price was read from (None: not confirmed)
    published: str | None = None  # the date that page gives
    read: str | None = None  # when it was read
    note: str | None = None
    catalogue: str = field(default="built-in", compare=False)  # where it comes from: built-in, a file, inline

    def to_spec(self) -> str:
        return self.name

    def to_entry(self) -> dict[str, Any]:
        """The entry as a catalogue file writes it (the fields that are set)."""
        out: dict[str, Any] = {"per_hour": self.per_hour, "cores": self.cores}
        for f in _OPTIONAL:
            v = getattr(self, f)
            if v is not None:
                out[f] = v
        return out


_TEXT = ("provider", "service", "region", "source", "published", "read", "note")
_OPTIONAL = ("memory_gib", *_TEXT)
_FIELDS = ("per_hour", "cores", *_OPTIONAL)
_TOP = ("types", "description")
MAX_NAME = 100
MAX_LISTED = 30  # instance type names an error lists at most


class Catalogue:
    """Instance types by name."""

    def __init__(self, types: Mapping[str, InstanceType], name: str = "built-in"):
        self.types = dict(types)
        self.name = name

    def __contains__(self, name: object) -> bool:
        return name in self.types

    def __len__(self) -> int:
        return len(self.types)

    def get(self, name: Any) -> InstanceType | None:
        return self.types.get(name) if isinstance(name, str) else None

    def lookup(self, name: Any) -> InstanceType:
        """The entry named ``name``; a ``ValueError`` with the close names and the allowed
        ones otherwise."""
        found = self.get(name)
        if found is not None:
            return found
        if not isinstance(name, str):
            raise ValueError(f"an instance type is a name such as 'm7g.large', got {excerpt(name)}")
        names = sorted(self.types)
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        listed = ", ".join(names[:MAX_LISTED]) + (f", ... ({len(names)} in all)" if len(names) > MAX_LISTED else "")
        raise ValueError(f"unknown instance type {excerpt(name)} ({hint}allowed: {listed}); "
                         "a type of your own goes in a catalogue file (the spec's 'catalogue')")

    def overlaid(self, other: Catalogue) -> Catalogue:
        """This catalogue with the types of ``other`` added (and replacing those it names)."""
        return Catalogue({**self.types, **other.types}, other.name)


@functools.cache
def builtin_catalogue() -> Catalogue:
    """The catalogue shipped with simarch (``simarch/model/catalogue.yaml``)."""
    text = BUILTIN.read_text(encoding="utf-8")
    return parse_catalogue(yaml_load(text, str(BUILTIN)), str(BUILTIN), name="built-in")


def parse_catalogue(data: Any, source: str | None, prefix: tuple = (), name: str | None = None) -> Catalogue:
    """Validate a catalogue mapping (``{types: {name: {per_hour, cores, ...}}}``); every
    problem is a :class:`SpecError` naming ``source`` and the path of the field inside it."""
    if not isinstance(data, dict):
        raise SpecError("a catalogue is a mapping with 'types': {name: {per_hour: USD, cores: N}}",
                        prefix, source)
    for key in data:
        if key not in _TOP:
            raise SpecError(_unknown(key, _TOP), (*prefix, key), source)
    types = data.get("types")
    if not isinstance(types, dict) or not types:
        raise SpecError("'types' maps instance type names to {per_hour: USD, cores: N}",
                        (*prefix, "types"), source)
    label = name or source or "inline"
    out = {}
    for type_name, entry in types.items():
        where = (*prefix, "types", type_name)
        if not isinstance(type_name, str) or not type_name.strip() or len(type_name) > MAX_NAME \
                or any(c.isspace() for c in type_name):
            raise SpecError(f"an instance type's name is a word such as 'm7g.large', got {excerpt(type_name)}",
                            (*prefix, "types"), source)
        out[type_name] = _entry(type_name, entry, where, source, label)
    return Catalogue(out, label)


def _unknown(key: Any, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(key), allowed, n=1) if isinstance(key, str) else []
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown field {excerpt(key)} ({hint}allowed: {', '.join(allowed)})"


def _number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _entry(name: str, data: Any, where: tuple, source: str | None, label: str) -> InstanceType:
    if not isinstance(data, dict):
        raise SpecError(f"an instance type is a mapping {{per_hour: USD, cores: N}}, got {excerpt(data)}",
                        where, source)
    for key in data:
        if key not in _FIELDS:
            raise SpecError(_unknown(key, _FIELDS), (*where, key), source)
    for key in ("per_hour", "cores"):
        if key not in data:
            raise SpecError("required field is missing", (*where, key), source)
    per_hour, cores, memory = data["per_hour"], data["cores"], data.get("memory_gib")
    if not _number(per_hour) or per_hour < 0:
        raise SpecError(f"a price in USD per hour >= 0, got {excerpt(per_hour)}", (*where, "per_hour"), source)
    if isinstance(cores, bool) or not isinstance(cores, int) or not 1 <= cores <= MAX_WORKERS:
        raise SpecError(f"a whole number of cores from 1 to {MAX_WORKERS:,}, got {excerpt(cores)}",
                        (*where, "cores"), source)
    if memory is not None and (not _number(memory) or memory <= 0):
        raise SpecError(f"memory in GiB > 0, got {excerpt(memory)}", (*where, "memory_gib"), source)
    text: dict[str, str | None] = {}
    for key in _TEXT:
        v = data.get(key)
        if isinstance(v, (_dt.date, _dt.datetime)):  # YAML reads 2026-06-17 as a date
            v = v.isoformat()
        if v is not None and not isinstance(v, str):
            raise SpecError(f"a text, got {excerpt(v)}", (*where, key), source)
        text[key] = v
    return InstanceType(name, float(per_hour), int(cores),
                        None if memory is None else float(memory), catalogue=label, **text)


@functools.lru_cache(maxsize=32)
def _file_catalogue(path: str, mtime_ns: int, size: int) -> Catalogue:
    try:
        text = open_text(Path(path), "catalogue").read()
    except ValueError as e:
        raise SpecError(str(e), (), path) from None
    data = yaml_load(text, path)
    if data is None:
        raise SpecError("the file is empty: a catalogue is a YAML mapping with 'types'", (), path)
    return parse_catalogue(data, path)


def load_catalogue(value: Any, base_dir: Path | None = None, spec_source: str | None = None) -> Catalogue:
    """The catalogue of a spec whose top-level ``catalogue`` is ``value``: the built-in one
    when it is ``None``; else the built-in one with the types of the file ``value`` names
    (relative to ``base_dir``, the spec's folder) or of the mapping it is. A file is read
    once while it is unchanged."""
    if value is None:
        return builtin_catalogue()
    if isinstance(value, Mapping):
        return builtin_catalogue().overlaid(parse_catalogue(dict(value), spec_source, ("catalogue",), "inline"))
    if not isinstance(value, str) or not value.strip():
        raise SpecError("a catalogue is the name of a YAML file (relative to the spec's folder) or a "
                        f"mapping with 'types', got {excerpt(value)}", ("catalogue",), spec_source)
    path = Path(value)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        st = path.stat()
    except OSError:
        raise SpecError(f"catalogue file '{excerpt(str(path), 200, quote=False)}' does not exist",
                        ("catalogue",), spec_source) from None
    if not path.is_file():
        raise SpecError(f"catalogue file '{excerpt(str(path), 200, quote=False)}' is not a regular file",
                        ("catalogue",), spec_source)
    return builtin_catalogue().overlaid(_file_catalogue(str(path), st.st_mtime_ns, st.st_size))


# --------------------------------------------------------------------------- cost lines


@dataclass(frozen=True)
class CostLine:
    """The monthly cost of one component: ``unit_price`` USD per ``unit`` (a key of
    :data:`UNITS`) times what it uses in a month. ``quantity`` counts ``quantity_unit``:
    instances or replicas (hourly units: a month is 730 of their hours), GB of cache memory,
    or messages per month (priced per million)."""

    component: str
    kind: str
    unit: str
    unit_price: float
    quantity: float
    quantity_unit: str
    monthly_usd: float
    source: str  # "explicit" (the spec's cost) or "catalogue: <instance type>"
    instance_type: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "unit": self.unit, "unit_price_usd": self.unit_price,
                "quantity": self.quantity, "quantity_unit": self.quantity_unit,
                "monthly_usd": self.monthly_usd, "source": self.source,
                "instance_type": self.instance_type, "note": self.note}


def hourly_line(name: str, kind: str, unit: str, price: float, boxes: int, box_unit: str,
                source: str, instance_type: str | None = None, note: str = "") -> CostLine:
    """The line of a component priced by the hour: ``price`` x ``boxes`` x 730 hours."""
    return CostLine(name, kind, unit, price, float(boxes), box_unit, price * boxes * HOURS_PER_MONTH,
                    source, instance_type, note)
