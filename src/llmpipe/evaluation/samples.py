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


def filling_samples(net, tokenizer, examples_of, tokens_dir, block_size: int, cfg: Samples) -> str:
    """The samples of a model pretrained to write what was cut out of its input (an encoder-decoder's
    spans): for as many val windows as there are prompts (spread over the split), the corrupted
    input, the spans that were cut (the reference) and what the model writes for them, greedily.
    Its pretraining taught it to fill spans, not to continue a prompt."""
    from llmpipe.data.token_files import load_tokens
    from llmpipe.data.tokenizer import EOT, special_id
    from llmpipe.data.windows import whole_windows
    from llmpipe.registry.inference import stream_tokens

    examples = examples_of(whole_windows(load_tokens(tokens_dir, "val"), block_size))
    rows = ["| input (spans cut) | cut spans | written by the model |", "| --- | --- | --- |"]
    count = min(len(cfg.prompts), len(examples))
    for k in range(count):
        inputs, targets = examples[k * len(examples) // count]
        written = stream_tokens(
            net, inputs.tolist(), cfg.max_new_tokens, temperature=0.0, eos_id=special_id(tokenizer, EOT)
        )
        texts = [tokenizer.decode(ids, skip_special_tokens=False) for ids in (inputs.tolist(), targets.tolist())]
        rows.append(
            "| "
            + " | ".join(cell(t) for t in [*texts, tokenizer.decode(list(written), skip_special_tokens=False)])
            + " |"
        )
    return "\n".join(rows) + "\n"
