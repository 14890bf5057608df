"""References: Docker/OCI grammar, Ollama short names, shortest display."""

from __future__ import annotations

import pytest

from ocillm.errors import InvalidReference
from ocillm.oci.reference import Reference, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tiny", "registry.ollama.ai/library/tiny:latest"),
        ("tiny:q4", "registry.ollama.ai/library/tiny:q4"),
        ("acme/tiny", "registry.ollama.ai/acme/tiny:latest"),
        ("a/b/c:1", "registry.ollama.ai/a/b/c:1"),
        ("localhost:5000/ns/m", "localhost:5000/ns/m:latest"),
        ("localhost/m:t", "localhost/m:t"),
        ("ghcr.io/org/team/model:1.4", "ghcr.io/org/team/model:1.4"),
        ("127.0.0.1:5000/x/y:z", "127.0.0.1:5000/x/y:z"),
        (f"ghcr.io/org/m@{DIGEST}", f"ghcr.io/org/m@{DIGEST}"),
        (f"ghcr.io/org/m:1@{DIGEST}", f"ghcr.io/org/m:1@{DIGEST}"),
        ("my-model.v2__x:1.0-rc_1", "registry.ollama.ai/library/my-model.v2__x:1.0-rc_1"),
    ],
)
def test_parse_expands_like_ollama_and_docker(text: str, expected: str) -> None:
    assert str(parse_reference(text)) == expected


def test_port_is_not_a_tag() -> None:
    ref = parse_reference("localhost:5000/ns/m")
    assert (ref.registry, ref.repository, ref.tag) == ("localhost:5000", "ns/m", "latest")


def test_digest_reference_has_no_default_tag() -> None:
    ref = parse_reference(f"reg.io/a/b@{DIGEST}")
    assert ref.tag is None and ref.digest == DIGEST and ref.target == DIGEST


def test_default_registry_is_a_parameter() -> None:
    ref = parse_reference("tiny", default_registry="registry.local:5000")
    assert str(ref) == "registry.local:5000/library/tiny:latest"
    assert ref.display(default_registry="registry.local:5000") == "tiny:latest"
    assert ref.display() == "registry.local:5000/library/tiny:latest"
    assert str(parse_reference("tiny")) == "registry.ollama.ai/library/tiny:latest"


@pytest.mark.parametrize(
    ("text", "shortest"),
    [
        ("tiny", "tiny:latest"),
        ("registry.ollama.ai/library/tiny:1", "tiny:1"),
        ("registry.ollama.ai/acme/tiny", "acme/tiny:latest"),
        ("ghcr.io/org/m:1", "ghcr.io/org/m:1"),
        ("registry.ollama.ai/library/a/b", "library/a/b:latest"),
    ],
)
def test_display_is_shortest_and_round_trips(text: str, shortest: str) -> None:
    ref = parse_reference(text)
    assert ref.display() == shortest
    assert parse_reference(shortest) == ref


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("", "empty"),
        ("Tiny", "lowercase"),
        ("ghcr.io/Org/m", "lowercase"),
        ("a//b", "empty path component"),
        ("m:-bad", "tag"),
        ("m:" + "x" * 129, "tag"),
        ("m@sha256:123", "digest"),
        ("https://ghcr.io/a/b", "scheme"),
        ("a/b_-c", "must be lowercase letters"),
        ("ghcr.io/" + "a" * 260, "longer than"),
    ],
)
def test_invalid_references_name_the_rule(text: str, rule: str) -> None:
    with pytest.raises(InvalidReference) as err:
        parse_reference(text)
    assert rule in str(err.value)


def test_reference_is_hashable_value() -> None:
    assert {Reference.parse("tiny"), Reference.parse("tiny:latest")} == {Reference.parse("tiny")}
