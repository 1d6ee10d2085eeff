"""Reference data: report categories, Jakarta's administrative areas and the OPD directory.

Everything is read from the files in this folder, once per process (`functools.cache`), by one module each:

- `categories.yaml`            -> `categories.py`: `load_categories()`, `resolve_category()`
- `jakarta_kelurahan.geojson`  -> `areas.py`: `load_areas()` (kelurahan / kecamatan / kota, names and slugs)
- `opd_directory.yaml`         -> `directory.py`: `load_directory()` (agencies, generated kota units and area
                                  offices, category rules)

`geo.py` makes the boundaries fit for a browser's map (simplified) and gives a point inside each kelurahan; and
`parsing.py` holds what they share (`slugify`, reading YAML, `ReferenceDataError`). The public names are
re-exported here: `from jaklapor.reference import load_directory`.

The `parse_*` / `build_directory` functions take the data itself (a mapping or YAML text), so a
broken file can be tested without touching the real one. Validation problems raise
`CategoryError`, `AreaDataError` or `DirectoryError` (all `ReferenceDataError`, a `ValueError`),
naming every problem found.
"""

from jaklapor.reference.areas import (
    KELURAHAN_GEOJSON_PATH,
    Area,
    AreaDataError,
    Areas,
    KecamatanInfo,
    KelurahanInfo,
    KotaInfo,
    load_areas,
    load_kelurahan_geojson,
    parse_areas,
)
from jaklapor.reference.categories import (
    CATEGORIES_PATH,
    DEFAULT_RESPONSE_DAYS,
    Category,
    CategoryError,
    CategoryGroup,
    category_groups,
    load_categories,
    parse_categories,
    resolve_category,
)
from jaklapor.reference.directory import (
    DIRECTORY_PATH,
    LEVELS,
    Directory,
    DirectoryError,
    Opd,
    Rule,
    build_directory,
    load_directory,
)
from jaklapor.reference.parsing import REFERENCE_DIR, ReferenceDataError, slugify

__all__ = [
    "CATEGORIES_PATH",
    "DEFAULT_RESPONSE_DAYS",
    "DIRECTORY_PATH",
    "KELURAHAN_GEOJSON_PATH",
    "LEVELS",
    "REFERENCE_DIR",
    "Area",
    "AreaDataError",
    "Areas",
    "Category",
    "CategoryError",
    "CategoryGroup",
    "Directory",
    "DirectoryError",
    "KecamatanInfo",
    "KelurahanInfo",
    "KotaInfo",
    "Opd",
    "ReferenceDataError",
    "Rule",
    "build_directory",
    "category_groups",
    "load_areas",
    "load_categories",
    "load_directory",
    "load_kelurahan_geojson",
    "parse_areas",
    "parse_categories",
    "resolve_category",
    "slugify",
]
