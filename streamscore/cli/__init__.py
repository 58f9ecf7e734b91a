"""Layer 11: the ``streamscore`` command, one module per command group (see ``main``)."""
