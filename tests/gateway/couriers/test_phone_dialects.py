"""One phone number, however a service typed it, reaches each courier in that courier's own
form: the neutral order holds E.164, each mapping only writes it (``gateway.phones``)."""

from __future__ import annotations

import pytest

from gateway import phones
from gateway.couriers.goride import mapping as goride
from gateway.couriers.gosend import mapping as gosend
from gateway.couriers.grabexpress import mapping as grab
from gateway.couriers.lalamove import mapping as lalamove
from gateway.orders import Contact, DeliveryOrder, Package, Place, RideOrder
from gateway.phones import InvalidPhoneNumber

TYPED = ["0812-3456-7890", "62 812 3456 7890", "+6281234567890", "(0812) 34567890"]


def delivery(phone: str, pickup_phone: str = "0333-000-0001") -> DeliveryOrder:
    return DeliveryOrder(
        reference="req-1",
        pickup=Place(address="Puskesmas Sobo, Banyuwangi", lat=-8.21, lng=114.36,
                     contact=Contact("Puskesmas Sobo", pickup_phone)),
        dropoffs=(Place(address="Jl. Ahmad Yani No. 80, Banyuwangi", lat=-8.219, lng=114.369,
                        contact=Contact("Siti Aminah", phone)),),
        package=Package(description="Paket obat tersegel #req-1"))


@pytest.mark.parametrize("typed", TYPED)
def test_an_order_holds_every_phone_in_e164(typed):
    order = delivery(typed)
    assert order.dropoffs[0].contact.phone == "+6281234567890"
    assert order.pickup.contact.phone == "+623330000001"


@pytest.mark.parametrize("typed", TYPED)
def test_each_courier_gets_the_number_in_its_own_form(typed):
    order = delivery(typed)
    route = gosend.booking_payload(order, "req-1-1")["routes"][0]
    assert route["destinationContactPhone"] == "6281234567890"      # GO-SEND: 62..., no plus
    assert route["originContactPhone"] == "623330000001"
    assert grab.booking_payload(order, "req-1-1")["recipient"]["phone"] == "6281234567890"
    quotation = lalamove.Quotation(quotation_id="1", stop_ids=("2", "3"), expires_at=None,
                                   price=1)
    body = lalamove.order_payload(quotation, order, "req-1-1")["data"]
    assert body["recipients"][0]["phone"] == "+6281234567890"       # Lalamove: E.164
    ride = RideOrder(reference="req-7", pickup=order.dropoffs[0], dropoff=order.pickup,
                     passengers=1)
    assert goride.booking_payload(ride, "req-7-1")["pickup"]["contactPhone"] == "6281234567890"


def test_a_place_without_a_phone_stays_without_one():
    order = delivery("081234567890", pickup_phone="")
    assert order.pickup.contact.phone == ""
    assert gosend.booking_payload(order, "req-1-1")["routes"][0]["originContactPhone"] == ""


def test_an_order_refuses_what_is_no_phone_number_at_all():
    with pytest.raises(InvalidPhoneNumber):
        Contact("Siti Aminah", "not a number")


@pytest.mark.parametrize("mapping, expected", [
    (gosend, "6281234567890"), (goride, "6281234567890"), (grab, "6281234567890"),
    (lalamove, "+6281234567890")])
def test_each_mapping_names_its_dialect_in_the_one_table(mapping, expected):
    """The form each provider documents is said once, in ``gateway.phones.DIALECTS``."""
    assert phones.written("+6281234567890", mapping.DIALECT) == expected
