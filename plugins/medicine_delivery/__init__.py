"""Medicine delivery: a puskesmas or hospital pharmacy sends a patient's prescription home.

The pilot of the Banyuwangi and GO-JEK partnership (Gancang Aron: "get well soon"). This
module holds only the hook implementations; the service is in ``service.py``.
"""

from gateway import hookimpl
from gateway.queues import JobKind

from . import satusehat
from .service import MedicineDeliveryService


@hookimpl
def register_services():
    return [MedicineDeliveryService()]


def send_to_satusehat(gateway, request_id: str) -> str:
    """Post a delivered request's record to SATUSEHAT (``satusehat.py``)."""
    return satusehat.send_record(gateway, gateway.services[MedicineDeliveryService.name],
                                 request_id)


@hookimpl
def register_jobs():
    return [JobKind(satusehat.JOB, run=send_to_satusehat,
                    retry_intervals=lambda gateway: satusehat.retry_intervals(
                        gateway, MedicineDeliveryService.name))]


@hookimpl
def track_event(gateway, event, session):
    """A delivered medicine request owes its record to SATUSEHAT when the sender is on."""
    satusehat.owe_record(gateway, MedicineDeliveryService.name, event, session)


@hookimpl(trylast=True)
def eligibility_for(gateway, service, data, config):
    """The configured rule: everyone (the demo), no one, or an allow-list of NIKs' keyed
    digests (``gateway.identifiers``: HMAC with the deployment's key, so the list cannot be
    reversed by hashing every NIK of a region, and one made elsewhere matches nothing).

    A connector to DTSEN or BPJS PBI, installed as another plugin, answers before this one.
    """
    if service.name != MedicineDeliveryService.name:
        return None
    rule = config.get("eligibility", {}).get("rule", "always")
    if rule == "allow_list":
        listed = gateway.identifiers.matches(data["patient"]["nik"],
                                             config["eligibility"]["allow_list_nik_hmac"])
        return {"eligible": listed, "source": "config:allow_list"}
    return {"eligible": rule == "always", "source": f"config:{rule}"}
