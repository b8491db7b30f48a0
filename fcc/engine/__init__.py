"""The generic engine: catalog, config, routing, probes, translation, transports, health."""
