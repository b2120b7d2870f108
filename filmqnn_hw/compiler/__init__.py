"""The compiler layer: integer network -> layer program (``program_builder``).

Imports ``spec`` and ``models``.
"""
