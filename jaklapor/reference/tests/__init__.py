"""Tests of the reference data (jaklapor.reference): categories, areas and the OPD directory."""

import re

#: a lowercase ASCII slug, written here independently of the code under test
SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
