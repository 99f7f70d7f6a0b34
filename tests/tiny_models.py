"""Tiny random-weight reward models built locally, so tests need no hub download.

`build_tiny_rm(dir)` trains a small byte-level BPE tokenizer on generated math text and
saves it next to a random-weight `Qwen2ForSequenceClassification` or
`LlamaForSequenceClassification` (2 layers, hidden 64, num_labels=1). Same seed, same files.
"""

from __future__ import annotations

import random
from pathlib import Path

SPECIALS = ["<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>"]
# Starts with BOS itself, so the backend must not add another one.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' }}{{ message['content'] }}{{ eos_token }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def math_lines(n: int = 400, seed: int = 0) -> list[str]:
    """Generated math-flavoured text: problems, steps and boxed answers."""
    rng = random.Random(seed)
    ops = ["+", "-", "*", "/"]
    words = [
        "Compute",
        "Find",
        "Solve",
        "Simplify",
        "Evaluate",
        "the",
        "value",
        "of",
        "x",
        "so",
        "then",
        "Therefore",
        "answer",
        "is",
        "We",
        "have",
        "equation",
        "sum",
        "product",
        "integer",
        "fraction",
        "step",
        "First",
        "Next",
        "Finally",
    ]
    lines = []
    for _ in range(n):
        a, b = rng.randint(0, 999), rng.randint(1, 99)
        op = rng.choice(ops)
        text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))
        lines.append(f"{text} {a} {op} {b} = ? Step: x = {a}{op}{b}. \\boxed{{{a % b}}}")
    return lines


def _tokenizer(seed: int, chat_template: bool, vocab_size: int) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(math_lines(400, seed), trainer=trainer)
    bos = tok.token_to_id("<s>")
    # The tokenizer's own special tokens: BOS in front (used by the plain-text path).
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=["<|user|>", "<|assistant|>"],
        chat_template=CHAT_TEMPLATE if chat_template else None,
        model_max_length=512,
    )


def build_tiny_rm(
    dir: str | Path,
    arch: str = "qwen2",
    seed: int = 0,
    chat_template: bool = True,
    vocab_size: int = 600,
) -> str:
    """Build and save a tiny tokenizer + random-weight seq-cls RM into `dir`; return the path."""
    import torch
    from transformers import (
        LlamaConfig,
        LlamaForSequenceClassification,
        Qwen2Config,
        Qwen2ForSequenceClassification,
    )

    out = Path(dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer(seed, chat_template, vocab_size)
    common = {
        "vocab_size": len(tok),  # type: ignore[arg-type]
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "pad_token_id": tok.pad_token_id,  # type: ignore[attr-defined]
        "bos_token_id": tok.bos_token_id,  # type: ignore[attr-defined]
        "eos_token_id": tok.eos_token_id,  # type: ignore[attr-defined]
        "num_labels": 1,
        "tie_word_embeddings": False,
        "initializer_range": 0.2,  # larger than usual so scores differ visibly
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch == "qwen2":
            model = Qwen2ForSequenceClassification(Qwen2Config(**common))
        elif arch == "llama":
            model = LlamaForSequenceClassification(LlamaConfig(**common))
        else:
            raise ValueError(f"unknown arch {arch!r} (qwen2 or llama)")
    model.eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)  # type: ignore[attr-defined]
    return str(out)


_CACHE: dict[tuple[str, str, int, bool], str] = {}


def cached_tiny_rm(
    base: str | Path, arch: str = "qwen2", seed: int = 0, chat_template: bool = True
) -> str:
    """Build once per (base dir, arch, seed, template) in this process; for session fixtures."""
    key = (str(base), arch, seed, chat_template)
    if key not in _CACHE:
        name = f"{arch}-s{seed}-{'chat' if chat_template else 'plain'}"
        _CACHE[key] = build_tiny_rm(Path(base) / name, arch, seed, chat_template)
    return _CACHE[key]


JUDGE_WORDS = ["True", "False", "Alice", "Bob"]


def build_tiny_judge(dir: str | Path, seed: int = 0) -> str:
    """A hand-wired tiny generative judge (Qwen2ForCausalLM, 1 layer, hidden 64): its first
    generated token is "True" when the prompt holds more "Alice" than "Bob" tokens, "False"
    when fewer. How: zero queries and keys make attention a uniform mean over the prompt;
    the value/output projections carry one feature (+1 for Alice, -1 for Bob, 0 for every
    other token) into the residual stream; the MLP writes nothing; the LM head maps that
    feature to +-1000 on True / False and 0 on every other token."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = Path(dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer(seed, True, 600)
    tok.add_tokens(JUDGE_WORDS)  # type: ignore[attr-defined]
    ids = {w: tok.convert_tokens_to_ids(w) for w in JUDGE_WORDS}  # type: ignore[attr-defined]
    cfg = Qwen2Config(
        vocab_size=len(tok),  # type: ignore[arg-type]
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=2,  # head_dim 32: vLLM's CPU attention has no kernel for 16
        num_key_value_heads=1,
        max_position_embeddings=2048,
        pad_token_id=tok.pad_token_id,  # type: ignore[attr-defined]
        bos_token_id=tok.bos_token_id,  # type: ignore[attr-defined]
        eos_token_id=tok.eos_token_id,  # type: ignore[attr-defined]
        tie_word_embeddings=False,
        initializer_range=0.2,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb[:, 0] = 0.0
        emb[ids["Alice"]] = 0.0
        emb[ids["Alice"], 0] = 1.0
        emb[ids["Bob"]] = 0.0
        emb[ids["Bob"], 0] = -1.0
        for layer in model.model.layers:
            att = layer.self_attn
            for lin in (att.q_proj, att.k_proj, att.v_proj):
                lin.weight.zero_()
                lin.bias.zero_()
            att.v_proj.weight[0, 0] = 1.0
            att.o_proj.weight.zero_()
            att.o_proj.weight[0, 0] = 1.0
            layer.mlp.down_proj.weight.zero_()
        head = model.lm_head.weight
        head.zero_()
        head[ids["True"], 0] = 1000.0
        head[ids["False"], 0] = -1000.0
    model.eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)  # type: ignore[attr-defined]
    return str(out)
