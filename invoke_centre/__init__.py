"""The invoke centre: the core of the Palm Insurance ICS mesh.

It routes named requests (``customer.search`` …) from HTTP clients to nameko
services over RabbitMQ, using a routing table filled at run time by the
services' own announcements and by operators. It knows no insurance.

``invoke_centre.kit`` is the other audience: the few lines a service uses to
join the mesh.
"""
