"""The engine's stop-sequence scanner: the text before the earliest stop, the stop named."""

from __future__ import annotations

from ocillm.runner.stops import StopScanner


def run(scanner: StopScanner, *pieces: str) -> str:
    return "".join(scanner.add(p) for p in pieces) + scanner.finish()


def test_text_before_the_stop_is_kept_and_the_stop_named() -> None:
    scanner = StopScanner(["END"])
    assert run(scanner, "hello E", "N", "D and more") == "hello "
    assert scanner.matched == "END"


def test_a_possible_start_of_a_stop_is_held_back_then_released() -> None:
    scanner = StopScanner(["END"])
    assert scanner.add("hello EN") == "hello "
    assert scanner.add("x") == "ENx"
    assert scanner.finish() == "" and scanner.matched is None


def test_the_earliest_stop_wins_whatever_the_order_given() -> None:
    scanner = StopScanner(["zz", "b"])
    assert run(scanner, "a b zz") == "a "
    assert scanner.matched == "b"


def test_held_text_comes_out_when_generation_ends_without_a_stop() -> None:
    scanner = StopScanner(["</s>", ""])
    assert run(scanner, "x </") == "x </" and scanner.matched is None
