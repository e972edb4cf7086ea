"""GRPO reward functions: each built-in scores hand-written completions (plain text and chat messages) as a user
expects, format presets accept and refuse, rewards load from a user's Python file, and every failure (a raising
reward, a wrong-length result, a missing function, a syntax error, a missing answer column) says what to fix."""

from __future__ import annotations

import sys

import pytest

from studio.train.rewards import (
    BUILTIN_REWARDS,
    FORMAT_PRESETS,
    RewardError,
    RewardSettings,
    build_reward_functions,
    completion_text,
    load_user_rewards,
    resolve_format,
    score_completion,
)


def chat(text: str) -> list[dict]:
    """The conversational form of a completion: one assistant message."""
    return [{"role": "assistant", "content": text}]


def trl_call(fn, completions: list, prompts: list | None = None, **columns) -> list:
    """Call a reward exactly as TRL's GRPOTrainer does, with its extra kwargs."""
    prompts = prompts or ["question"] * len(completions)
    return fn(prompts=prompts, completions=completions, completion_ids=[[1, 2]] * len(completions),
              trainer_state=object(), log_extra=lambda *a, **k: None, log_metric=lambda *a, **k: None, **columns)


def reward(name: str, **settings):
    [fn] = build_reward_functions([name], RewardSettings(**settings))
    return fn


@pytest.fixture(params=["text", "messages"])
def form(request):
    """Each built-in is checked on plain strings and on the conversational message-list form."""
    return (lambda text: text) if request.param == "text" else chat


def test_every_builtin_is_described_and_named_after_itself():
    assert set(BUILTIN_REWARDS) == {"exact_match", "number_match", "format", "length", "valid_json", "no_repetition"}
    functions = build_reward_functions(list(BUILTIN_REWARDS), RewardSettings())
    assert [fn.__name__ for fn in functions] == list(BUILTIN_REWARDS)


def test_completion_text_joins_the_assistant_messages_only():
    messages = [{"role": "assistant", "content": "first"}, {"role": "tool", "content": "tool output"},
                {"role": "assistant", "content": "second"}]
    assert completion_text(messages) == "first\nsecond"
    assert completion_text("  as it is ") == "  as it is "


def test_exact_match_normalises_case_spacing_width_and_a_final_period(form):
    fn = reward("exact_match")
    completions = [form("  Paris. "), form("PARIS\n"), form("Ｐａｒｉｓ"), form("London"), form("Paris, France")]
    assert trl_call(fn, completions, answer=["paris"] * 5) == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_exact_match_compares_only_the_last_answer_tag(form):
    fn = reward("exact_match")
    completions = [form("<think>maybe Lyon</think><answer>Lyon</answer> no wait <answer> Paris </answer>"),
                   form("<answer>Lyon</answer> but Paris"),
                   form("the answer is Paris")]
    assert trl_call(fn, completions, answer=["Paris"] * 3) == [1.0, 0.0, 0.0]


def test_exact_match_reads_the_configured_column_and_skips_rows_without_a_reference():
    fn = reward("exact_match", answer_column="solution")
    assert trl_call(fn, ["42", "42"], solution=["42", None]) == [1.0, None]


def test_number_match_gsm8k_reference_with_thousands_commas(form):
    fn = reward("number_match")
    reference = "She sells 1,000 and then 234 more, 1,000 + 234 = 1,234\n#### 1,234"
    completions = [form("The answer is 1234."), form("So 1,234.00 in all"), form("It is 1,000 + 234 = 1235"),
                   form("I cannot tell")]
    assert trl_call(fn, completions, answer=[reference] * 4) == [1.0, 1.0, 0.0, 0.0]


def test_number_match_uses_the_answer_tag_and_signs_and_decimals(form):
    fn = reward("number_match")
    completions = [form("<think>12 * 6 = 72, check 3 times</think><answer>72</answer> (took 5 s)"),
                   form("<answer>-3.50</answer>"),
                   form("1,234.50"),
                   form("<answer>seventy-two</answer> 72")]
    references = ["#### 72", "the loss is -3.5", "1234.5", "72"]
    assert trl_call(fn, completions, answer=references) == [1.0, 1.0, 1.0, 0.0]


def test_number_match_reference_without_a_number_names_the_value_and_row():
    fn = reward("number_match")
    with pytest.raises(RewardError) as caught:
        trl_call(fn, ["1", "2", "3"], answer=["#### 1", "#### 2", "banana"])
    message = str(caught.value)
    assert "row 2" in message
    assert "'banana'" in message
    assert "number_match" in message


def test_think_answer_preset_accepts_and_refuses(form):
    fn = reward("format")  # think_answer is the default
    completions = [form("<think>2+2 is 4</think>\n<answer>4</answer>"),
                   form("  <think>\nstep\n</think> <answer>4</answer>\n"),
                   form("<answer>4</answer>"),
                   form("<think> </think><answer>4</answer>"),
                   form("<think>x</think><answer>4</answer> and more"),
                   form("<think>x</think><think>y</think><answer>4</answer>")]
    assert trl_call(fn, completions) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]


def test_answer_tag_preset_and_a_custom_regex():
    answer_tag = reward("format", format_regex="answer_tag")
    assert trl_call(answer_tag, ["<answer>4</answer>", "<answer></answer>", "4"]) == [1.0, 0.0, 0.0]
    custom = reward("format", format_regex=r"Answer: \d+")
    assert trl_call(custom, ["Answer: 12", "Answer: twelve", "Answer: 12\nbye"]) == [1.0, 0.0, 0.0]


def test_resolve_format_gives_presets_and_refuses_a_broken_regex():
    assert resolve_format("answer_tag") == FORMAT_PRESETS["answer_tag"]
    assert resolve_format(r"\d+") == r"\d+"
    with pytest.raises(RewardError) as caught:
        resolve_format("<answer>(.*</answer>")
    assert "'<answer>(.*</answer>'" in str(caught.value)
    assert "missing )" in str(caught.value)
    with pytest.raises(RewardError, match="format regex"):
        build_reward_functions(["format"], RewardSettings(format_regex="[unclosed"))


def test_length_is_closeness_to_the_target(form):
    fn = reward("length", length_target=10)
    completions = [form("x" * 10), form("x" * 15), form("x" * 5), form("x" * 25), form("")]
    assert trl_call(fn, completions) == [1.0, 0.5, 0.5, 0.0, 0.0]


def test_length_target_must_be_positive():
    with pytest.raises(RewardError, match="above 0"):
        reward("length", length_target=0)


def test_valid_json_accepts_fences_and_refuses_broken_json(form):
    fn = reward("valid_json")
    completions = [form('{"a": 1}'), form('```json\n{"a": [1, 2]}\n```'), form("```\n[1, 2]\n```"),
                   form("{'a': 1}"), form('Here you go: {"a": 1}'), form('```json\n{"a": 1\n```')]
    assert trl_call(fn, completions) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]


def test_valid_json_checks_the_schema(form):
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    fn = reward("valid_json", json_schema=schema)
    completions = [form('{"age": 30}'), form('{"age": "thirty"}'), form('{"name": "Ann"}'), form("[30]")]
    assert trl_call(fn, completions) == [1.0, 0.0, 0.0, 0.0]


def test_an_invalid_schema_is_refused_when_built():
    with pytest.raises(RewardError, match="not a valid schema"):
        reward("valid_json", json_schema={"type": "no-such-type"})


def test_no_repetition_counts_repeated_three_grams(form):
    fn = reward("no_repetition")
    completions = [form("the cat sat on the mat"),  # 4 distinct 3-grams
                   form("a b c a b c"),  # abc bca cab abc: 1 of 4 repeated
                   form("go go go go go"),  # 3 times the same 3-gram
                   form("two words")]
    assert trl_call(fn, completions) == [1.0, 0.75, pytest.approx(1 / 3), 1.0]


def test_no_repetition_uses_characters_for_chinese(form):
    fn = reward("no_repetition")
    completions = [form("我喜欢学习中文"), form("好好好好好"), form("你好")]
    assert trl_call(fn, completions) == [1.0, pytest.approx(1 / 3), 1.0]


def test_a_missing_answer_column_names_the_column_and_what_to_do():
    for name in ("exact_match", "number_match"):
        fn = reward(name, answer_column="gold")
        with pytest.raises(RewardError) as caught:
            trl_call(fn, ["4"], solution=["4"])
        message = str(caught.value)
        assert message.startswith(name)
        assert '"gold"' in message
        assert "they have: solution" in message
        assert "rename a column" in message


def test_an_unknown_reward_without_a_user_file_lists_the_builtins():
    with pytest.raises(RewardError) as caught:
        build_reward_functions(["exact_match", "my_reward"], RewardSettings())
    assert "unknown reward my_reward" in str(caught.value)
    assert "exact_match, number_match, format, length, valid_json, no_repetition" in str(caught.value)


USER_FILE = '''
import math
from dataclasses import dataclass


@dataclass
class Weights:
    short: float = 0.5


def shortness(completions, **kwargs):
    return [Weights().short if len(c) < 5 else 0.0 for c in completions]


def mentions_topic(completions, topic, **kwargs):
    return [1.0 if t in c else 0.0 for c, t in zip(completions, topic)]


def only_completions(completions):
    return [float(len(c)) for c in completions]


def inverse(completions, **kwargs):
    return [1 / len(c) for c in completions]


def wrong_length(completions, **kwargs):
    return [1.0]


def not_numbers(completions, **kwargs):
    return ["good" for c in completions]


def no_completions(prompts, answers):
    return []


def _helper():
    return math.pi
'''


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(USER_FILE, encoding="utf-8")
    return path


def test_user_functions_are_picked_by_name_in_order(user_file):
    modules_before = set(sys.modules)
    found = load_user_rewards(user_file, ["mentions_topic", "shortness"])
    assert list(found) == ["mentions_topic", "shortness"]
    assert set(sys.modules) == modules_before  # the user's module is not left behind

    functions = build_reward_functions(["mentions_topic", "length", "shortness"], RewardSettings(length_target=4),
                                       user_file)
    assert [fn.__name__ for fn in functions] == ["mentions_topic", "length", "shortness"]
    topic, length, shortness = functions
    assert trl_call(topic, ["about cats", "about dogs"], topic=["cats", "cats"]) == [1.0, 0.0]
    assert trl_call(length, ["abcd", "abcdef"]) == [1.0, 0.5]
    assert trl_call(shortness, ["hi", "hello there"]) == [0.5, 0.0]


def test_a_user_function_without_kwargs_gets_only_what_it_takes(user_file):
    [fn] = build_reward_functions(["only_completions"], RewardSettings(), user_file)
    assert trl_call(fn, ["abc", "a"], topic=["x", "y"]) == [3.0, 1.0]


def test_a_user_reward_that_raises_names_the_function_and_the_row(user_file):
    [fn] = build_reward_functions(["inverse"], RewardSettings(), user_file)
    prompts = [[{"role": "system", "content": "Be brief."},
                {"role": "user", "content": f"Question {i}: " + "what is two plus two, really, honestly " * 3}]
               for i in range(5)]
    with pytest.raises(RewardError) as caught:
        trl_call(fn, ["a", "bb", "ccc", "", "e"], prompts=prompts)
    message = str(caught.value)
    assert message.startswith('reward function inverse failed on row 3 (prompt: "Question 3: what is two plus two')
    assert message.endswith("…\"): ZeroDivisionError: division by zero")
    excerpt = message.split('(prompt: "')[1].split('")')[0]
    assert len(excerpt) <= 60


def test_a_wrong_length_result_says_what_came_back_and_what_was_expected(user_file):
    [fn] = build_reward_functions(["wrong_length"], RewardSettings(), user_file)
    with pytest.raises(RewardError) as caught:
        trl_call(fn, ["a", "b", "c"])
    assert str(caught.value).startswith("reward function wrong_length returned 1 values for 3 completions")
    assert "expected a list of 3 numbers" in str(caught.value)


def test_a_result_that_is_not_numbers_is_refused(user_file):
    [fn] = build_reward_functions(["not_numbers"], RewardSettings(), user_file)
    with pytest.raises(RewardError, match=r"not_numbers returned 'good' \(str\) at position 0"):
        trl_call(fn, ["a", "b"])


def test_a_missing_function_lists_what_the_file_defines(user_file):
    with pytest.raises(RewardError) as caught:
        load_user_rewards(user_file, ["shortness", "correctness"])
    message = str(caught.value)
    assert "has no function 'correctness'" in message
    assert message.endswith("the functions it defines are: shortness, mentions_topic, only_completions, inverse, "
                            "wrong_length, not_numbers, no_completions")


def test_a_function_that_cannot_take_completions_is_refused(user_file):
    with pytest.raises(RewardError, match=r"no_completions .* cannot take the completions.*def no_completions\("):
        load_user_rewards(user_file, ["no_completions"])


def test_a_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("def ok(completions, **kwargs):\n    return [1.0]\n\ndef bad(completions:\n    return []\n")
    with pytest.raises(RewardError) as caught:
        load_user_rewards(path, ["ok"])
    message = str(caught.value)
    assert message.startswith(f"reward file {path}, line 4 failed to import: SyntaxError")


def test_an_error_while_importing_names_the_line_in_the_users_file(tmp_path):
    path = tmp_path / "crash.py"
    path.write_text("import json\n\nTABLE = json.loads('{broken')\n")
    with pytest.raises(RewardError) as caught:
        load_user_rewards(path, ["anything"])
    assert str(caught.value).startswith(f"reward file {path}, line 3 failed to import: JSONDecodeError")


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(RewardError, match="does not exist"):
        build_reward_functions(["mine"], RewardSettings(), tmp_path / "nope.py")


def test_score_completion_scores_one_probe_answer(user_file):
    functions = build_reward_functions(["number_match", "format", "shortness"], RewardSettings(), user_file)
    scores = score_completion(functions, [{"role": "user", "content": "What is 6 * 12?"}],
                              "<think>6 * 12</think><answer>72</answer>", {"answer": "#### 72", "id": 7})
    assert scores == {"number_match": 1.0, "format": 1.0, "shortness": 0.0}
