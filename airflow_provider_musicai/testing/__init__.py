"""Test helpers of the provider: the Music AI emulator and its pytest plugin.

``EmulatorServer`` (start/stop an emulator), ``EmulatorHandle`` (attach to a running one),
``EmulatorAdmin`` (its admin API) and ``EmulatorError`` are exported lazily so that importing this
package (which pytest does for the plugin) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .emulator.control import EmulatorAdmin, EmulatorError, EmulatorHandle, EmulatorServer

__all__ = ["EmulatorAdmin", "EmulatorError", "EmulatorHandle", "EmulatorServer"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from .emulator import control

        return getattr(control, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
