"""``tomllib`` on Python 3.11+, its backport ``tomli`` before."""
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = ["tomllib"]
