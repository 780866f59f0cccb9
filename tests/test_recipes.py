"""The shipped recipes and launch configs, and what a real launch of the recipe script does.

1. Every YAML under `recipes/` (accelerate configs aside) parses with `TrlParser` against its dataclasses, with the
   values that matter (the paper's settings, LoRA on the language model only — applied to the real 3B and 7B
   architectures on the meta device — rewards that resolve, one weight per reward); every accelerate config is
   one `accelerate launch` accepts and routes the way its comment says.
2. Invalid combinations fail while the arguments are parsed, with a message that says how to fix them.
3. `accelerate launch` with `cpu_2proc.yaml` runs `recipes/grpo.py` as two gloo processes on the CPU, to the end.
4. A LoRA GRPO run killed (SIGKILL) right after a checkpoint resumes from it to the end.

The real-size recipes set `bf16: true`, which TrainingArguments rejects on a machine without a bf16-capable GPU,
so they are parsed here with `--bf16 false --use_cpu true` on the command line (the raw YAML is checked for
`bf16: true` separately).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from trl import TrlParser

from data_tools.synth import generate_dataset
from temporal_rl.configs import DataArguments, TemporalSFTConfig
from temporal_rl.environment import child_environment
from temporal_rl.families import family_of
from temporal_rl.grpo.config import TemporalGRPOConfig
from temporal_rl.models.loading import TemporalModelConfig, lora_config
from temporal_rl.rewards import REWARDS, get_reward_funcs
from temporal_rl.viarl.config import ViaRLSelectorConfig

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
ACCELERATE_CONFIGS = RECIPES / "accelerate_configs"
# Filter recipes (FilterConfig) are parsed by tests/test_filter_data.py.
FILTER_RECIPES = {p for p in RECIPES.rglob("*.yaml") if p.parent.name == "filter" or p.name.startswith("filter_")}
# ViaRL: an amplification recipe (ViaRLConfig) points to its stage recipes, named <run>_selector[_...].yaml
# (ViaRLSelectorConfig) and <run>_answer[_...].yaml / <run>_selector_warmstart.yaml (TemporalSFTConfig).
VIARL_STAGE_KINDS = ("selector_warmstart", "answer_warmstart", "selector", "answer")


def _is_viarl(path: Path) -> bool:
    return path.parent.name == "viarl" or path.name.startswith("viarl_")


def _viarl_stage_kind(path: Path) -> str | None:
    """The stage kind of a ViaRL stage recipe (None for an amplification recipe)."""
    parts = path.stem.split("_")
    for kind in VIARL_STAGE_KINDS:
        words = kind.split("_")
        if any(parts[i : i + len(words)] == words for i in range(1, len(parts))):
            return kind
    return None


VIARL_RECIPES = sorted(p for p in RECIPES.rglob("*.yaml") if _is_viarl(p) and _viarl_stage_kind(p) is None)
MODEL_RECIPES = sorted(
    p
    for p in RECIPES.rglob("*.yaml")
    if ACCELERATE_CONFIGS not in p.parents and p not in FILTER_RECIPES and p not in VIARL_RECIPES
)
# Real-size model folders and their family; the model folder name is the Hub id's.
REAL_SIZE_MODELS = {
    "Qwen2.5-VL-3B-Instruct": ("qwen2_5_vl", "3B"),
    "Qwen2.5-VL-7B-Instruct": ("qwen2_5_vl", "7B"),
    "Qwen3-VL-8B-Instruct": ("qwen3_vl", "8B"),
}
REAL_SIZE_RECIPES = [p for p in MODEL_RECIPES if p.parts[-3] in REAL_SIZE_MODELS and not _is_viarl(p)]
CPU_OVERRIDES = ["--bf16", "false", "--use_cpu", "true"]

# LoRA r=64 on q,k,v,o,gate,up,down of every decoder layer, nothing on the ViT (meta-device counts of the public
# architectures; the 3B figure is the one in the project's performance model). Qwen3-VL-8B by hand: 36 layers x 64 x
# (q 4096+4096, k and v 4096+1024 each, o 4096+4096, gate and up 4096+12288 each, down 12288+4096) = 174,587,904.
LORA_R64_TRAINABLE = {"3B": 119_734_272, "7B": 161_480_704, "8B": 174_587_904}
# Temporal-RLT's released settings (arXiv 2506.01908): G=8, temperature 1, lr 1e-6, KL 1e-2 as a loss, clip 0.2,
# 2048 visual tokens per video.
PAPER_SETTINGS = dict(num_generations=8, temperature=1.0, learning_rate=1e-6, beta=0.01, epsilon=0.2)
# 2048 visual tokens per video: a token is 28x28 px for Qwen2.5-VL (14 px patches, 2x2 merge), 32x32 px for Qwen3-VL
# (16 px patches).
VISUAL_TOKEN_BUDGET = {"qwen2_5_vl": 2048 * 28 * 28, "qwen3_vl": 2048 * 32 * 32}
TASK_REWARDS = {
    "charades_sta": ["iou", "format"],
    "charades_sta_qlora": ["iou", "format"],
    "nextgqa": ["accuracy", "iou", "format"],
    "mixed_qa_grounding": ["accuracy", "iou", "format"],
}

# Small enough for a 2-core CPU: 4 completions per device, 1 prompt per process and step, 8 new tokens, 56 px frames.
SMALL_RUN = [
    "--per_device_train_batch_size", "4",
    "--num_generations", "4",
    "--max_completion_length", "8",
    "--video_min_pixels", "784",
    "--video_max_pixels", "3136",
    "--logging_steps", "1",
]  # fmt: skip
NUM_TRAIN_ROWS = 16


def _id(path: Path) -> str:
    return str(path.relative_to(RECIPES))


def _config_classes(path: Path) -> tuple:
    """The dataclass tuple of a recipe: its folder (`grpo/`, `sft/`) or, for the tiny recipes, its name prefix; a
    ViaRL stage recipe by its stage kind."""
    if _is_viarl(path):
        training = ViaRLSelectorConfig if _viarl_stage_kind(path) == "selector" else TemporalSFTConfig
        return DataArguments, training, TemporalModelConfig
    kind = path.parent.name if path.parent.name in ("grpo", "sft") else path.name.split("_")[0]
    training = {"grpo": TemporalGRPOConfig, "sft": TemporalSFTConfig}.get(kind)
    if training is None:
        pytest.fail(f"{path}: put a recipe under grpo/ or sft/, or name it grpo_*.yaml / sft_*.yaml")
    return DataArguments, training, TemporalModelConfig


def _parse(path: Path, *overrides: str):
    return TrlParser(_config_classes(path)).parse_args_and_config(args=["--config", str(path), *overrides])


def _tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no output)"


def _trainer_state(checkpoint: Path) -> dict | None:
    """The checkpoint's trainer state once it is completely written (the Trainer writes it last), else None."""
    try:
        return json.loads((checkpoint / "trainer_state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


# ---------------------------------------------------------------------------------------------------------------
# 1. Every shipped recipe parses, with the values that matter


def test_every_recipe_kind_is_shipped():
    names = {_id(p) for p in REAL_SIZE_RECIPES}
    for model in ("Qwen2.5-VL-3B-Instruct", "Qwen2.5-VL-7B-Instruct"):
        for recipe in (*(f"grpo/{task}.yaml" for task in TASK_REWARDS), "sft/charades_sta.yaml"):
            assert f"{model}/{recipe}" in names
    assert {"Qwen3-VL-8B-Instruct/grpo/charades_sta.yaml", "Qwen3-VL-8B-Instruct/sft/charades_sta.yaml"} <= names
    assert {p.stem for p in ACCELERATE_CONFIGS.glob("*.yaml")} >= {
        "single_gpu", "ddp", "zero2", "zero3", "fsdp", "cpu_2proc"
    }  # fmt: skip


@pytest.mark.parametrize("path", MODEL_RECIPES, ids=_id)
def test_recipe_parses(path):
    data_args, config, model_args = _parse(path, *CPU_OVERRIDES)
    assert isinstance(config, _config_classes(path)[1])
    assert data_args.train_file and model_args.model_name_or_path
    config.frame_sampling()  # the video fields make a valid frame budget
    if isinstance(config, TemporalGRPOConfig):
        registered = [name for name in config.reward_funcs if name not in config.trainer_built_rewards]
        assert len(get_reward_funcs(registered)) == len(registered)
        assert config.reward_weights is None or len(config.reward_weights) == len(config.reward_funcs)


@pytest.mark.parametrize("path", REAL_SIZE_RECIPES, ids=_id)
def test_real_size_recipe_settings(path):
    raw = yaml.safe_load(path.read_text())
    data_args, config, model_args = _parse(path, *CPU_OVERRIDES)
    model_dir, kind, task = path.parts[-3], path.parent.name, path.stem

    assert model_args.model_name_or_path == f"Qwen/{model_dir}"
    assert model_args.dtype == "bfloat16" and raw["bf16"] is True
    # LoRA r=64, alpha=128, no dropout, language model only (the vision tower excluded: the default)
    assert model_args.use_peft and (model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout) == (64, 128, 0)
    assert not model_args.lora_vision_tower
    assert config.activation_checkpointing and config.gradient_checkpointing
    assert config.video_total_pixels == VISUAL_TOKEN_BUDGET[REAL_SIZE_MODELS[model_dir][0]]
    # placeholders under data/ and runs/, one output directory per recipe
    assert data_args.train_file.startswith("data/") and data_args.train_file.endswith(".jsonl")
    assert config.output_dir == f"runs/{model_dir}/{kind}/{task}"
    assert config.report_to in ([], ["tensorboard"])
    assert model_args.load_in_4bit == task.endswith("_qlora")

    if kind == "grpo":
        for name, value in PAPER_SETTINGS.items():
            assert getattr(config, name) == value, name
        assert config.reward_funcs == TASK_REWARDS[task]
        weights = dict(zip(config.reward_funcs, config.reward_weights, strict=True))
        assert weights["iou"] == weights["format"] == 0.5  # the released 0.5 IoU + 0.5 format
        assert config.per_device_train_batch_size % config.num_generations == 0  # whole groups per micro-batch
    else:
        assert not config.think  # no reasoning traces to imitate: SFT teaches the answer format and spans


@pytest.mark.slow
@pytest.mark.parametrize("model_dir", list(REAL_SIZE_MODELS))
def test_lora_leaves_the_vision_tower_alone_on_the_real_architecture(model_dir):
    """The recipe's LoraConfig, applied to the real architecture on the meta device: adapters on the 7 projections
    of every decoder layer only, exactly the parameter count of the memory plan (Qwen3-VL-8B: counted by hand)."""
    from peft import get_peft_model

    from temporal_rl.models.qwen import build_architecture

    family, size = REAL_SIZE_MODELS[model_dir]
    _, _, model_args = _parse(RECIPES / f"{model_dir}/grpo/charades_sta.yaml", *CPU_OVERRIDES)
    base = build_architecture(family, size, device="meta")
    model = get_peft_model(base, lora_config(model_args, family_of(base)))
    adapted = [name for name, _ in model.named_parameters() if ".lora_" in name]
    assert adapted and not [name for name in adapted if ".visual." in name]
    assert {name.split(".")[-4] for name in adapted} == set(model_args.lora_target_modules)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == LORA_R64_TRAINABLE[size]


@pytest.mark.slow
def test_lora_vision_tower_exclusion_is_what_keeps_the_vit_frozen():
    """Control: the ViT's MLP layers are also called gate_proj/up_proj/down_proj, so without the exclusion the
    same target names put adapters on it."""
    from peft import get_peft_model

    from temporal_rl.models.qwen import build_qwen2_5_vl

    path = RECIPES / "Qwen2.5-VL-3B-Instruct/grpo/charades_sta.yaml"
    _, _, model_args = _parse(path, *CPU_OVERRIDES, "--lora_vision_tower", "true")
    base = build_qwen2_5_vl("3B", device="meta")
    model = get_peft_model(base, lora_config(model_args, family_of(base)))
    assert any(".visual." in name and ".lora_" in name for name, _ in model.named_parameters())


# ---------------------------------------------------------------------------------------------------------------
# 1a. ViaRL: amplification recipes and their stage recipes

# ViaRL (arXiv 2505.15447): T=128 candidates at 112 px, N=8 at 896 px, G=8, k1 KL 1e-3, PPO clip 0.2, rewards
# format 1 / index 1 / length 0.2 / answer 2, 512 selector tokens, 128 answer tokens, temperature 1.
VIARL_PAPER = dict(
    num_candidates=128, selector_long_side=112, num_frames_to_select=8, answer_long_side=896, num_generations=8,
    kl_coef=1e-3, epsilon=0.2, beta=0.0, gamma=1.0, temperature=1.0, max_completion_length=512,
    answer_max_new_tokens=128, reward_weights=[1.0, 1.0, 0.2, 2.0],
)  # fmt: skip


def _viarl_config(path: Path):
    from temporal_rl.viarl.amplification import ViaRLConfig

    (config,) = TrlParser((ViaRLConfig,)).parse_args_and_config(args=["--config", str(path)])
    return config


def _viarl_stage_recipes(config) -> list[Path]:
    names = ("selector_recipe", "answer_recipe", "answer_warmstart_recipe", "selector_warmstart_recipe")
    return [REPO / getattr(config, name) for name in names if getattr(config, name)]


def test_viarl_recipes_are_shipped_and_every_stage_recipe_is_used():
    names = {_id(p) for p in VIARL_RECIPES}
    assert {"tiny/viarl_needle.yaml", "Qwen2.5-VL-3B-Instruct/viarl/videoqa.yaml"} <= names
    used = {path for recipe in VIARL_RECIPES for path in _viarl_stage_recipes(_viarl_config(recipe))}
    stage_recipes = {p for p in RECIPES.rglob("*.yaml") if _is_viarl(p) and _viarl_stage_kind(p) is not None}
    assert used == stage_recipes


@pytest.mark.parametrize("path", VIARL_RECIPES, ids=_id)
def test_viarl_recipe_parses_with_its_stages(path, monkeypatch):
    monkeypatch.chdir(REPO)  # recipe paths are relative to the repository
    config = _viarl_config(path)
    stages = {Path(p).name: _parse(Path(p), *CPU_OVERRIDES) for p in _viarl_stage_recipes(config)}
    selector = stages[Path(config.selector_recipe).name]
    answer = stages[Path(config.answer_recipe).name]
    assert isinstance(selector[1], ViaRLSelectorConfig)
    assert isinstance(answer[1], TemporalSFTConfig)
    # the answer model is asked (selector trainer) and tuned (answer stages) with the same prompt
    assert answer[1].prompt_options() == selector[1].prompt_options()
    assert selector[1].answer_model_name_or_path == answer[2].model_name_or_path
    assert selector[2].use_peft and selector[1].kl_coef > 0  # the reference policy: adapters disabled
    if path.parts[-3] in REAL_SIZE_MODELS:
        return
    from temporal_rl.viarl.amplification import ViaRLRun

    run = ViaRLRun(config)  # parses every stage with the lineage and the prompt check
    assert len(run.stages) == 3 * config.num_cycles + 2
    # the tiny needle recipe: T = 16, N = 1 (a frame pair would blend the needle with a frame without it, issue 13),
    # and the answer warm start shows the answer model as many frames as the selector will give it
    assert (run.spec.num_candidates, run.spec.num_select) == (16, 1)
    assert config.answer_warmstart_num_frames == run.spec.num_select


# (recipe, selector model, answer model)
VIARL_REAL_SIZE = [
    ("Qwen2.5-VL-3B-Instruct/viarl/videoqa", "Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct"),
    ("Qwen2.5-VL-3B-Instruct/viarl/videoqa_4bit", "Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct"),
    ("Qwen3-VL-8B-Instruct/viarl/videoqa", "Qwen/Qwen3-VL-8B-Instruct", "Qwen/Qwen3-VL-8B-Instruct"),
]


@pytest.mark.parametrize(("recipe", "selector_id", "answer_id"), VIARL_REAL_SIZE, ids=lambda v: str(v))
def test_viarl_real_size_settings(recipe, selector_id, answer_id):
    name = Path(recipe).name
    config = _viarl_config(RECIPES / f"{recipe}.yaml")
    assert config.num_cycles == 2 and config.answer_target == "letter"
    assert config.answer_warmstart_recipe is None and config.selector_warmstart_recipe is None
    assert config.output_dir == f"runs/{recipe}"
    _, selector, selector_model = _parse(REPO / config.selector_recipe, *CPU_OVERRIDES)
    _, answer, answer_model = _parse(REPO / config.answer_recipe, *CPU_OVERRIDES)
    for key, value in VIARL_PAPER.items():
        assert getattr(selector, key) == value, key
    assert selector.reward_funcs == ["selector_format", "selector_index", "selector_length", "selector_answer"]
    assert (selector.length_min_tokens, selector.length_max_tokens) == (80, 512)
    assert selector.answer_load_in_4bit == name.endswith("_4bit")
    assert selector_model.model_name_or_path == selector_id
    assert selector.answer_model_name_or_path == answer_model.model_name_or_path == answer_id
    for model_args, training in ((selector_model, selector), (answer_model, answer)):
        assert model_args.use_peft and (model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout) == (
            64,
            128,
            0,
        )
        assert not model_args.lora_vision_tower and model_args.dtype == "bfloat16"
        assert training.gradient_checkpointing
    assert selector.per_device_train_batch_size % selector.num_generations == 0


# ---------------------------------------------------------------------------------------------------------------
# 1b. The accelerate configs


def _launch_args(path: Path):
    """What `accelerate launch --config_file path script.py` resolves the config to (accelerate's own validation)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    args = launch_command_parser().parse_args(["--config_file", str(path), "script.py"])
    return _validate_launch_command(args)[0]


@pytest.mark.parametrize("path", sorted(ACCELERATE_CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_config_is_valid(path):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    raw = yaml.safe_load(path.read_text())
    config = load_config_from_file(str(path))  # raises on unknown keys and unknown enum values
    assert raw["compute_environment"] == "LOCAL_MACHINE" and "distributed_type" in raw
    assert config.num_processes >= 1 and config.num_machines == 1
    launch_options = {action.dest for action in launch_command_parser()._actions}
    for key in {**config.deepspeed_config, **config.fsdp_config}:  # each maps onto an `accelerate launch` option
        assert key in launch_options, key
    args = _launch_args(path)
    expected = {  # the launcher accelerate picks: torchrun (multi_gpu), deepspeed, fsdp, or one plain process
        "single_gpu": dict(multi_gpu=False, use_deepspeed=False, use_fsdp=False, num_processes=1),
        "ddp": dict(multi_gpu=True, use_deepspeed=False, use_fsdp=False),
        "zero2": dict(use_deepspeed=True, zero_stage=2),
        "zero3": dict(use_deepspeed=True, zero_stage=3, zero3_init_flag=True),
        "fsdp": dict(use_fsdp=True, fsdp_version=2),
        # two local processes exist only on accelerate's torchrun path; use_cpu keeps them off CUDA
        "cpu_2proc": dict(multi_gpu=True, cpu=False, use_cpu=True, num_processes=2, mixed_precision="no"),
    }[path.stem]
    for name, value in expected.items():
        assert getattr(args, name) == value, name
    if path.stem != "cpu_2proc":
        assert args.mixed_precision == "bf16"


def test_fsdp_config_wraps_the_qwen2_5_vl_layers():
    """The FSDP2 plugin accelerate builds from the config wraps classes that exist in transformers' Qwen2.5-VL."""
    from accelerate.utils import FullyShardedDataParallelPlugin, patch_environment
    from accelerate.utils.launch import prepare_multi_gpu_env
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl

    env = prepare_multi_gpu_env(_launch_args(ACCELERATE_CONFIGS / "fsdp.yaml"))
    with patch_environment(**{k: v for k, v in env.items() if k.startswith(("FSDP_", "ACCELERATE_USE_FSDP"))}):
        plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2
    assert "Qwen2_5_VLDecoderLayer" in plugin.transformer_cls_names_to_wrap
    for name in plugin.transformer_cls_names_to_wrap:
        assert hasattr(modeling_qwen2_5_vl, name), name


# ---------------------------------------------------------------------------------------------------------------
# 2. Invalid combinations fail in __post_init__, saying how to fix them

GRPO_RECIPE = RECIPES / "Qwen2.5-VL-3B-Instruct/grpo/charades_sta.yaml"
SFT_RECIPE = RECIPES / "Qwen2.5-VL-3B-Instruct/sft/charades_sta.yaml"


@pytest.mark.parametrize(
    ("recipe", "overrides", "message"),
    [
        (GRPO_RECIPE, ["--reward_weights", "1.0"], "reward_weights has 1 values but reward_funcs names 2 rewards"),
        (GRPO_RECIPE, ["--think", "false", "--reward_funcs", "iou", "think_format"], "requires think: true"),
        (GRPO_RECIPE, ["--reward_funcs", "iou", "iuo"], "unknown reward 'iuo'"),
        # TRL's own GRPOConfig check fires first (before TemporalGRPOConfig's equivalent one)
        (GRPO_RECIPE, ["--num_generations", "1"], "requires at least 2 generations per prompt"),
        (GRPO_RECIPE, ["--video_num_frames", "7"], "num_frames=7 must be a multiple of frame_factor=2"),
        (SFT_RECIPE, ["--video_num_frames", "7"], "use 8"),
        (
            GRPO_RECIPE,
            ["--video_min_pixels", "700000", "--video_max_pixels", "600000"],
            "min_pixels=700000 > max_pixels=600000; lower min_pixels or raise max_pixels",
        ),
        (GRPO_RECIPE, ["--load_in_4bit", "true", "--use_peft", "false"], "set use_peft: true"),
    ],
    ids=[
        "reward-weights-length",
        "think-format-without-think",
        "unknown-reward",
        "one-generation",
        "odd-frame-count",
        "odd-frame-count-sft",
        "min-pixels-above-max",
        "4bit-without-peft",
    ],
)
def test_invalid_combination_fails_with_the_fix(recipe, overrides, message):
    with pytest.raises(ValueError) as error:
        _parse(recipe, *CPU_OVERRIDES, *overrides)
    assert message in str(error.value)


def test_unknown_reward_lists_the_known_ones():
    with pytest.raises(ValueError) as error:
        _parse(GRPO_RECIPE, *CPU_OVERRIDES, "--reward_funcs", "iou", "iuo")
    assert REWARDS and all(name in str(error.value) for name in REWARDS)


def test_missing_train_file_fails(tmp_path):
    raw = yaml.safe_load(GRPO_RECIPE.read_text())
    del raw["train_file"]
    path = tmp_path / "grpo" / "no_train_file.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="train_file is required"):
        _parse(path, *CPU_OVERRIDES)


# ---------------------------------------------------------------------------------------------------------------
# 3-4. Real launches of recipes/grpo.py on the tiny model


@pytest.fixture(scope="module")
def grounding_jsonl(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recipes_grounding")
    generate_dataset("grounding", "train", NUM_TRAIN_ROWS, "recipes-test", root, workers=1, progress=False)
    return root / "data.jsonl"


def _grpo_args(tiny_model_dir, train_file, output_dir, frame_cache, *extra: str) -> list[str]:
    return [
        "--config", str(RECIPES / "tiny/grpo_grounding.yaml"),
        "--model_name_or_path", str(tiny_model_dir),
        "--train_file", str(train_file),
        "--output_dir", str(output_dir),
        "--frame_cache_dir", str(frame_cache),
        *SMALL_RUN,
        *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_two_process_cpu_launch(tiny_model_dir, grounding_jsonl, tmp_path):
    """`accelerate launch --config_file cpu_2proc.yaml recipes/grpo.py ...`: two gloo processes train 2 steps."""
    output_dir, log = tmp_path / "out", tmp_path / "launch.log"
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(ACCELERATE_CONFIGS / "cpu_2proc.yaml"),
        str(RECIPES / "grpo.py"),
        *_grpo_args(tiny_model_dir, grounding_jsonl, output_dir, tmp_path / "frames"),
        "--max_steps", "2", "--save_strategy", "steps", "--save_steps", "2",
    ]  # fmt: skip
    start = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(
            command, cwd=REPO, env=child_environment(), stdout=out, stderr=subprocess.STDOUT, timeout=300
        )
    print(f"2-process launch: {time.monotonic() - start:.1f} s")
    assert result.returncode == 0, _tail(log)

    assert (output_dir / "model.safetensors").exists() and (output_dir / "config.json").exists()
    state = _trainer_state(output_dir / "checkpoint-2")
    assert state is not None and state["global_step"] == 2 and state["max_steps"] == 2
    # Two processes: each step consumes 4 completions x 2 processes / 4 generations = 2 prompts, so 2 steps cover
    # 4 of the 16 rows (epoch 0.25); one process would have covered 2 (epoch 0.125).
    world_size = 2
    prompts_per_step = 4 * world_size // 4
    assert state["log_history"][-1]["epoch"] == pytest.approx(2 * prompts_per_step / NUM_TRAIN_ROWS)


REWARD_MODULE = '''
from temporal_rl.rewards.parsing import completion_text


def varied_reward(completions, **kwargs):
    """Differs between distinct completions, so groups (almost) never have zero advantage and the adapter moves:
    the untrained tiny model practically never earns the format or IoU rewards, whose zero variance would leave
    it untouched."""
    return [(sum(map(ord, completion_text(c))) % 101) / 100 for c in completions]
'''


@pytest.mark.slow
def test_killed_lora_run_resumes_from_its_checkpoint(tiny_model_dir, grounding_jsonl, tmp_path):
    """A LoRA GRPO run (max_steps 6, a checkpoint every 2 steps) is SIGKILLed as soon as its first checkpoint is
    complete, then relaunched with the same command: it finds its newest complete checkpoint and resumes from it.

    Timing: a tiny step takes ~0.3 s here and the Trainer writes trainer_state.json last, so polling every 0.05 s
    for a checkpoint whose trainer state parses catches it about one step after it is written, well before step 6.
    The test fails (rather than passing vacuously) if the run had already ended when it was killed.
    """
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    (tmp_path / "recipes_test_rewards.py").write_text(REWARD_MODULE)
    env = child_environment([tmp_path])
    output_dir = tmp_path / "out"
    args = _grpo_args(
        tiny_model_dir, grounding_jsonl, output_dir, tmp_path / "frames",
        "--use_peft", "true",
        "--reward_funcs", "iou", "format", "recipes_test_rewards.varied_reward",
        "--reward_weights", "1.0", "0.5", "1.0",
        "--max_steps", "6", "--save_strategy", "steps", "--save_steps", "2",
    )  # fmt: skip
    command = [sys.executable, str(RECIPES / "grpo.py"), *args]

    start = time.monotonic()
    first_log = tmp_path / "first.log"
    with first_log.open("w") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        checkpoint = None
        try:
            while checkpoint is None and process.poll() is None and time.monotonic() - start < 240:
                time.sleep(0.05)
                for step in (2, 4):
                    state = _trainer_state(output_dir / f"checkpoint-{step}")
                    if state is not None and state["global_step"] == step:
                        checkpoint = output_dir / f"checkpoint-{step}"
                        break
            still_running = process.poll() is None
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait()
    assert checkpoint is not None, _tail(first_log)
    assert still_running, "the first run ended before it could be killed: " + _tail(first_log)
    assert process.returncode == -signal.SIGKILL
    assert not (output_dir / "adapter_model.safetensors").exists()  # it never reached its final save
    checkpoint_state = _trainer_state(checkpoint)
    checkpoint_adapter = load_file(checkpoint / "adapter_model.safetensors")
    killed_at = checkpoint_state["global_step"]

    second_log = tmp_path / "second.log"
    with second_log.open("w") as out:
        result = subprocess.run(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=300,
        )  # fmt: skip
    print(f"kill after checkpoint-{killed_at} and resume: {time.monotonic() - start:.1f} s")
    assert result.returncode == 0, _tail(second_log)
    # it says so, naming a checkpoint of its own folder (the one killed at, or one written just before the kill)
    assert re.search(rf"resuming from {re.escape(str(output_dir))}/checkpoint-[24] ", second_log.read_text()), _tail(
        second_log
    )

    final_state = _trainer_state(output_dir / "checkpoint-6")
    assert final_state is not None and final_state["global_step"] == 6
    # HF Trainer restores the checkpoint's log history and goes on from the next step: the steps the killed run
    # logged after its checkpoint are gone with it, so every step appears exactly once, and the entries up to the
    # checkpoint are the checkpoint's own (carried over, not recomputed).
    logged = [entry for entry in final_state["log_history"] if "loss" in entry]
    assert [entry["step"] for entry in logged] == [1, 2, 3, 4, 5, 6]
    assert logged[:killed_at] == [e for e in checkpoint_state["log_history"] if "loss" in e]

    # The final adapter loads onto the base model and is not the checkpoint's: training went on after the resume.
    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    model = PeftModel.from_pretrained(base, output_dir)
    final_adapter = load_file(output_dir / "adapter_model.safetensors")
    assert final_adapter.keys() == checkpoint_adapter.keys()
    loaded = {name: param for name, param in model.named_parameters() if ".lora_" in name}
    assert len(loaded) == len(final_adapter)
    for name, value in final_adapter.items():
        # the saved key drops the adapter name: ...q_proj.lora_A.weight <-> ...q_proj.lora_A.default.weight
        match = [param for key, param in loaded.items() if key.replace(".default", "").endswith(name)]
        assert len(match) == 1 and match[0].detach().equal(value.to(match[0].dtype)), name
    assert any(not final_adapter[name].equal(checkpoint_adapter[name]) for name in final_adapter)
