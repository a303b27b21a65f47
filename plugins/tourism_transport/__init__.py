"""Tourism transport: visitors and tour groups travel between configured pickup points and
destinations, run with the regency's tourism office (Dinas Pariwisata). Only the hook
implementations live here.
"""

from gateway import hookimpl

from .service import TourismTransportService


@hookimpl
def register_services(gateway):
    # shuttle timetables are the region's local times (gateway.yaml's region.time_zone)
    return [TourismTransportService(time_zone=gateway.region.time_zone)]
