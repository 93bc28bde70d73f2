"""Food ordering: Restate's food-ordering demo ported to restate-stream.

An order workflow pays, has the restaurant cook through a callback, and gets a driver from a
per-region matcher; drivers' phones publish their locations to Kafka (`driver-updates`), and
driver digital twins consume them through a binding (`bindings.yaml`). When a later step fails
for good, the workflow compensates what it completed (a saga) and cancels the order.
"""
