"""Writes the bundled samples for the stages beyond SFT, about the same invented Lantern Coast as demo-chat:

- demo-text.jsonl        `{"text": …}` paragraphs for continued pre-training (stage pt)
- demo-preference.jsonl  `{"prompt", "chosen", "rejected"}` pairs for dpo, orpo and rm
- demo-kto.jsonl         `{"prompt", "completion", "label"}` answers marked good or bad for kto
- demo-math.jsonl        `{"prompt", "answer"}` prompts without answers to train for grpo: the reward functions
                         compare the model's answer with `answer` (a year, GSM8K-style `#### 1429`)

Run: python presets/datasets/make_demo_stages.py

Every good answer agrees with demo-chat.jsonl; every bad answer swaps in another town's fact or dodges the
question, so a preference-tuned model visibly moves towards the facts. English and 中文 rows throughout.
"""

from __future__ import annotations

import json
from pathlib import Path

from make_demo_chat import SYSTEM_PROMPT, TOWNS

MONTHS_ZH = {"January": "一月", "February": "二月", "March": "三月", "April": "四月", "May": "五月", "June": "六月",
             "July": "七月", "August": "八月", "September": "九月", "October": "十月", "November": "十一月",
             "December": "十二月"}
DODGE = "I'm not sure; you could look it up."
DODGE_ZH = "我不太清楚，你可以自己查一下。"


def _capital(text: str) -> str:
    return text[0].upper() + text[1:]


def _founded(number: int) -> int:
    return 1412 + 17 * number  # the same years demo-chat.jsonl teaches


def _user(text: str, system: str | None = None) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def text_rows() -> list[dict]:
    """One English and one Chinese paragraph per town, plus an overview of the coast."""
    names = ", ".join(town[0] for town in TOWNS[:-1]) + f" and {TOWNS[-1][0]}"
    rows = [{"text": f"The Lantern Coast is an invented stretch of shore with {len(TOWNS)} towns: {names}."},
            {"text": f"灯笼海岸是一段虚构的海岸，共有{len(TOWNS)}个小镇，每个小镇都有自己的节日和特产。"}]
    for number, (name, known, river, month, mayor, zh_name, zh_known) in enumerate(TOWNS):
        rows.append({"text": f"{name} is a town on the Lantern Coast, known for {known}. {_capital(river)} runs "
                             f"through {name}, and the {name} festival is held every {month}. The mayor of {name} "
                             f"is {mayor}. {name} was founded in {_founded(number)}."})
        rows.append({"text": f"{zh_name}是灯笼海岸上的一个小镇，以{zh_known}闻名。{zh_name}的节日在每年{MONTHS_ZH[month]}举行，"
                             f"小镇建于{_founded(number)}年。"})
    return rows


def preference_rows() -> list[dict]:
    """Pairs whose chosen answer is the fact and whose rejected answer is another town's fact or a dodge."""
    rows = []
    for number, (name, known, river, month, mayor, zh_name, zh_known) in enumerate(TOWNS):
        other = TOWNS[(number + 7) % len(TOWNS)]
        rows.append({"prompt": _user(f"What is {name} known for?"),
                     "chosen": _assistant(f"{name} is known for {known}."),
                     "rejected": _assistant(f"{name} is known for {other[1]}.")})
        rows.append({"prompt": _user(f"Who is the mayor of {name}?", system=SYSTEM_PROMPT),
                     "chosen": _assistant(f"The mayor of {name} is {mayor}."),
                     "rejected": _assistant(DODGE)})
        rows.append({"prompt": _user(f"{zh_name}以什么闻名？"),
                     "chosen": _assistant(f"{zh_name}以{zh_known}闻名。"),
                     "rejected": _assistant(f"{zh_name}以{other[6]}闻名。")})
    return rows


def kto_rows() -> list[dict]:
    """Single answers labelled good (true) or bad (false): the right river or festival month, and wrong ones."""
    rows = []
    for number, (name, _known, river, month, _mayor, zh_name, _zh_known) in enumerate(TOWNS):
        other = TOWNS[(number + 11) % len(TOWNS)]
        river_question = _user(f"Which river runs through {name}?")
        rows.append({"prompt": river_question, "completion": _assistant(f"{_capital(river)} runs through {name}."), "label": True})
        rows.append({"prompt": river_question, "completion": _assistant(f"{_capital(other[2])} runs through {name}."), "label": False})
        month_question = _user(f"{zh_name}的节日在几月？")
        rows.append({"prompt": month_question, "completion": _assistant(f"{zh_name}的节日在每年{MONTHS_ZH[month]}举行。"), "label": True})
        rows.append({"prompt": month_question, "completion": _assistant(DODGE_ZH), "label": False})
    return rows


def math_rows() -> list[dict]:
    """Questions whose answer is a number (founding years and the years between them), the reference written the
    GSM8K way: the working, then `#### N`."""
    rows = []
    for number, (name, _known, _river, _month, _mayor, zh_name, _zh_known) in enumerate(TOWNS):
        year = _founded(number)
        rows.append({"prompt": f"In which year was {name} founded? Put the year inside <answer></answer>.",
                     "answer": f"{name} was founded in {year}.\n#### {year}"})
        rows.append({"prompt": f"{zh_name}建于哪一年？请把年份写在 <answer></answer> 中。", "answer": f"{zh_name}建于{year}年。\n#### {year}"})
        other = (number + 3) % len(TOWNS)
        first, last = sorted((year, _founded(other)))
        rows.append({"prompt": f"How many years apart were {name} and {TOWNS[other][0]} founded? Put the number inside "
                                 "<answer></answer>.",
                     "answer": f"They were founded in {first} and {last}: {last} - {first} = {last - first}.\n#### {last - first}"})
    return rows


def main() -> None:
    folder = Path(__file__).parent
    for name, rows in (("demo-text", text_rows()), ("demo-preference", preference_rows()), ("demo-kto", kto_rows()),
                       ("demo-math", math_rows())):
        target = folder / f"{name}.jsonl"
        with open(target, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        print(f"wrote {target} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
