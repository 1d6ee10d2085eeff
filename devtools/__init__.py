"""Development tools: local servers and stand-ins for the tests, the benchmarks and `make run`.

Not part of the shipped `jaklapor` package and never imported by it: production talks to a real MinIO and MongoDB.
"""
