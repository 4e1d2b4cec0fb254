"""Model.chat(): OpenAI-style messages through the model's own chat template."""

import pytest

MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Name a colour."},
]


def test_a_model_without_a_chat_template_is_refused_with_what_to_do(tiny):
    with pytest.raises(ValueError, match="no chat template.*complete\\(\\)"):
        tiny.chat(MESSAGES)


@pytest.mark.parametrize(
    "messages, why",
    [
        ([], "no messages"),
        ([{"role": "robot", "content": "hi"}], "role 'robot'"),
        ([{"role": "user"}], "str 'role' and 'content'"),
        (["hi"], "str 'role' and 'content'"),
    ],
    ids=["empty", "unknown-role", "no-content", "not-a-dict"],
)
def test_malformed_messages_are_refused_with_the_message_at_fault(tiny, messages, why):
    with pytest.raises(ValueError, match=why):
        tiny.chat(messages)


@pytest.mark.real_model
def test_chat_prompt_formats_every_message_in_order_and_opens_the_assistant_turn(smollm2):
    prompt = smollm2.chat_prompt(MESSAGES + [{"role": "assistant", "content": "Red."},
                                             {"role": "user", "content": "Another."}])
    order = [prompt.index(s) for s in ("terse assistant", "Name a colour.", "Red.", "Another.")]
    assert order == sorted(order), f"the messages are out of order in {prompt!r}"
    assert prompt.rstrip().endswith("<|im_start|>assistant"), f"the assistant turn is not open: {prompt!r}"


@pytest.mark.real_model
def test_a_greedy_chat_reply_ends_at_the_end_of_turn_token(smollm2):
    c = smollm2.chat(MESSAGES, 0.0, n_predict=64)
    assert c.stop_type == "eos", f"the reply did not end its turn within 64 tokens: {c.text!r}"
    assert c.text.strip() and "<|im_end|>" not in c.text
    im_start = smollm2.tokenize("<|im_start|>", add_special=False).tolist()
    assert len(im_start) == 1 and c.prompt_tokens.tolist().count(im_start[0]) == 3, (
        "the template's turn markers should be control tokens, one per message and one for the reply")


@pytest.mark.real_model
def test_chat_samples_at_negative_temperature_like_complete(smollm2):
    c = smollm2.chat("Hello", -0.001, seed=1, n_predict=8)
    same = smollm2.complete(smollm2.chat_prompt("Hello"), -0.001, seed=1, n_predict=8)
    assert c.tokens.tolist() == same.tokens.tolist()
