"""OpenAI-style chat messages, checked before a model's template formats them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["CHAT_ROLES", "chat_messages"]

# the roles OpenAI-style chat messages take, as llama.cpp's templates know them
CHAT_ROLES = ("system", "user", "assistant")


def chat_messages(messages: str | Sequence[Mapping[str, str]]) -> list[tuple[str, str]]:
    """(role, content) pairs of OpenAI-style chat messages, checked; a str is one user message."""
    if isinstance(messages, str):
        return [("user", messages)]
    pairs = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValueError(f"chat message {i} must be a dict with str 'role' and 'content', got {m!r}")
        if m["role"] not in CHAT_ROLES:
            raise ValueError(f"chat message {i} has role {m['role']!r}; expected one of {', '.join(CHAT_ROLES)}")
        pairs.append((m["role"], m["content"]))
    if not pairs:
        raise ValueError("the chat has no messages")
    return pairs
