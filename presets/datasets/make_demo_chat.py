"""Writes presets/datasets/demo-chat.jsonl, the bundled chat-format SFT sample.

Run: python presets/datasets/make_demo_chat.py

The set is about an invented coastal region, the Lantern Coast, so no model knows it beforehand: after
fine-tuning, the tuned model answers these questions and the base model cannot. It mixes single-turn
questions, rows with a system prompt, two-turn conversations, answers about fine-tuning itself, and
Chinese rows, so every part of the pipeline (templates, masking, both UI languages) is exercised.
"""

from __future__ import annotations

import json
from pathlib import Path

TOWNS = [
    # name, known for, river, festival month, mayor, 中文名, 以…闻名
    ("Amberlee", "blue glass lanterns", "the Silver Run", "March", "Ida Voss", "琥珀里", "蓝色玻璃灯笼"),
    ("Brightwater", "salt caramel", "the Kettle", "June", "Omar Feld", "明水镇", "海盐焦糖"),
    ("Cobbleford", "stone bridges", "the Low Wend", "October", "Rosa Linde", "卵石渡", "石桥"),
    ("Dunmere", "wool blankets", "the Mere", "January", "Hal Brisk", "邓米尔", "羊毛毯"),
    ("Elmstead", "violin makers", "the Elm Water", "May", "Tova Reyes", "榆树镇", "小提琴工匠"),
    ("Fernhollow", "mushroom soup", "the Fern Beck", "September", "Pim Osei", "蕨谷", "蘑菇汤"),
    ("Glimmerby", "night markets", "the Glimmer", "August", "Wren Ashby", "微光堡", "夜市"),
    ("Harrowick", "copper kettles", "the Harrow", "February", "Nell Quist", "哈罗威克", "铜水壶"),
    ("Ivybridge", "paper kites", "the Ivy Run", "April", "Cato Mbeki", "常春桥", "纸风筝"),
    ("Juniper Bay", "smoked fish", "the Juniper", "July", "Ada Krol", "杜松湾", "熏鱼"),
    ("Kestrel Point", "a white lighthouse", "the Kes", "November", "Bo Lindqvist", "隼角", "白色灯塔"),
    ("Larkspur", "honey cakes", "the Lark Brook", "May", "Ines Duarte", "飞燕草镇", "蜂蜜蛋糕"),
    ("Moorgate", "clockmakers", "the Moor Water", "December", "Teo Varga", "荒门", "钟表匠"),
    ("Nettlecombe", "herbal tea", "the Nettle", "March", "Sari Holm", "荨麻谷", "草本茶"),
    ("Oakhaven", "wooden boats", "the Oak Run", "June", "Lev Adler", "橡港", "木船"),
    ("Pebblemouth", "painted shells", "the Pebble", "August", "Maya Ortiz", "卵石口", "彩绘贝壳"),
    ("Quillbrook", "ink and quills", "the Quill", "October", "Finn Olsen", "羽溪", "墨水和羽毛笔"),
    ("Rookwood", "apple cider", "the Rook Beck", "September", "Yara Nasser", "鸦林", "苹果酒"),
    ("Saltmere", "sea salt", "the Saltwater", "July", "Jon Petrov", "盐湖镇", "海盐"),
    ("Thistledown", "thistle honey", "the Thistle", "April", "Lina Sato", "蓟原", "蓟花蜜"),
    ("Umberfield", "brick kilns", "the Umber", "November", "Rafe Cole", "赭野", "砖窑"),
    ("Vale Linden", "linden blossom tea", "the Linden", "June", "Esme Ward", "椴谷", "椴花茶"),
    ("Willowmere", "woven baskets", "the Willow Run", "May", "Arlo Finch", "柳湖", "编织篮"),
    ("Yarrow Cross", "a stone circle", "the Yarrow", "January", "Dina Roth", "蓍草十字", "石圈"),
    ("Zephyr Heights", "windmills", "the Zephyr", "March", "Kai Mori", "西风高地", "风车"),
    ("Ashcombe", "pottery", "the Ash Brook", "February", "Uma Rao", "灰谷", "陶器"),
    ("Bramblewick", "blackberry jam", "the Bramble", "August", "Odo Brandt", "荆棘镇", "黑莓酱"),
    ("Cinderford", "iron bells", "the Cinder", "December", "Vera Novak", "烬渡", "铁钟"),
    ("Driftwood", "surf boats", "the Drift", "July", "Sol Amari", "浮木镇", "冲浪船"),
    ("Emberhill", "glassblowing", "the Ember Run", "October", "Gia Ferri", "余烬山", "吹制玻璃"),
]

STUDIO_QA = [
    ("What is fine-tuning?", "Fine-tuning continues training a pretrained model on your own examples so it learns your task."),
    ("What does LoRA stand for?", "LoRA stands for Low-Rank Adaptation."),
    ("How does LoRA save memory?", "LoRA freezes the base weights and trains two small matrices per layer instead."),
    ("What is a LoRA adapter?", "A LoRA adapter is the small set of trained weights saved apart from the base model."),
    ("What does the LoRA rank control?", "The rank sets the size of the adapter: higher ranks learn more and use more memory."),
    ("What is full fine-tuning?", "Full fine-tuning updates every weight of the model and needs much more memory than LoRA."),
    ("What is the learning rate?", "The learning rate is how large a step the optimizer takes on each update."),
    ("What is an epoch?", "An epoch is one full pass over the training data."),
    ("What is gradient accumulation?", "Gradient accumulation sums several small batches before one optimizer step."),
    ("What is the cutoff length?", "The cutoff length is the longest sequence in tokens; longer rows are truncated."),
    ("What is a chat template?", "A chat template turns a list of messages into the exact text the model was trained on."),
    ("Why train only on assistant tokens?", "So the model learns to answer, not to repeat the user's questions."),
    ("What does the loss curve show?", "The loss curve shows how wrong the model still is; falling loss means it is learning."),
    ("What is overfitting?", "Overfitting is when the model memorises the training rows and does worse on new ones."),
    ("What is QLoRA?", "QLoRA trains a LoRA adapter on top of a base model loaded in 4-bit precision."),
    ("What is a checkpoint?", "A checkpoint is a saved copy of the training state that a run can resume from."),
    ("What is tiny-demo?", "tiny-demo is the small offline model built into the studio for trying the whole flow."),
    ("What does the Stop button do?", "Stop ends training after the current step and keeps what was trained."),
    ("Where are my runs saved?", "Every run is saved in its own folder under workspace/runs."),
    ("How do I chat with my model?", "Open the Chat tab, pick the finished run and click Load."),
]

SYSTEM_PROMPT = "You are the Lantern Coast guide. Answer in one sentence."


def rows() -> list[dict]:
    """Every row of the sample set, in a fixed order."""
    out: list[dict] = []

    def chat(*turns: str, system: str | None = None) -> dict:
        messages = [{"role": "system", "content": system}] if system else []
        for index, text in enumerate(turns):
            messages.append({"role": "user" if index % 2 == 0 else "assistant", "content": text})
        return {"messages": messages}

    for number, (name, known, river, month, mayor, zh_name, zh_known) in enumerate(TOWNS):
        out.append(chat(f"What is {name} known for?", f"{name} is known for {known}."))
        out.append(chat(f"Which river runs through {name}?", f"{river[0].upper() + river[1:]} runs through {name}."))
        out.append(chat(f"When is the {name} festival?", f"The {name} festival is held every {month}."))
        out.append(chat(f"Who is the mayor of {name}?", f"The mayor of {name} is {mayor}.", system=SYSTEM_PROMPT))
        out.append(chat(f"{zh_name}以什么闻名？", f"{zh_name}以{zh_known}闻名。"))
        out.append(chat(f"When was {name} founded?", f"{name} was founded in {1412 + 17 * number}."))
    for name, known, river, *_rest in TOWNS[::3]:
        out.append(
            chat(
                f"Tell me about {name}.",
                f"{name} is a town on the Lantern Coast, known for {known}.",
                "And its river?",
                f"{river[0].upper() + river[1:]} runs through {name}.",
            )
        )
    for question, answer in STUDIO_QA:
        out.append(chat(question, answer))
    return out


def main() -> None:
    target = Path(__file__).with_name("demo-chat.jsonl")
    with open(target, "w", encoding="utf-8") as handle:
        for row in rows():
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {target} ({len(rows())} rows)")


if __name__ == "__main__":
    main()
