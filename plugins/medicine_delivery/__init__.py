"""Medicine delivery: a puskesmas or hospital pharmacy sends a patient's prescription home.

The pilot of the Banyuwangi and GO-JEK partnership (Gancang Aron: "get well soon"). This
module holds only the hook implementations; the service is in ``service.py``.
"""

from gateway import hookimpl

from .service import MedicineDeliveryService


@hookimpl
def register_services():
    return [MedicineDeliveryService()]
