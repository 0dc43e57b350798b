"""Samples from the pretrained model: its continuations of a few fixed prompts, as a Markdown table
(reports/samples.md), so a reader sees what the numbers mean."""

from llmpipe.evaluation.report_card import cell
from llmpipe.registry.inference import generate_text
from llmpipe.schema import Samples


def samples_markdown(net, tokenizer, cfg: Samples, seed: int) -> str:
    rows = ["| prompt | continuation |", "| --- | --- |"]
    for i, prompt in enumerate(cfg.prompts):
        text = generate_text(
            net,
            tokenizer,
            prompt,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            seed=seed + i,
        )
        rows.append(f"| {cell(prompt)} | {cell(text)} |")
    return "\n".join(rows) + "\n"
