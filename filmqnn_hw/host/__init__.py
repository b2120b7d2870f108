"""The host layer: the driver that loads an export and runs frames (``driver``)."""
