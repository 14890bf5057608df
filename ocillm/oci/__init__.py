"""The vocabulary every layer shares: references, digests, media types, descriptors, manifests."""

from ocillm.oci import mediatypes
from ocillm.oci.digest import Digest, is_digest, normalize_digest, sha256_digest
from ocillm.oci.models import Descriptor, Index, Manifest, canonical_json, descriptor_for
from ocillm.oci.reference import Reference, parse_reference

__all__ = [
    "Descriptor",
    "Digest",
    "Index",
    "Manifest",
    "Reference",
    "canonical_json",
    "descriptor_for",
    "is_digest",
    "mediatypes",
    "normalize_digest",
    "parse_reference",
    "sha256_digest",
]
