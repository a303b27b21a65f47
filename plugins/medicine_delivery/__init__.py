"""Medicine delivery: a puskesmas or hospital pharmacy sends a patient's prescription home.

The pilot of the Banyuwangi and GO-JEK partnership (Gancang Aron: "get well soon"). This
module holds only the hook implementations; the service is in ``service.py``.
"""

import hashlib
import hmac

from gateway import hookimpl

from .service import MedicineDeliveryService


@hookimpl
def register_services():
    return [MedicineDeliveryService()]


@hookimpl(trylast=True)
def eligibility_for(service, data, config):
    """The configured rule: everyone (the demo), no one, or an allow-list of NIK hashes.

    A connector to DTSEN or BPJS PBI, installed as another plugin, answers before this one.
    """
    if service.name != MedicineDeliveryService.name:
        return None
    rule = config.get("eligibility", {}).get("rule", "always")
    if rule == "allow_list":
        digest = hashlib.sha256(data["patient"]["nik"].encode()).hexdigest()
        listed = any(hmac.compare_digest(digest, entry)
                     for entry in config["eligibility"]["allow_list_nik_sha256"])
        return {"eligible": listed, "source": "config:allow_list"}
    return {"eligible": rule == "always", "source": f"config:{rule}"}
