"""filmqnn_hw: Amaranth generators for the FILM-QNN mixed-precision accelerator.

The package is built in layers (``docs/architecture.md``): ``spec`` (config, geometry,
numerics, golden model, file formats; pure Python), ``gateware`` (Amaranth components),
``models`` (resources, cycles), ``search``, ``compiler``, ``flows``, ``verify``, ``sim``,
``host``, and the command line (``build``, ``report``, ``evaluate``). Importing the package
is cheap: it loads only :mod:`filmqnn_hw.spec.config`.
"""

from filmqnn_hw.spec.config import AcceleratorConfig, ConfigError

__all__ = ["AcceleratorConfig", "ConfigError"]
