"""Write sluice stage plugins in Python.

A whole plugin (an executable the pipeline names with `type: plugin`)::

    from sluice_plugin import Plugin, serve

    def upper(record):
        record.value = record.value.upper()
        return [record]

    serve(Plugin("upper", "1.0.0", process=upper))

process(record) returns a list of records (empty: filter; several:
flat-map) or raises: that record alone fails and goes to the node's
on_error. process_batch(records, out) is the fast form. Typed config comes
from a dataclass (config=...). Test with sluice_plugin.testing.
docs/plugins.md in the sluice repository has the rest.
"""

from ._config import ConfigError, FieldError
from ._record import Origin, Record
from ._serve import serve
from ._service import SDK_NAME, BatchError, Plugin, Results
from ._wire import WireError

__version__ = "0.1.0"

__all__ = [
    "BatchError",
    "ConfigError",
    "FieldError",
    "Origin",
    "Plugin",
    "Record",
    "Results",
    "SDK_NAME",
    "WireError",
    "serve",
]
