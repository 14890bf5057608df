"""The thinking parser: Ollama's rules for splitting ``<think>...</think>`` from the answer."""

from __future__ import annotations

from ocillm.server.thinking import ThinkingParser


def run(parser: ThinkingParser, *pieces: str) -> tuple[str, str]:
    thinking, content = [], []
    for piece in pieces:
        t, c = parser.add(piece)
        thinking.append(t)
        content.append(c)
    t, c = parser.finish()
    return "".join(thinking) + t, "".join(content) + c


def test_tags_split_thinking_from_content_whitespace_trimmed() -> None:
    parser = ThinkingParser("<think>", "</think>")
    assert run(parser, "  <think>\n I ponder. \n</think>\n\nThe answer.") == (
        "I ponder.",
        "The answer.",
    )


def test_tags_split_across_chunks() -> None:
    parser = ThinkingParser("<think>", "</think>")
    pieces = ["<th", "ink>a", "b </th", "ink>", " c", "d"]
    assert run(parser, *pieces) == ("ab", "cd")


def test_output_without_the_opening_tag_is_all_content() -> None:
    parser = ThinkingParser("<think>", "</think>")
    assert run(parser, "Hello <think>x</think>") == ("", "Hello <think>x</think>")


def test_a_prompt_ending_with_the_opening_tag_starts_inside_the_thinking() -> None:
    parser = ThinkingParser("<think>", "</think>", prompt="<user>q<think>\n")
    assert run(parser, "hmm</think>yes") == ("hmm", "yes")


def test_unfinished_thinking_is_thinking() -> None:
    parser = ThinkingParser("<think>", "</think>")
    assert run(parser, "<think>still going </thi") == ("still going </thi", "")
