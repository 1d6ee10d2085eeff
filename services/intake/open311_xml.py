"""Open311 GeoReport v2 documents as XML, built with the standard library's ElementTree (no I/O).

Every text, the citizen's included, goes in as an element's text and is escaped by ElementTree; characters XML 1.0
cannot carry at all (most control characters, lone surrogates, U+FFFE/U+FFFF) are dropped first, since escaping
cannot make them valid. Nothing is assembled by concatenating strings.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

#: the element of one item of each list (the spec's: <services><service>, <notes><note>, ...)
ITEM_NAMES = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "endpoints": "endpoint",
    "formats": "format",
    "attributes": "attribute",
    "values": "value",
    "notes": "note",
    "photos": "photo",
    "evidence_photos": "photo",
}
#: the declaration as the spec writes it (ElementTree's own says encoding='utf-8')
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: Any) -> str:
    """A value as element text: booleans as the spec writes them, nothing for null, characters XML cannot hold
    removed."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("", str(value))


def _fill(element: ET.Element, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, child in value.items():
            _fill(ET.SubElement(element, key), child)
    elif isinstance(value, list):
        item_name = ITEM_NAMES.get(element.tag, "item")
        for item in value:
            _fill(ET.SubElement(element, item_name), item)
    else:
        element.text = xml_text(value)


def xml_document(root: str, value: Any) -> bytes:
    """`value` (a list of items, or a mapping of fields) under the element `root`, UTF-8, with the XML declaration
    the spec requires."""
    element = ET.Element(root)
    _fill(element, value)
    return XML_DECLARATION + ET.tostring(element, encoding="unicode").encode("utf-8")
