"""Every hook of the gateway, in one place.

A hook either registers objects (``register_<things>``, results collected as lists) or answers
one cross-cutting question (``firstresult``). Behaviour lives on the registered objects
(a :class:`gateway.services.Service`, a courier adapter), dispatched by name, so the hook
surface stays small: each hook here is a public API that plugin authors depend on, and each
has a section headed by its exact signature in ``docs/plugins.md``.

The core registers its own defaults through these same hooks (see ``gateway.plugins``).
Implementations may accept any subset of the arguments; the gateway always calls with keywords.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "gateway"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_services(gateway):
    """Register public services.

    :param gateway: the :class:`gateway.core.Gateway` of this app
    :return: a list of :class:`gateway.services.Service` instances. The lists of every plugin
        are concatenated; two services with the same ``name`` stop start-up with a
        :class:`gateway.errors.StartupError`.
    """


@hookspec
def register_couriers(gateway):
    """Register courier-provider adapters.

    :param gateway: the :class:`gateway.core.Gateway` of this app
    :return: a list of :class:`gateway.couriers.CourierAdapter` subclasses (classes, not
        instances: the gateway instantiates each enabled one with its validated config). Lists
        are concatenated; a duplicate ``name`` stops start-up.
    """


@hookspec
def register_jobs(gateway):
    """Register kinds of work a plugin owes a request after it was made (sending its record
    on to another system, say), run by the gateway's workers like its own jobs.

    A request owes such work when ``pending_job`` names the kind (set in the transaction that
    creates the need, e.g. from ``track_event``); the job then runs alone per request, with
    retries, its outcome audited and counted, and the sweep queues it again if Redis lost it.
    The job must clear ``pending_job`` when the work is done or refused; when its retries
    are spent the gateway clears it and puts the failure on the request's timeline.

    :param gateway: the :class:`gateway.core.Gateway` of this app
    :return: a list of :class:`gateway.queues.JobKind`. Lists are concatenated; a name that
        is taken (by the core's own kinds or another plugin) stops start-up.
    """


@hookspec
def register_notifiers(gateway):
    """Register notifiers: the channels that send citizens their notices (WhatsApp, SMS).

    :param gateway: the :class:`gateway.core.Gateway` of this app
    :return: a list of :class:`gateway.notifiers.NotifierAdapter` subclasses (classes, not
        instances: the gateway makes one per enabled ``notifiers.yaml`` entry with its
        validated config). Lists are concatenated; a duplicate ``name`` stops start-up.
    """


@hookspec(firstresult=True)
def choose_couriers(gateway, service, order, candidates):
    """Decide which couriers to try for ``order``, in order.

    Stops at the first non-None result. The core's default (``trylast``) applies the
    service's ``couriers`` list from ``config/services.yaml``; a plugin with special rules
    returns its own list with ``tryfirst``.

    :param gateway: the :class:`gateway.core.Gateway` of this app
    :param service: the :class:`gateway.services.Service` that built the order
    :param order: the provider-neutral order (``DeliveryOrder`` or ``RideOrder``)
    :param candidates: names of enabled couriers that support the order's kind
    :return: a list of courier names, first to try first; ``[]`` means no courier may take it
    """


@hookspec(firstresult=True)
def actor_from_request(gateway, request):
    """Identify who is calling.

    Stops at the first non-None result: once one plugin has recognised the caller, the others
    are not asked. The core's default reads ``Authorization: Bearer <API key>``.

    :param gateway: the :class:`gateway.core.Gateway` of this app
    :param request: the current :class:`flask.Request`
    :return: an actor dict with at least ``type`` and ``id``, or None when this plugin does
        not recognise the caller
    """


@hookspec
def permission_allowed(gateway, actor, action, resource):
    """Decide whether ``actor`` may perform ``action`` on ``resource``.

    Every implementation is asked. Each returns True (allow), False (deny) or None (no
    opinion). Any False denies; otherwise at least one True is needed; with no opinion at all
    the answer is deny.

    :param gateway: the :class:`gateway.core.Gateway` of this app
    :param actor: the actor dict from :func:`actor_from_request`
    :param action: a string such as ``"requests:create"``
    :param resource: what the action is about (a service name, a request record) or None
    :return: True, False or None
    """


@hookspec
def track_event(gateway, event, session):
    """Hear about something that happened, inside the transaction that made it happen.

    Broadcast to every implementation; return values are ignored. The core's default appends
    the event to the hash-chained audit trail through ``session``, so the fact and its audit
    record commit together or not at all. Other sinks (metrics, notifications) must not
    write personal data anywhere.

    :param gateway: the :class:`gateway.core.Gateway` of this app
    :param event: a :class:`gateway.events.Event`
    :param session: the open SQLAlchemy session of the unit of work
    """


@hookspec(firstresult=True)
def eligibility_for(gateway, service, data, config):
    """Decide whether the person a request serves is eligible for the subsidised service.

    Asked once per request, at intake. Stops at the first non-None result: a connector to
    a real register (DTSEN, BPJS PBI) answers with ``tryfirst``; a service's own configured
    rule answers last. Only the decision is stored, never the data behind it.

    :param gateway: the :class:`gateway.core.Gateway` of this app
    :param service: the :class:`gateway.services.Service` the request is for
    :param data: the validated request (personal data: use it, never store or log it)
    :param config: the service's validated settings
    :return: ``{"eligible": bool, "source": str}`` plus optionally ``"reason"``, or None
        when this plugin has no opinion about this service
    """
