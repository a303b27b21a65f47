"""A day in Banyuwangi: a busy synthetic service day (07:00-19:00 WIB) replayed against the
gateway, compressed into ``BENCH_DAY_SECONDS`` real seconds, with providers that fail as
providers do; reported as the SLA shares, failovers and final statuses per service, set
against the same day replayed with ideal providers in the same run.

The full day (seeded: ``BENCH_DAY_SEED``; ``BENCH_DAY_SCALE=1``): 45 puskesmas each send
15-25 prescriptions with a morning peak (about 900 medicine deliveries); about 300 UMKM
parcel pickups, heavier in the afternoon; about 100 tourist rides booked ahead for a
departure 30 min to 3 h later; by default all of it, in 300 s (see ``DEFAULT_SECONDS``). Every
body passes the plugin's schema (each starts from the plugin's example; ids, people,
addresses and coordinates vary within the regency). The places are SAMPLE DATA: approximate
coordinates near each kecamatan's centre, not the health office's registry.

The providers: GO-SEND then GrabExpress for medicine (failover), UMKM as the repository
configures it (GrabExpress and Lalamove sharing first place, then GO-SEND), GO-RIDE for rides;
all four are the repository's simulators, in this process, with random faults per create
call (``fault_rates``): GO-SEND 8 % no driver, 1 % 5xx, 0.5 % timeouts; GrabExpress 10 % no
driver; Lalamove 5 %; GO-RIDE 5 % (our guess); plus a GO-SEND outage (5xx) from 12:00 to
13:00. The ideal replay is the same day with every rate 0 and no outage. The regency's own
fleet and the tourist shuttle are left out: staff drive them through the fleet API, and no
one does in a replay (so no cold-chain medicine and no groups are sent: only the own fleet
takes cold chain, only the shuttle takes groups).

Time: one real second is ``factor`` simulated seconds. The bench config divides the gateway's
own waits by the same factor (job retry intervals, the sweep, polling, circuit window and
cooldown, reconcile patience) and the simulators move a booking one status every
``STEP_MINUTES`` simulated minutes. The settings take whole seconds, so waits shorter than a
second once divided become 0 s (retries) or 1 s (the minimum of the others), i.e. longer
than their share of the day; a provider's HTTP timeout (2 s, the simulator answering a
"timeout" after 3 s) and the gateway's own processing are not compressed at all. Reported
times are simulated minutes (real seconds times the factor), except the dispatch SLA: it is
the gateway's own figure (``gateway_sla_dispatched_within_10s``, the console's
``stats.dispatch_speed``) on the gateway's clock, 10 real seconds, because the work it
measures (queueing, booking calls) runs at real speed. Delivered on target is the
console's ``stats.delivery_on_time`` with each service's ``target_minutes`` divided by the
factor.

Outcomes are read from the gateway's database (requests, attempts, status events) and the
simulators' ``/_sim/bookings``, never inferred from what was sent.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests
from redis import Redis
from sqlalchemy import func, select

from .load import session
from .servers import Gateway, Simulators, stop

DAY_OPEN, DAY_CLOSE = 7 * 60, 19 * 60          # minutes after midnight, WIB
STEP_MINUTES = 5.0      # simulated minutes between two statuses of a booking at a provider
DRAIN_MINUTES = 150     # simulated time after closing for the last deliveries to end
DRAIN_REAL_CAP = 120.0  # then at most this many more real seconds for a backlog to settle
COURIER_TIMEOUT, SIM_SLOW = 2.0, 3.0   # real seconds: HTTP is not compressed
REAL_PATIENCE = 15      # real seconds: see ``day_config``
FAULTS = {"gosend_sandbox": {"no_driver": 0.08, "5xx": 0.01, "timeout": 0.005},
          "grab_sandbox": {"no_driver": 0.10},
          "lalamove_sandbox": {"no_driver": 0.05},
          "goride_sandbox": {"no_driver": 0.05}}
OUTAGE = {"courier": "gosend_sandbox", "kind": "5xx", "at": 12 * 60, "minutes": 60}
SERVICES = ("medicine_delivery", "umkm_pickup", "tourism_transport")
AGENCIES = {"medicine_delivery": "Dinas Kesehatan Banyuwangi (bench)",
            "umkm_pickup": "Dinas Koperasi dan UMKM Banyuwangi (bench)",
            "tourism_transport": "Dinas Pariwisata Banyuwangi (bench)"}
SENDERS = 8
# The defaults replay the full day (about 1,300 requests) in 300 s, about 4.4 requests a
# second: each request costs about 7 jobs (its dispatch, then one per provider report), and
# two workers on 2 cores, sharing them with intake, webhooks, PostgreSQL and the simulators,
# keep up at that rate. Squeezed into 100 s (BENCH_DAY_SECONDS=100) the day outruns them:
# the jobs queue for minutes of real time, hours of simulated time, and the shares then
# measure that backlog rather than the providers (measured: 2,459 jobs waiting at 17:42).
# BENCH_DAY_SCALE=0.3 with 100 s is the quick version (about 4 minutes for both replays).
DEFAULT_SECONDS, DEFAULT_SCALE = 300, 1.0

# Targets, as ratios to the ideal replay of the same day. With these failure rates a working
# failover loses few requests outright (GO-SEND then Grab both without a driver: 0.8 % of
# medicine) and costs a failed-over request one provider step, well inside a 120-minute
# target; so falling below 90 % of the ideal on-target share means the failover itself
# (backlog, retries, waiting on open circuits) costs the time, not the providers. Booking
# within the dispatch SLA should hardly move (95 %): a failover is seconds of the gateway's
# work. Double bookings, lost and unsettled requests: none, ever.
TARGET_ON_TIME, TARGET_DISPATCH = 0.90, 0.95

# SAMPLE DATA: 45 puskesmas named after kecamatan and villages of Banyuwangi, at approximate
# coordinates (lat, lng) near each place; not the health office's registry.
PUSKESMAS = [
    ("Sobo", -8.2166, 114.3632), ("Kertosari", -8.2300, 114.3560),
    ("Singotrunan", -8.2050, 114.3620), ("Kalipuro", -8.1530, 114.3800),
    ("Klatak", -8.1800, 114.3700), ("Giri", -8.1980, 114.3350), ("Glagah", -8.2170, 114.3180),
    ("Licin", -8.1790, 114.2700), ("Kabat", -8.2720, 114.3300),
    ("Gladag", -8.2560, 114.3450), ("Rogojampi", -8.3080, 114.2840),
    ("Gitik", -8.3200, 114.2600), ("Blimbingsari", -8.3200, 114.3300),
    ("Singojuruh", -8.3000, 114.2300), ("Songgon", -8.2700, 114.1800),
    ("Sempu", -8.3250, 114.1300), ("Glenmore", -8.3700, 114.0600),
    ("Sepanjang", -8.3900, 114.0400), ("Kalibaru", -8.2980, 113.9900),
    ("Genteng Kulon", -8.3650, 114.1450), ("Kembiritan", -8.3600, 114.1750),
    ("Srono", -8.3950, 114.2600), ("Sukomaido", -8.3800, 114.2800),
    ("Muncar", -8.4300, 114.3300), ("Tembokrejo", -8.4450, 114.3400),
    ("Sumberberas", -8.4200, 114.3100), ("Cluring", -8.4100, 114.2100),
    ("Benculuk", -8.4300, 114.2300), ("Gambiran", -8.4000, 114.1300),
    ("Jajag", -8.4400, 114.1600), ("Tegalsari", -8.4300, 114.0900),
    ("Bangorejo", -8.5000, 114.1000), ("Sambirejo", -8.5150, 114.1200),
    ("Purwoharjo", -8.4800, 114.2000), ("Grajagan", -8.5300, 114.2200),
    ("Tegaldlimo", -8.5800, 114.3000), ("Kedungwungu", -8.5500, 114.2700),
    ("Siliragung", -8.5300, 114.0500), ("Pesanggaran", -8.5800, 114.0000),
    ("Sumberagung", -8.6000, 114.0300), ("Wongsorejo", -7.9800, 114.4000),
    ("Bajulmati", -7.9500, 114.3900), ("Paspan", -8.2300, 114.3800),
    ("Tamansari", -8.1500, 114.2500), ("Parijatah", -8.4000, 114.2900),
]
FIRST_NAMES = ["Siti", "Nur", "Sri", "Dewi", "Wayan", "Agus", "Budi", "Rina", "Ahmad", "Eko",
               "Lestari", "Made", "Hadi", "Yuli", "Slamet", "Fitri", "Joko", "Ayu", "Imam",
               "Ketut"]
LAST_NAMES = ["Aminah", "Rahayu", "Santoso", "Wahyuni", "Sudarma", "Hidayat", "Susanti",
              "Purnomo", "Lestari", "Setiawan", "Kusuma", "Handayani", "Prasetyo", "Utami"]
STREETS = ["Jl. Ahmad Yani", "Jl. Diponegoro", "Jl. Basuki Rahmat", "Jl. Brawijaya",
           "Jl. Gajah Mada", "Jl. Kartini", "Jl. Jaksa Agung Suprapto", "Jl. Raya Jember",
           "Jl. Sritanjung", "Jl. Hasanudin", "Jl. Kepiting", "Jl. Raya Situbondo"]
MEDICINES = ["Amlodipine 10 mg", "Metformin 500 mg", "Captopril 25 mg", "Paracetamol 500 mg",
             "Simvastatin 20 mg", "Glimepiride 2 mg", "Isoniazid 300 mg", "Salbutamol 4 mg"]
PRODUCTS = [("Kopi bubuk Osing 1 kg", 1200), ("Batik Gajah Oling", 600),
            ("Keripik pisang 10 bungkus", 2500), ("Sale pisang 5 kotak", 1800),
            ("Kerajinan bambu", 3000), ("Madu hutan Alas Purwo", 900),
            ("Bagiak 20 bungkus", 2000), ("Kain tenun", 700)]
TOURIST_NAMES = ["Anna Schmidt", "Kenji Sato", "Liam Walsh", "Putri Anggraini", "Marco Rossi",
                 "Chloe Martin", "Raka Pratama", "Emma de Vries", "Sofia Lopez", "Daniel Kim"]


def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _phone(rng: random.Random) -> str:
    return f"+628{rng.choice('1257')}{rng.randrange(10**8, 10**9)}"


def _near(rng: random.Random, lat: float, lng: float, spread: float = 0.02) -> dict:
    return {"lat": round(lat + rng.uniform(-spread, spread), 5),
            "lng": round(lng + rng.uniform(-spread, spread), 5)}


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


@dataclass
class Arrival:
    """One request of the day: when (simulated minutes after midnight) and what."""

    minute: float
    service: str
    body: dict
    #: rides: the departure, simulated minutes after midnight
    departure: float | None = None


def puskesmas_places() -> list[dict]:
    """The day's pickup locations, as ``services.yaml`` lists them."""
    return [{"id": f"puskesmas-{name.lower().replace(' ', '-')}", "name": f"Puskesmas {name}",
             "address": f"Jl. Raya {name} No. {n + 1}, {name}, Banyuwangi",
             "location": {"lat": lat, "lng": lng}, "phone": f"0811-100-{n + 1:04d}"}
            for n, (name, lat, lng) in enumerate(PUSKESMAS)]


def plan_day(seed: int, tag: str, scale: float = 1.0) -> list[Arrival]:
    """The day's requests, in time order; the same ``seed`` and ``scale`` plan the same day.
    ``scale`` multiplies the volume (prescriptions per puskesmas, parcels, rides)."""
    from plugins.medicine_delivery.service import EXAMPLE as MEDICINE
    from plugins.tourism_transport.service import TourismTransportService
    from plugins.umkm_pickup.service import UmkmPickupService

    rng = random.Random(seed)
    day: list[Arrival] = []
    for place, (village, lat, lng) in zip(puskesmas_places(), PUSKESMAS, strict=True):
        for n in range(round(rng.randint(15, 25) * scale)):
            # The pharmacy's morning: most prescriptions after the morning clinic, 08-11.
            minute = rng.gauss(9.75 * 60, 65) if rng.random() < 0.8 \
                else rng.uniform(7.5 * 60, 16 * 60)
            items = [{"name": rng.choice(MEDICINES), "quantity": rng.choice([10, 30, 60])}
                     for _ in range(rng.randint(1, 3))]
            body = {**MEDICINE, "prescription_id": f"RX-{tag}-{place['id'][10:]}-{n:03d}",
                    "pickup_location_id": place["id"],
                    "patient": {"name": _name(rng), "phone": _phone(rng),
                                "nik": f"3510{rng.randrange(10**11, 10**12)}",
                                "address": f"{rng.choice(STREETS)} No. {rng.randint(1, 200)}"
                                           f", {village}, Banyuwangi",
                                "location": _near(rng, lat, lng, 0.03)},
                    "items": items, "cold_chain": False,
                    "notes_for_courier": rng.choice([None, "Rumah pagar hijau",
                                                     "Dekat masjid", "Sebelah warung"])}
            day.append(Arrival(_clip(minute, 7.5 * 60, 17 * 60), "medicine_delivery", body))
    umkm = UmkmPickupService.example_request
    businesses = [(f"{product.split()[0]} {village}", village, lat, lng, product, grams)
                  for (village, lat, lng), (product, grams)
                  in zip(rng.sample(PUSKESMAS, 40), PRODUCTS * 5, strict=False)]
    for n in range(round(300 * scale)):
        business, village, lat, lng, product, grams = rng.choice(businesses)
        # Parcels go out before lunch and, more, in the afternoon for the evening trucks.
        minute = rng.gauss(10.5 * 60, 80) if rng.random() < 0.4 else rng.gauss(14.5 * 60, 90)
        dropoffs = [{"name": _name(rng), "phone": _phone(rng),
                     "address": f"{rng.choice(STREETS)} No. {rng.randint(1, 200)}, Banyuwangi",
                     "location": _near(rng, -8.2190, 114.3690, 0.05)}
                    for _ in range(2 if rng.random() < 0.1 else 1)]
        body = {**umkm, "order_id": f"BWI-{tag}-{n:04d}",
                "business": {**umkm["business"], "name": f"UMKM {business}",
                             "contact_name": _name(rng), "phone": _phone(rng),
                             "address": f"Jl. {village} No. {rng.randint(1, 99)}, {village}",
                             "location": _near(rng, lat, lng, 0.01)},
                "parcel": {"description": product, "weight_grams": grams,
                           "declared_value": rng.choice([50000, 100000, 150000, 250000])},
                "dropoffs": dropoffs}
        if len(dropoffs) == 1 and rng.random() < 0.15:   # no courier takes both
            body["cash_on_delivery"] = rng.choice([50000, 75000, 120000])
        day.append(Arrival(_clip(minute, 8 * 60, 18 * 60), "umkm_pickup", body))
    tourism = TourismTransportService.example_request
    points = ["taman-sritanjung", "terminal-brawijaya", "bandara-banyuwangi", "hotel-ketapang"]
    destinations = ["kawah-ijen", "pulau-merah", "baluran"]
    for n in range(round(100 * scale)):
        minute = rng.uniform(DAY_OPEN, 17 * 60)
        body = {**tourism, "booking_id": f"TRIP-{tag}-{n:04d}",
                "visitor": {"name": rng.choice(TOURIST_NAMES), "phone": _phone(rng)},
                "pickup_point_id": rng.choice(points),
                "destination_id": rng.choice(destinations), "passengers": rng.randint(1, 4)}
        departure = min(minute + rng.uniform(30, 180), DAY_CLOSE + 30)
        day.append(Arrival(minute, "tourism_transport", body, departure))
    day.sort(key=lambda a: a.minute)
    return day


class Clock:
    """Simulated minutes of the day against real time, from the moment the day opens."""

    def __init__(self, factor: float):
        self.factor = factor
        self.opened_monotonic, self.opened_wall = time.monotonic(), datetime.now(UTC)

    def due(self, minute: float) -> float:
        """The monotonic time of a simulated minute."""
        return self.opened_monotonic + (minute - DAY_OPEN) * 60 / self.factor

    def wall(self, minute: float) -> datetime:
        return self.opened_wall + timedelta(seconds=(minute - DAY_OPEN) * 60 / self.factor)

    def now(self) -> float:
        """Simulated minutes after midnight, now."""
        return DAY_OPEN + (time.monotonic() - self.opened_monotonic) * self.factor / 60

    def sleep_until(self, minute: float) -> None:
        delay = self.due(minute) - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def compressed(seconds: float, factor: float, minimum: int = 1) -> int:
    """A setting of ``seconds`` divided by ``factor``, in the whole seconds settings take."""
    return max(minimum, round(seconds / factor))


def day_config(factor: float, sims: Simulators) -> dict:
    """The day's gateway: the gateway's own waits divided by ``factor`` (see the module
    docstring), the couriers at the simulators, the 45 puskesmas."""
    window, cooldown = compressed(60, factor), compressed(30, factor)
    circuit = {"failure_threshold": 5, "window_seconds": window, "cooldown_seconds": cooldown}
    couriers = {name: {**entry, "timeout_seconds": COURIER_TIMEOUT, "circuit": circuit}
                for name, entry in sims.entries.items()}
    couriers["own_fleet"] = {"enabled": False}
    core = {
        "log_level": "WARNING", "demo": {"enabled": False},
        "api": {"rate_limits": {"test": {"rate": 100000.0, "burst": 100000}}},
        "jobs": {"intervals": [compressed(s, factor, 0) for s in (5, 30, 120, 600)]},
        # The sweep's and polling's patience is with the queue, which runs in real time: a
        # second would re-enqueue, and poll the provider about, work merely waiting its turn
        # (the replay loses no webhook), so they keep REAL_PATIENCE real seconds at least.
        "sweep": {"interval_seconds": compressed(15, factor),
                  "stale_after_seconds": max(REAL_PATIENCE, compressed(30, factor))},
        "dispatch": {"reconcile_patience_seconds": compressed(600, factor, 0),
                     "poll_after_seconds": max(REAL_PATIENCE, compressed(300, factor))},
    }
    services = {
        "medicine_delivery": {"couriers": ["gosend_sandbox", "grab_sandbox"],
                              "pickup_locations": puskesmas_places()},
        # umkm_pickup: as the repository configures it.
        "tourism_transport": {"couriers": ["goride_sandbox"]},
    }
    return {"core": core, "couriers": couriers, "services": services}


def _advance_departed_rides(sims: Simulators, stop_event: threading.Event) -> None:
    """GO-RIDE's clock for rides booked ahead: the simulator holds a ride ``scheduled`` until
    told its time has come, which is this thread's job (as the provider's own scheduler)."""
    from gateway.couriers.goride.simulator import scheduled_time

    sim = sims.sims["goride_sandbox"]
    while not stop_event.wait(0.1):
        now = datetime.now(UTC)
        with sim.lock:
            due = [b["id"] for b in sim.bookings.values() if b["status"] == "scheduled"
                   and (scheduled_time(b["payload"].get("scheduledAt")) or now) <= now]
        for booking_id in due:
            requests.post(f"{sim.url}/_sim/bookings/{booking_id}/advance", timeout=10)


@dataclass
class Replay:
    name: str
    started: datetime
    ended: datetime
    sent: list[tuple[Arrival, int, str | None]]   # (arrival, HTTP status, request id)
    bookings: list[tuple[str, dict]]
    drawn: dict[str, dict]
    real_seconds: float


def replay(setup: Gateway, node: str, sims: Simulators, day: list[Arrival], keys: dict,
           factor: float, faults: bool, redis_url: str) -> Replay:
    """Send the day, drain it, and collect what the simulators hold."""
    redis = Redis.from_url(redis_url)
    for key in redis.scan_iter("gateway:circuit:*"):
        redis.delete(key)
    redis.close()
    for seed, (name, sim) in enumerate(sims.sims.items()):
        requests.post(f"{sim.url}/_sim/reset", timeout=10)
        requests.post(f"{sim.url}/_sim/config", timeout=10, json={
            "fault_rates": FAULTS[name] if faults else {}, "fault_seed": 1000 + seed})
    workers = [setup.spawn("gateway", "worker") for _ in range(2)]
    time.sleep(3)                                          # the workers are listening
    clients = [session() for _ in range(SENDERS)]
    stop_event = threading.Event()
    rides = threading.Thread(target=_advance_departed_rides, args=(sims, stop_event),
                             daemon=True)
    clock = Clock(factor)
    started = datetime.now(UTC)
    rides.start()
    sent: list[tuple[Arrival, int, str | None]] = []
    lock = threading.Lock()

    def send(offset: int) -> None:
        client = clients[offset]
        for arrival in day[offset::SENDERS]:
            clock.sleep_until(arrival.minute)
            body = arrival.body
            if arrival.departure is not None:
                body = {**body, "departure_at": clock.wall(arrival.departure).isoformat()}
            try:
                response = client.post(f"{node}/api/v1/services/{arrival.service}/requests",
                                       json=body, timeout=30,
                                       headers={"Authorization": f"Bearer {keys[arrival.service]}"})
                outcome = (response.status_code, response.json().get("id")
                           if response.status_code == 202 else response.text[:200])
            except requests.RequestException as exc:
                outcome = (0, type(exc).__name__)
            with lock:
                sent.append((arrival, *outcome))

    def outage() -> None:
        sim = sims.sims[OUTAGE["courier"]]
        clock.sleep_until(OUTAGE["at"])
        requests.post(f"{sim.url}/_sim/outage", timeout=10, json={
            "kind": OUTAGE["kind"], "seconds": OUTAGE["minutes"] * 60 / factor})

    threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(SENDERS)]
    if faults:
        threads.append(threading.Thread(target=outage, daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [request_id for _a, status, request_id in sent if status == 202]
    _drain(setup, clock, ids, redis_url)
    stop_event.set()
    rides.join(timeout=5)
    for process in workers:
        stop(process)
    ended = datetime.now(UTC)
    drawn = {name: requests.get(f"{sim.url}/_sim/faults", timeout=10).json()["drawn"]
             for name, sim in sims.sims.items()}
    return Replay("failures" if faults else "ideal", started, ended, sent, sims.bookings(),
                  drawn, (ended - started).total_seconds())


def _drain(setup: Gateway, clock: Clock, ids: list[str], redis_url: str) -> None:
    """Until every request has ended; or, once the day's drain time is over, until the queues
    are empty with nothing left unsettled (received, dispatching, outcome unknown): what is
    still open then waits at a provider. At most ``DRAIN_REAL_CAP`` real seconds longer."""
    from rq import Queue

    from gateway.models import ServiceRequest
    from gateway.queues import QueueNames
    from gateway.statuses import TERMINAL

    unsettled_states = ("received", "dispatching", "outcome_unknown")
    cap = clock.due(DAY_CLOSE + DRAIN_MINUTES) + DRAIN_REAL_CAP
    redis = Redis.from_url(redis_url)
    queues = [Queue(name, connection=redis) for name in QueueNames.all()]
    shown = 0.0
    try:
        while time.monotonic() < cap:
            with setup.gateway.db.read() as db:
                counts = dict(db.execute(
                    select(ServiceRequest.status, func.count())
                    .where(ServiceRequest.id.in_(ids)).group_by(ServiceRequest.status)).all())
            open_ = sum(n for status, n in counts.items() if status not in TERMINAL)
            unsettled = sum(counts.get(s, 0) for s in unsettled_states)
            waiting = sum(q.count for q in queues)
            if time.monotonic() - shown >= 10:
                shown = time.monotonic()
                print(f"      {clock.now() // 60:02.0f}:{clock.now() % 60:02.0f} simulated: "
                      f"{open_} of {len(ids)} open, {unsettled} unsettled, {waiting} jobs "
                      "waiting", flush=True)
            if open_ == 0 or (clock.now() >= DAY_CLOSE + DRAIN_MINUTES
                              and unsettled == 0 and waiting == 0):
                return
            time.sleep(0.5)
    finally:
        redis.close()


@dataclass
class ServiceOutcome:
    requests: int
    dispatched: tuple[int, int]            # (within the SLA, measured)
    on_target: tuple[int, int] | None      # (delivered within target, due); None: no target
    delivery_minutes: list[float]          # acceptance -> delivered, simulated minutes
    statuses: Counter
    failure_codes: Counter
    more_than_one_attempt: int
    booked_elsewhere: int                  # held by a courier other than the first tried
    unsettled: int


def outcomes(setup: Gateway, run: Replay, factor: float) -> dict[str, ServiceOutcome]:
    """Per service, what the gateway's database says about one replay."""
    from gateway import reports as stats
    from gateway.models import CourierAttempt, ServiceRequest, StatusEvent
    from gateway.statuses import TERMINAL, Status
    from gateway.tracking import TRACKED

    gateway = setup.gateway
    targets = {s: gateway.service_settings(s).get("target_minutes", 120) for s in SERVICES}
    results = {}
    with gateway.db.read() as db:
        on_time = {o.service: o for o in stats.delivery_on_time(
            db, run.started, run.ended,
            {s: (t / factor if t is not None else None) for s, t in targets.items()},
            run.ended)}
        for service in SERVICES:
            mine = ServiceRequest.service == service
            window = (ServiceRequest.created_at >= run.started,
                      ServiceRequest.created_at < run.ended, mine)
            dispatch = stats.dispatch_speed(db, run.started, run.ended, run.ended,
                                            service=service)
            rows = db.execute(select(ServiceRequest.id, ServiceRequest.status,
                                     ServiceRequest.provider).where(*window)).all()
            codes = Counter(db.scalars(select(ServiceRequest.failure_code)
                                       .where(*window, ServiceRequest.failure_code.is_not(None))))
            attempts = defaultdict(list)
            for request_id, courier in db.execute(
                    select(CourierAttempt.request_id, CourierAttempt.courier)
                    .join(ServiceRequest, ServiceRequest.id == CourierAttempt.request_id)
                    .where(*window).order_by(CourierAttempt.attempt_no)).all():
                attempts[request_id].append(courier)
            delivered = db.execute(
                select(ServiceRequest.created_at, func.min(StatusEvent.created_at))
                .join(StatusEvent, StatusEvent.request_id == ServiceRequest.id)
                .where(*window, StatusEvent.status == Status.DELIVERED.value,
                       StatusEvent.applied.is_(True))
                .group_by(ServiceRequest.id, ServiceRequest.created_at)).all()
            tracked = {str(s) for s in TRACKED}
            share = on_time[service].share
            results[service] = ServiceOutcome(
                requests=len(rows), dispatched=(dispatch.part, dispatch.whole),
                on_target=(share.part, share.whole) if targets[service] is not None else None,
                delivery_minutes=sorted((done - created).total_seconds() * factor / 60
                                        for created, done in delivered),
                statuses=Counter(status for _id, status, _p in rows), failure_codes=codes,
                more_than_one_attempt=sum(len(a) > 1 for a in attempts.values()),
                booked_elsewhere=sum(1 for request_id, _s, provider in rows
                                     if provider and attempts[request_id]
                                     and provider != attempts[request_id][0]),
                unsettled=sum(1 for _id, status, provider in rows
                              if status not in {str(s) for s in TERMINAL}
                              and not (status in tracked and provider)))
    return results


def correctness(setup: Gateway, run: Replay) -> dict:
    """Lost requests, refused bodies, and live bookings per request across all simulators."""
    from gateway.models import CourierAttempt, ServiceRequest

    accepted = [request_id for _a, status, request_id in run.sent if status == 202]
    refused = [(a.service, status, text) for a, status, text in run.sent if status != 202]
    with setup.gateway.db.read() as db:
        stored = dict(db.execute(select(ServiceRequest.id, ServiceRequest.provider_reference)
                                 .where(ServiceRequest.id.in_(accepted))).all())
        owner = dict(db.execute(select(CourierAttempt.reference, CourierAttempt.request_id)
                                .where(CourierAttempt.request_id.in_(accepted))).all())
    live = defaultdict(list)
    for _courier, booking in run.bookings:
        request_id = owner.get(booking["reference"])
        if booking["live"] and request_id is not None:
            live[request_id].append(booking["id"])
    return {"accepted": len(accepted), "refused": refused,
            "lost": len(set(accepted) - set(stored)),
            "double": sum(len(held) > 1 for held in live.values()),
            "orphans": sum(1 for request_id, held in live.items() for booking_id in held
                           if booking_id != stored.get(request_id))}


def _pct(part: int, whole: int) -> str:
    return f"{part / whole:.1%} of {whole}" if whole else "nothing measured"


def _minutes(values: list[float]) -> str:
    if not values:
        return "none delivered"
    p95 = statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 \
        else values[0]
    return f"p50 {statistics.median(values):.0f} min, p95 {p95:.0f} min"


def _codes(outcome: ServiceOutcome) -> str:
    codes = ", ".join(f"{c} {n}" for c, n in outcome.failure_codes.most_common())
    return f" (failure codes: {codes})" if codes else ""


def _ratio(measured: tuple[int, int], ideal: tuple[int, int]) -> float:
    if not measured[1] or not ideal[1] or not ideal[0]:
        return math.nan
    return (measured[0] / measured[1]) / (ideal[0] / ideal[1])


def run(workdir, stack, database_url: str, redis_url: str) -> list[dict]:
    """Both replays of the day on one gateway of their own (its own database and Redis
    database, so nothing of the other benchmarks is counted)."""
    seconds = float(os.environ.get("BENCH_DAY_SECONDS", str(DEFAULT_SECONDS)))
    scale = float(os.environ.get("BENCH_DAY_SCALE", str(DEFAULT_SCALE)))
    seed = int(os.environ.get("BENCH_DAY_SEED", "2026"))
    factor = (DAY_CLOSE - DAY_OPEN) * 60 / seconds
    sims = Simulators(step_seconds=STEP_MINUTES * 60 / factor, slow_seconds=SIM_SLOW)
    stack.callback(sims.stop)
    config = day_config(factor, sims)
    setup = Gateway(workdir, database_url, redis_url, None, stack, name="day",
                    **config)
    from gateway.agencies import create_agency

    keys = {service: create_agency(setup.gateway, f"{AGENCIES[service]} {time.time_ns()}",
                                   [service], key_type="test", actor="bench")[1]
            for service in SERVICES}
    node = setup.serve(workers=2)
    sims.send_webhooks_to(node)
    runs = {}
    for faults in (False, True):
        day = plan_day(seed, tag=f"{'F' if faults else 'I'}{time.time_ns() % 10**6}",
                       scale=scale)
        print(f"    {'with failures' if faults else 'ideal providers'}: {len(day)} requests "
              f"over {seconds:.0f} s (1 s = {factor:.0f} simulated s)", flush=True)
        runs[faults] = replay(setup, node, sims, day, keys, factor, faults, redis_url)
    ideal, failing = (outcomes(setup, runs[f], factor) for f in (False, True))
    checks = {f: correctness(setup, runs[f]) for f in (False, True)}
    return _rows(ideal, failing, checks, runs, factor, seconds)


def _rows(ideal, failing, checks, runs, factor, seconds) -> list[dict]:
    rows = []
    for service in SERVICES:
        got, base = failing[service], ideal[service]
        ratio = _ratio(got.dispatched, base.dispatched)
        statuses = ", ".join(f"{s} {n}" for s, n in sorted(got.statuses.items(),
                                                              key=lambda kv: -kv[1]))
        rows.append({
            "name": f"day: {service} booked within 10 s (real), with failures",
            "value": _pct(*got.dispatched), "baseline": _pct(*base.dispatched),
            "ratio": ratio, "target": f"≥ {TARGET_DISPATCH:.2f}×",
            "met": ratio >= TARGET_DISPATCH,
            "notes": f"{service}: {got.requests} requests; failed over (more than one attempt) "
                     f"{got.more_than_one_attempt}, booked at another courier than the first "
                     f"tried {got.booked_elsewhere}; final statuses {statuses}"
                     + _codes(got) + "; ideal: "
                     + ", ".join(f"{s} {n}" for s, n in sorted(base.statuses.items(),
                                                              key=lambda kv: -kv[1]))
                     + _codes(base)})
        if got.on_target is not None:
            ratio = _ratio(got.on_target, base.on_target)
            rows.append({
                "name": f"day: {service} delivered on target (simulated), with failures",
                "value": f"{_pct(*got.on_target)}; {_minutes(got.delivery_minutes)}",
                "baseline": f"{_pct(*base.on_target)}; {_minutes(base.delivery_minutes)}",
                "ratio": ratio, "target": f"≥ {TARGET_ON_TIME:.2f}×",
                "met": ratio >= TARGET_ON_TIME, "notes": ""})
    bad = {f: (c["lost"], c["double"], c["orphans"], len(c["refused"]),
               sum(o.unsettled for o in (failing if f else ideal).values()))
           for f, c in checks.items()}
    drawn = "; ".join(f"{name} " + ", ".join(f"{k} {v}" for k, v in sorted(d.items()))
                      for name, d in runs[True].drawn.items() if d)
    refused = checks[True]["refused"][:1] + checks[False]["refused"][:1]
    rows.append({
        "name": "day: correctness (lost / double-booked / orphan live bookings / refused "
                "bodies / unsettled)",
        "value": " / ".join(map(str, bad[True])), "baseline": " / ".join(map(str, bad[False])),
        "ratio": None, "target": "all 0", "met": not any(bad[True]) and not any(bad[False]),
        "notes": f"{checks[True]['accepted']} accepted with failures, "
                 f"{checks[False]['accepted']} ideal; 1 real s = {factor:.0f} simulated s "
                 f"({seconds:.0f} s a day); replays took {runs[False].real_seconds:.0f} s and "
                 f"{runs[True].real_seconds:.0f} s with the drain; faults drawn: {drawn}; "
                 f"GO-SEND outage (5xx) 12:00-13:00"
                 + (f"; first refusal: {refused[0]}" if refused else "")})
    return rows
