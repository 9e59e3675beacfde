"""The one place lockkit's version lives; hatchling reads it at build time."""

__version__ = "0.1.0.dev0"
