"""Tourism transport: visitors and tour groups travel between configured pickup points and
destinations, run with the regency's tourism office (Dinas Pariwisata). Only the hook
implementations live here.
"""

from gateway import hookimpl

from .service import TourismTransportService


@hookimpl
def register_services():
    return [TourismTransportService()]
