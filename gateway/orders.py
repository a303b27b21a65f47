"""Provider-neutral orders: what a courier is asked to carry, and nothing more.

An order is the privacy boundary between a public service and a courier provider (UU PDP,
data minimisation): it holds a contact name and phone, addresses and coordinates, a masked
package label ("Paket obat #A12", never drug names), handling flags and an opaque reference.
There is no field for a NIK, a diagnosis or a prescription, and the classes are frozen with
slots, so a service cannot add one: a courier adapter can only see what is declared here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from . import phones


@dataclass(frozen=True, slots=True)
class Contact:
    """Who to ask for at a place. ``phone`` is kept in E.164 (``+6281234567890``) whatever
    form it is given in, or empty when the place has none: mappings only write it in their
    provider's dialect (``gateway.phones``)."""

    name: str
    phone: str

    def __post_init__(self):
        object.__setattr__(self, "phone", phones.e164(self.phone))


@dataclass(frozen=True, slots=True)
class Place:
    address: str
    lat: float
    lng: float
    contact: Contact
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Package:
    description: str
    weight_grams: int | None = None
    length_cm: int | None = None
    width_cm: int | None = None
    height_cm: int | None = None
    declared_value: int | None = None
    quantity: int = 1


@dataclass(frozen=True, slots=True)
class DeliveryOrder:
    """Carry a package from ``pickup`` to each of ``dropoffs``."""

    reference: str
    pickup: Place
    dropoffs: tuple[Place, ...]
    package: Package
    cold_chain: bool = False
    cash_on_delivery: int | None = None
    requirements: frozenset[str] = field(default_factory=frozenset)
    kind: str = field(default="delivery", init=False)


@dataclass(frozen=True, slots=True)
class RideOrder:
    """Carry ``passengers`` people from ``pickup`` to ``dropoff``, now or at ``scheduled_at``."""

    reference: str
    pickup: Place
    dropoff: Place
    passengers: int
    scheduled_at: datetime | None = None
    requirements: frozenset[str] = field(default_factory=frozenset)
    kind: str = field(default="ride", init=False)
