import json

import pytest
import torch

from llmpipe.data.chat_template import Template, model_prompt
from llmpipe.data.tokenizer import ASSISTANT, EOT, USER, special_id, train_bpe
from llmpipe.families import classifier, language_model, model_config
from llmpipe.networks import lora
from llmpipe.registry.export import load_model_dir, save_model_dir
from llmpipe.training.sft import IGNORE, Pair, SupervisedSequences, corpus_pairs, read_pairs

from ..conftest import typed_section

LORA = typed_section("finetune.topics.lora", r=4, alpha=8, dropout=0.0)

TEMPLATE = Template(prompt=f"{USER}{{prompt}}{ASSISTANT}", end=EOT)
POEM = {"id": "tang300:00001", "label": "tang300", "lang": "zh",
        "text": "《静夜思》\n作者：李白\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"}  # fmt: skip
FORTUNE = {"id": "fortunes:00007", "label": "fortunes", "lang": "en",
           "text": "A journey of a thousand miles begins with a single step. Then the blisters start."}  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer():
    texts = [POEM["text"], FORTUNE["text"], "The quick brown fox jumps over the lazy dog."] * 20
    return train_bpe(texts, vocab_size=400, min_frequency=2)


def test_pairs_from_poems_and_fortunes_keep_real_references():
    poem, fortune = corpus_pairs([POEM, FORTUNE], ["poems", "fortunes"])
    assert (
        poem.prompt == "《静夜思》\n作者：李白\n床前明月光，疑是地上霜。"
        and poem.response == "举头望明月，低头思故乡。"
    )
    assert fortune.prompt == "A journey of a thousand miles begins with a single step."
    assert fortune.response == "Then the blisters start."
    assert [p.source for p in corpus_pairs([POEM, FORTUNE], ["poems"])] == ["tang300:00001"]


def test_prompt_tokens_carry_no_loss_and_the_response_and_end_marker_do(tokenizer):
    pair = Pair("床前明月光，", "疑是地上霜。", "x")
    [(x, y)] = SupervisedSequences([pair], TEMPLATE, tokenizer, max_tokens=64).examples
    prompt_ids = tokenizer.encode(TEMPLATE.render_prompt(pair.prompt)).ids
    response_ids = tokenizer.encode(pair.response + EOT).ids
    assert x.tolist() == (prompt_ids + response_ids)[:-1]
    assert y.tolist() == [IGNORE] * (len(prompt_ids) - 1) + response_ids  # the first response token is a target
    assert prompt_ids[0] == special_id(tokenizer, USER) and prompt_ids[-1] == special_id(tokenizer, ASSISTANT)
    assert response_ids[-1] == special_id(tokenizer, EOT)


def test_long_pairs_are_cut_and_a_prompt_without_room_is_dropped(tokenizer):
    data = SupervisedSequences(
        [Pair("a " * 200, "b", "long prompt"), Pair("a", "b " * 200, "long reply")], TEMPLATE, tokenizer, 32
    )
    assert data.dropped == 1 and len(data) == 1 and len(data[0][0]) == 32


def test_a_template_marker_the_tokenizer_lacks_is_named(tokenizer):
    with pytest.raises(ValueError, match=r"\['<\|system\|>'\], which are not special tokens"):
        SupervisedSequences([Pair("a", "b", "x")], Template("<|system|>{prompt}", EOT), tokenizer, 16)
    with pytest.raises(ValueError, match="must hold"):
        Template("no placeholder", EOT)


def test_a_users_pairs_file_and_its_errors(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "Q?", "response": "A."}) + "\n\n" + json.dumps({"prompt": "Q2"}) + "\n")
    with pytest.raises(ValueError, match=r"pairs.jsonl:3: needs string fields"):
        read_pairs(path)
    path.write_text(json.dumps({"prompt": "Q?", "response": "A."}) + "\n")
    assert read_pairs(path) == [Pair("Q?", "A.", f"{path}:1")]
    with pytest.raises(ValueError, match="is not a file"):
        read_pairs(tmp_path / "missing.jsonl")


def test_generation_asks_an_sft_model_through_its_template():
    config = {"template": {"prompt": f"{USER}{{prompt}}{ASSISTANT}", "end": EOT}}
    assert model_prompt(config, "Hi") == f"{USER}Hi{ASSISTANT}" and model_prompt({}, "Hi") == "Hi"


def small(vocab: int):
    spec = {"arch": "transformer", "block_size": 32, "n_layer": 2, "n_head": 2, "n_kv_head": 2, "d_model": 32,
            "tie_embeddings": True, "dropout": 0.0}  # fmt: skip
    return model_config(spec, vocab)


@pytest.mark.parametrize("kind", ["lm", "classifier"])
def test_the_lora_export_is_a_plain_model_with_the_adapted_outputs(tmp_path, tokenizer, kind):
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    cfg = small(tokenizer.get_vocab_size())
    torch.manual_seed(0)
    net = language_model(cfg) if kind == "lm" else classifier(cfg, 3)
    adapted = lora.apply_lora(net, LORA, adaptable=True, task="t")
    trainable = {n for n, p in adapted.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "score" in n for n in trainable)  # the backbone is frozen
    with torch.no_grad():
        for name, p in adapted.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # as if trained: B starts at zero
    x = torch.randint(0, cfg.vocab_size, (2, 12))
    args = (x,) if kind == "lm" else (x, torch.tensor([12, 7]))
    expected = adapted(*args).detach()
    extra = {} if kind == "lm" else {"labels": ["a", "b", "c"], "max_tokens": 32, "lang": "en"}
    save_model_dir(tmp_path / "out", lora.merged(adapted), cfg, tmp_path / "tokenizer.json", {}, extra)
    loaded, _, _ = load_model_dir(tmp_path / "out")
    assert not any("lora" in name for name, _ in loaded.named_parameters())
    assert torch.allclose(loaded(*args), expected, atol=1e-5)


def test_lora_refuses_recurrent_models_by_name():
    with pytest.raises(ValueError, match="finetune.topics.lora.enabled: LoRA adapts linear projections"):
        lora.apply_lora(torch.nn.LSTM(4, 4), LORA, adaptable=False, task="topics")
