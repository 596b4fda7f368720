"""The Gridfleet TUF repository: pure python-tuf Metadata API, no Django.

`firmware.tuf.repository.TufRepository` builds, signs and publishes the PEP 458 style
repository described in docs/tuf-repository.md; the Django side (firmware.publisher) feeds it
the targets of changed hash bins.
"""
