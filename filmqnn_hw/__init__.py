"""filmqnn_hw: Amaranth generators for the FILM-QNN mixed-precision accelerator.

Importing the package is cheap: submodules that need amaranth import it themselves, and
``filmqnn_hw.spec.config`` (the shared configuration object) needs neither amaranth nor torch.
"""

from filmqnn_hw.spec.config import AcceleratorConfig, ConfigError

__all__ = ["AcceleratorConfig", "ConfigError"]
