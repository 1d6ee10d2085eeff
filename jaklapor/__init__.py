"""jaklapor: citizen reports for Jakarta, from photo to the responsible agency and back.

This package holds the code shared by the four services (config, dependency providers, message contracts,
HTTP plumbing, metrics) and the reference data; each service lives in `services/<name>/`.
"""

__version__ = "0.1.0"
