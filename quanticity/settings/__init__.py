"""Typed settings: the model, the layered loader and the reloadable holder."""

from __future__ import annotations

from quanticity.settings.loader import load_settings
from quanticity.settings.model import Mode, Settings
from quanticity.settings.reload import SettingsHolder

__all__ = ["Mode", "Settings", "SettingsHolder", "load_settings"]
