"""The Kafka event layer of DESIGN §4. Domain-free: it knows protobuf messages,
not Loopline events.

- ``cloudevents``: CloudEvents 1.0 binary mode (encode, decode, derived ids);
- ``tracing``: W3C trace context in headers ("send <topic>", "process <topic>");
- ``producer``: ``EventProducer``, idempotent with acks=all, one span per batch;
- ``consumer``: ``EventConsumer``, commit after handling, retry, dead-letter
  (``processing``, ``dead_letter``, ``retry``), optional partition lanes;
- ``handlers``: ``Delivery`` and ``EventRouter``;
- ``inbox`` / ``inbox_postgres``: idempotent handling;
- ``memory``: an in-memory broker for unit tests;
- ``topics``: the topic catalogue.

Nothing is imported here, so that reading the catalogue (the stack CLI) does not
load the Kafka driver.
"""
