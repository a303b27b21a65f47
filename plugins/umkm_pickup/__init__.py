"""UMKM pickup: a registered small business sends a parcel to a buyer or a collection point.

*UMKM* (usaha mikro, kecil dan menengah) are micro and small businesses, served by the
regency's Dinas Koperasi dan UMKM. Only the hook implementations live here.
"""

from gateway import hookimpl

from .service import UmkmPickupService


@hookimpl
def register_services():
    return [UmkmPickupService()]
