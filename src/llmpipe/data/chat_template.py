"""The prompt template of instruction-style fine-tuning: how a prompt -> response pair becomes text,
e.g. "<|user|>{prompt}<|assistant|>" + response + "<|endoftext|>". Its markers are special tokens
of the tokenizer (tokenizer.SPECIAL_TOKENS), so each is one token at training and at generation."""

import re
from dataclasses import dataclass


@dataclass
class Template:
    """How a pair becomes text: `prompt` holds `{prompt}`; the response follows it, then `end`."""

    prompt: str
    end: str  # finetune.<task>.template.end (conf/finetune says its default)

    def __post_init__(self):
        if self.prompt.count("{prompt}") != 1:
            raise ValueError(f"finetune.sft.template.prompt={self.prompt!r} must hold {{prompt}} once")

    def markers(self) -> list[str]:
        """The special tokens the template uses."""
        return re.findall(r"<\|[a-z_]+\|>", self.prompt + self.end)

    def check(self, tokenizer):
        missing = [m for m in self.markers() if tokenizer.token_to_id(m) is None]
        if missing:
            raise ValueError(
                f"finetune.sft.template uses {missing}, which are not special tokens of the tokenizer "
                f"(it has {sorted(t for t in tokenizer.get_vocab() if t.startswith('<|'))})"
            )

    def render_prompt(self, prompt: str) -> str:
        return self.prompt.replace("{prompt}", prompt)


def model_prompt(config: dict, prompt: str) -> str:
    """What a model is given for a user's prompt: wrapped in the template it was fine-tuned with, if
    any (`template` in its llmpipe.json), so `llmpipe generate` and the registered pyfunc ask an SFT
    model the way it was trained."""
    return Template(**config["template"]).render_prompt(prompt) if "template" in config else prompt
