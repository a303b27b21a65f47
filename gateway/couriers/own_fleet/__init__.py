"""The regency's own fleet (Gancang Aron staff) and its tourist shuttles, as couriers.

``adapter`` books onto the dispatch list in the database and is the plugin
(``register_couriers``: ``own_fleet`` and ``shuttle_fleet``); ``mapping`` holds the pure
parts (statuses, the staff steps, what staff see). No simulator: the fleet is ours. Registered
as the ``own_fleet`` entry point of the ``gateway.couriers`` group, like any other courier.
"""
