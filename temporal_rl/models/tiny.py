"""Tiny vision-language models built offline, one per model family: random weights, a locally trained tokenizer,
the real processor and model classes.

`python -m temporal_rl.models.tiny --family {qwen2_5_vl,qwen3_vl,qwen3_5} --out DIR` writes a Hugging Face
directory (config, safetensors weights, tokenizer with Qwen's special tokens and a chat template in the family's
shape, image and video processor) that `AutoProcessor.from_pretrained(DIR)` and
`AutoModelForImageTextToText.from_pretrained(DIR)` load exactly as they load a real checkpoint of the family. Same
spec (family and seed included), same bytes.

| family       | model class (processor)                                  | kept of the real family                 |
|--------------|----------------------------------------------------------|-----------------------------------------|
| `qwen2_5_vl` | `Qwen2_5_VLForConditionalGeneration` (`Qwen2_5_VLProcessor`) | M-RoPE with `second_per_grid_ts`    |
| `qwen3_vl`   | `Qwen3VLForConditionalGeneration` (`Qwen3VLProcessor`)   | timestamps in text, 2 deepstack layers  |
| `qwen3_5`    | `Qwen3_5ForConditionalGeneration` (`Qwen3VLProcessor`)   | a Gated DeltaNet and a gated attention  |

This module owns the tiny models' shape, their tokenizer and their processor settings; the real architectures live
in `temporal_rl.models.qwen`, what the toolkit does differently per family in `temporal_rl.families`.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Qwen2.5-VL's chat template: a default system turn, "<|vision_start|><|video_pad|><|vision_end|>" for each
# video block (one placeholder the processor expands to the video's token count), generation prompt last.
# Like Qwen's own, a content block counts as a video if it has a 'video' key at all, so blocks must not carry
# None-valued keys (datasets/Arrow adds them). The Qwen3 families' template below is the same but for the system turn.
_CHAT_TURNS = (
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_CHAT_OPENING = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
)
QWEN2_5_VL_CHAT_TEMPLATE = (
    _CHAT_OPENING
    + "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}" + _CHAT_TURNS
)


# The Qwen3-VL / Qwen3.5 chat templates' shape: no default system turn, the same vision placeholders. (The real Qwen3.5
# template also opens a <think> block after the generation prompt unless enable_thinking is false.)
QWEN3_VL_CHAT_TEMPLATE = _CHAT_OPENING + _CHAT_TURNS


@dataclass(frozen=True)
class TinyFamily:
    """What the tiny model of one family keeps of the real one (the parts the spec does not set).

    Attributes:
        patch_size: the ViT's patch side (x spatial merge 2 = the family's frame-side factor).
        chat_template: the chat template's shape.
        mrope_section: the default M-RoPE split of the rotary half-dimension (t, h, w).
        rotary_fraction: the share of each head's dimension that is rotated (Qwen3.5: partial rotary).
        timestamps_in_text: the processor writes `<t seconds>` into prompts (the tokenizer learns them).
        text: extra text-config values; vision: extra vision-config values.
    """

    patch_size: int
    chat_template: str
    mrope_section: tuple[int, int, int]
    rotary_fraction: float = 1.0
    timestamps_in_text: bool = False
    text: dict = field(default_factory=dict)
    vision: dict = field(default_factory=dict)


TINY_FAMILIES: dict[str, TinyFamily] = {
    "qwen2_5_vl": TinyFamily(14, QWEN2_5_VL_CHAT_TEMPLATE, (2, 3, 3)),
    "qwen3_vl": TinyFamily(
        16,
        QWEN3_VL_CHAT_TEMPLATE,
        (4, 2, 2),
        timestamps_in_text=True,
        text={"rope_theta": 5_000_000.0, "mrope_interleaved": True},
        vision={"num_position_embeddings": 64, "deepstack_visual_indexes": [0, 1]},
    ),
    "qwen3_5": TinyFamily(
        16,
        QWEN3_VL_CHAT_TEMPLATE,
        (2, 1, 1),
        rotary_fraction=0.5,
        timestamps_in_text=True,
        text={
            "rope_theta": 10_000_000.0,
            "mrope_interleaved": True,
            "layer_types": ["linear_attention", "full_attention"],
            "linear_conv_kernel_dim": 4,
            "linear_key_head_dim": 16,
            "linear_value_head_dim": 16,
            "linear_num_key_heads": 2,
            "linear_num_value_heads": 4,
        },
        vision={"num_position_embeddings": 64},
    ),
}


@dataclass(frozen=True)
class TinySpec:
    """Shape of the tiny model and its processor.

    The defaults train in minutes on a 2-core CPU (see ../shared/design/tiny-model-learnability.md).
    `image_mean`/`image_std` map the synthetic benchmark's dark backgrounds (channel values 15-70, mean 42.5/255)
    near 0: with CLIP's statistics every visual token of such a clip came out almost the same. Measured on the
    untrained model, this mean gives visual tokens 1.3x the spread across tokens that a mean of 0.1 gives.
    """

    seed: int = 0
    family: str = "qwen2_5_vl"
    vocab_size: int = 640
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    mrope_section: tuple[int, int, int] | None = None  # the family's; sums to the rotated half-dimension
    max_position_embeddings: int = 8192
    vision_depth: int = 2
    vision_hidden_size: int = 32
    vision_intermediate_size: int = 64
    vision_num_heads: int = 2
    min_pixels: int = 28 * 28
    max_pixels: int = 224 * 224
    image_mean: tuple[float, float, float] = (0.167, 0.167, 0.167)
    image_std: tuple[float, float, float] = (0.25, 0.25, 0.25)

    def __post_init__(self):
        if self.family not in TINY_FAMILIES:
            raise ValueError(f"unknown family {self.family!r}; tiny models exist for {', '.join(TINY_FAMILIES)}")
        tiny = TINY_FAMILIES[self.family]
        head_dim = self.hidden_size // self.num_attention_heads
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        rotated = int(head_dim * tiny.rotary_fraction) // 2
        if self.mrope_section is None:  # the family's split, scaled to a wider head (e.g. hidden 128: (4, 6, 6))
            factor, remainder = divmod(rotated, sum(tiny.mrope_section))
            if remainder or not factor:
                raise ValueError(
                    f"the family's mrope_section {tiny.mrope_section} does not scale to the rotated half-dimension "
                    f"{rotated} of this head; give mrope_section (t, h, w) summing to {rotated}"
                )
            object.__setattr__(self, "mrope_section", tuple(factor * part for part in tiny.mrope_section))
        object.__setattr__(self, "mrope_section", tuple(self.mrope_section))
        if sum(self.mrope_section) != rotated:
            raise ValueError(f"mrope_section must sum to the rotated half-dimension {rotated}: {self.mrope_section}")
        if self.vocab_size <= 256 + len(QWEN_SPECIAL_TOKENS):
            raise ValueError(f"vocab_size must exceed the 256 byte tokens plus {len(QWEN_SPECIAL_TOKENS)} specials")


_SHAPES = ("circle", "square", "triangle", "star", "ring", "cross", "shape", "object", "digit")
_COLOURS = ("red", "green", "blue", "yellow", "white", "magenta", "cyan", "orange", "colour", "color")
_SENTENCES = (
    "When is the {c} {s} visible? At what time does the {c} {s} appear on screen?",
    "Find the moment when a {c} {s} is shown. During which interval can you see the {c} {s}?",
    "What colour did the {s} turn? Which shape appeared briefly? The {c} {s} grows.",
    "How many times did the screen flash? Which direction did the {s} move? left right up down",
    "A digit was briefly shown. Which digit was it? What colour was the star that appeared?",
    "Give the start and end time in seconds. Answer with the option's letter from the given choices directly.",
    "You FIRST think about the reasoning process as an internal monologue and then provide the final answer.",
    "The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST BE put in "
    "<answer> </answer> tags. Output the final answer in JSON format. You are a helpful assistant.",
    "Question: Options: (A) {c} (B) {s} (C) {c} (D) {s} Best option: <answer>{L}</answer>",
    '<answer>{{"start_time": "{t0}", "end_time": "{t1}"}}</answer> <time>{t0} - {t1}</time> from {t0} to {t1}',
    "The video shows frames with index numbers. Select the frames <index>{t0}, {t1}</index> seconds",
)


def tokenizer_corpus(timestamps: bool = False) -> list[str]:
    """Deterministic training text for the tiny tokenizer: the task vocabulary, the project's own prompts (so
    they cost few tokens), the chat template's words and the answer formats; with `timestamps`, the `<t seconds>`
    texts the Qwen3-VL processor writes before each temporal patch."""
    from temporal_rl.prompts import SPAN_FORMATS, THINK_SYSTEM_PROMPT, task_text

    lines = ["<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|im_start|>assistant\n"]
    numbers = [f"{t / 2:.1f}" for t in range(0, 121)] + ["12.25", "3.75", "00:15", "1:02:03"]
    for (s, c), letter, (t0, t1) in zip(
        itertools.product(_SHAPES, _COLOURS), itertools.cycle("ABCDE"), itertools.pairwise(itertools.cycle(numbers))
    ):
        lines.extend(sentence.format(s=s, c=c, L=letter, t0=t0, t1=t1) for sentence in _SENTENCES)
        for span_format in SPAN_FORMATS:
            for task in ("grounding", "mcq", "grounded_qa"):
                record = {"task": task, "question": f"When is the {c} {s} visible?", "options": [c, s, "red", "ring"]}
                lines.append(task_text(record, span_format))
        lines.append(lines[0] + THINK_SYSTEM_PROMPT)
    if timestamps:
        lines.extend("".join(f"<{t / 2:.1f} seconds><|vision_start|>" for t in range(k, 121, 7)) for k in range(7))
    return lines


def build_tokenizer(spec: TinySpec):
    """Train a byte-level BPE with the family's normaliser and pre-tokeniser and wrap it as its tokenizer class
    (`Qwen2Tokenizer`; Qwen3.5's `Qwen3_5Tokenizer`, with its own pre-tokenising rule).

    Digits stay single tokens, as in Qwen2 and Qwen3.5 ("3.5" -> "3", ".", "5").
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if spec.family == "qwen3_5":
        from transformers.models.qwen3_5.tokenization_qwen3_5 import PRETOKENIZE_REGEX
        from transformers.models.qwen3_5.tokenization_qwen3_5 import Qwen3_5Tokenizer as tokenizer_class
    else:
        from transformers import Qwen2Tokenizer as tokenizer_class
        from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX
    tiny = TINY_FAMILIES[spec.family]

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size - len(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(tokenizer_corpus(tiny.timestamps_in_text), trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    tokenizer = tokenizer_class(
        vocab=state["vocab"],
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(QWEN_SPECIAL_TOKENS[1:]),
        extra_special_tokens={
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_bos_token": "<|vision_start|>",
            "vision_eos_token": "<|vision_end|>",
        },
        model_max_length=spec.max_position_embeddings,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL_TOKENS)})
    tokenizer.chat_template = tiny.chat_template
    return tokenizer


def build_processor(spec: TinySpec, tokenizer):
    """The family's real processor classes with the tiny spec's pixel range and normalisation."""
    from transformers import Qwen2VLImageProcessor

    tiny = TINY_FAMILIES[spec.family]
    common = dict(
        image_mean=list(spec.image_mean),
        image_std=list(spec.image_std),
        patch_size=tiny.patch_size,
        temporal_patch_size=2,
        merge_size=2,
    )
    image_processor = Qwen2VLImageProcessor(**common, min_pixels=spec.min_pixels, max_pixels=spec.max_pixels)
    # Frames arrive already sampled and sized by temporal_rl.video (Qwen's budget, qwen-vl-utils' rules).
    if spec.family == "qwen2_5_vl":
        from transformers import Qwen2_5_VLProcessor, Qwen2VLVideoProcessor

        video_processor = Qwen2VLVideoProcessor(
            **common, min_pixels=spec.min_pixels, max_pixels=spec.max_pixels, cap_pixels_per_frame=True
        )
        processor_class = Qwen2_5_VLProcessor
    else:
        from transformers import Qwen3VLProcessor, Qwen3VLVideoProcessor

        size = {"shortest_edge": spec.min_pixels, "longest_edge": spec.max_pixels}
        video_processor = Qwen3VLVideoProcessor(**common, size=size, cap_pixels_per_frame=True)
        processor_class = Qwen3VLProcessor
    return processor_class(
        image_processor=image_processor,
        video_processor=video_processor,
        tokenizer=tokenizer,
        chat_template=tiny.chat_template,
    )


def build_config(spec: TinySpec, tokenizer):
    """The family's model config with the tiny spec's shape."""
    import transformers

    tiny = TINY_FAMILIES[spec.family]
    token_id = tokenizer.convert_tokens_to_ids
    head_dim = spec.hidden_size // spec.num_attention_heads
    rope = {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": list(spec.mrope_section)}
    text_extra = dict(tiny.text)
    rope["rope_theta"] = text_extra.pop("rope_theta", rope["rope_theta"])
    if "mrope_interleaved" in text_extra:
        rope["mrope_interleaved"] = text_extra.pop("mrope_interleaved")
    if tiny.rotary_fraction != 1.0:
        rope["partial_rotary_factor"] = tiny.rotary_fraction
    text_config = dict(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        head_dim=head_dim,
        max_position_embeddings=spec.max_position_embeddings,
        rms_norm_eps=1e-6,
        rope_parameters=rope,
        bos_token_id=token_id("<|endoftext|>"),
        eos_token_id=token_id("<|im_end|>"),
        pad_token_id=token_id("<|endoftext|>"),
        tie_word_embeddings=True,
        **text_extra,
    )
    vision_config = dict(
        depth=spec.vision_depth,
        hidden_size=spec.vision_hidden_size,
        intermediate_size=spec.vision_intermediate_size,
        num_heads=spec.vision_num_heads,
        out_hidden_size=spec.hidden_size,
        patch_size=tiny.patch_size,
        spatial_merge_size=2,
        temporal_patch_size=2,
        **tiny.vision,
    )
    if spec.family == "qwen2_5_vl":
        vision_config.update(tokens_per_second=2, window_size=112, fullatt_block_indexes=[spec.vision_depth - 1])
    config_class = {"qwen2_5_vl": "Qwen2_5_VLConfig", "qwen3_vl": "Qwen3VLConfig", "qwen3_5": "Qwen3_5Config"}
    return getattr(transformers, config_class[spec.family])(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
        tie_word_embeddings=True,
    )


def build_tiny_model(out_dir: str | Path, spec: TinySpec | None = None) -> Path:
    """Write the tiny model directory and return its path. Deterministic: same spec, same bytes."""
    import torch
    from transformers import AutoModelForImageTextToText, GenerationConfig

    spec = spec or TinySpec()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(spec)
    config = build_config(spec, tokenizer)
    torch.manual_seed(spec.seed)
    model = AutoModelForImageTextToText.from_config(config).to(torch.float32).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=config.text_config.eos_token_id,
        pad_token_id=config.text_config.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(out_dir)
    build_processor(spec, tokenizer).save_pretrained(out_dir)
    (out_dir / "tiny_spec.json").write_text(json.dumps(asdict(spec), indent=2) + "\n")
    return out_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default=TinySpec.family, choices=list(TINY_FAMILIES), help="model family")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=TinySpec.seed, help="weight initialisation seed")
    parser.add_argument("--hidden-size", type=int, default=TinySpec.hidden_size)
    parser.add_argument("--layers", type=int, default=TinySpec.num_hidden_layers)
    parser.add_argument("--heads", type=int, default=TinySpec.num_attention_heads, help="attention heads (2 kv heads)")
    args = parser.parse_args(argv)
    spec = TinySpec(
        seed=args.seed,
        family=args.family,
        hidden_size=args.hidden_size,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
    )
    path = build_tiny_model(args.out, spec)
    print(f"wrote a tiny {args.family} model to {path}")  # noqa: T201


if __name__ == "__main__":
    main()
