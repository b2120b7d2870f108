"""The design-search layer: picks an :class:`AcceleratorConfig` for a board (``dse``).

Imports ``spec``, ``models`` and ``boards``.
"""
