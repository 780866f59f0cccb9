"""ViaRL frame selector: its model inputs, the answer-model reward, REINFORCE++ advantages and a short training run."""

import numpy as np
import pytest
import torch

from data_tools.synth.encode import encode_mp4
from temporal_rl.families import FAMILIES
from temporal_rl.viarl.candidates import candidate_frames
from temporal_rl.viarl.selector import build_selector_messages
from temporal_rl.video.inputs import model_inputs, processor_video_kwargs
from temporal_rl.video.sampling import SampledVideo

CLIP_FPS, CLIP_FRAMES = 10, 40


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 4 s, 180x320 clip whose frames differ (a moving ramp)."""
    yy, xx = np.mgrid[0:180, 0:320]
    frames = np.empty((CLIP_FRAMES, 180, 320, 3), dtype=np.uint8)
    for i in range(CLIP_FRAMES):
        frames[i, ..., 0] = 40 + (xx + 3 * i) % 90
        frames[i, ..., 1] = 60 + (yy + i) % 80
        frames[i, ..., 2] = 150 + (i % 10) * 5
    path = tmp_path_factory.mktemp("selector_clip") / "clip.mp4"
    encode_mp4(frames, CLIP_FPS, path)
    return path


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_dir)


# ----------------------------------------------------------------------------------------------------------------
# The selector's inputs


def test_selector_video_and_inputs(clip, processor):
    candidates = candidate_frames(clip, 16, 112, 224)
    video = candidates.selector_video()
    assert video.frames is candidates.selector_frames and video.frames.shape == (16, 56, 112, 3)
    np.testing.assert_array_equal(video.timestamps, candidates.timestamps)
    np.testing.assert_array_equal(video.indices, candidates.source_indices)
    assert (video.source_fps, video.total_frames) == (CLIP_FPS, CLIP_FRAMES)

    messages = build_selector_messages({"question": "Which shape was shown?"}, 16, 4, video=str(clip))
    inputs = model_inputs(processor, messages, candidates.selector_video())
    # 16 frames of 56x112 -> a (16/2, 56/14, 112/14) patch grid, merged 2x2 into 8*4*8/4 video tokens.
    assert inputs["video_grid_thw"].tolist() == [[8, 4, 8]]
    assert inputs["pixel_values_videos"].shape[0] == 8 * 4 * 8
    video_token = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert int((inputs["input_ids"] == video_token).sum()) == 8 * 4 * 8 // 4
    # 16 candidates over 40 frames at 10 fps: sampled at 4 fps, 2 frames per temporal patch -> 0.5 s.
    assert inputs["second_per_grid_ts"].tolist() == pytest.approx([0.5])
    text = processor.tokenizer.decode(inputs["input_ids"][0])
    assert 'The question is: "Which shape was shown?"' in text and "16 frames" in text
    assert inputs["attention_mask"].shape == inputs["input_ids"].shape
    assert processor_video_kwargs([video])["videos"][0] is candidates.selector_frames
    # The labelled low-res frames are what the processor got: the last patch row is the bottom-right 14x14 corner
    # (with the label) of the last two candidates, normalised, laid out (channel, time, y, x).
    vp = processor.video_processor
    corner = candidates.selector_frames[14:16, 42:56, 98:112].astype(np.float64) / 255.0
    corner = (corner - np.array(vp.image_mean)) / np.array(vp.image_std)
    expected = torch.from_numpy(corner.transpose(3, 0, 1, 2).reshape(-1)).float()
    torch.testing.assert_close(inputs["pixel_values_videos"][-1], expected, atol=1e-5, rtol=0)

    with pytest.raises(ValueError, match="exactly one video block"):
        model_inputs(processor, [{"role": "user", "content": [{"type": "text", "text": "q"}]}], video)


# ----------------------------------------------------------------------------------------------------------------
# The answer reward


def test_answer_reward_hands_the_selected_frames_in_time_order(clip, processor, monkeypatch):
    from temporal_rl.generation import Generation
    from temporal_rl.viarl import selector_trainer
    from temporal_rl.viarl.candidates import resize_frames
    from temporal_rl.viarl.selector_trainer import AnswerModelReward

    candidates = candidate_frames(clip, 8, 56, 112)  # selector 28x56, answer 56x112
    assert candidates.answer_size == (56, 112) and candidates.selector_size == (28, 56)
    seen = []

    def fake_generate_batch(model, processor_, prompts, options):
        seen.append(list(prompts))
        assert options.do_sample is False and options.max_new_tokens == 5
        return [Generation(p.record_id, ["<answer>A</answer>"], [[1]], [1], p.num_tokens) for p in prompts]

    monkeypatch.setattr(selector_trainer, "generate_batch", fake_generate_batch)
    reward = AnswerModelReward(object(), processor, batch_size=8, max_new_tokens=5)
    completions = [
        "<think>x</think><index>6, 1</index>",  # valid, reversed: the frames go in time order 1, 6
        "<index>1 6</index>",  # the same selection: generated once
        "<index>1, 1</index>",  # invalid (repeat): uniform fallback 0, 4; no credit although the answer is right
        "<index>6, 1</index>",  # valid, but the other question's gold is B
        "<index>2, 3</index>",  # a grounding row: not scored
    ]
    columns = dict(
        candidate_frames=[candidates] * 5,
        num_candidates=[8] * 5,
        num_frames_to_select=[2] * 5,
        task=["mcq", "mcq", "mcq", "mcq", "grounding"],
        question=["Which shape?", "Which shape?", "Which shape?", "Which colour?", "When?"],
        options=[["star", "ring"], ["star", "ring"], ["star", "ring"], ["red", "blue"], None],
        answer=["A", "A", "A", "B", None],
        id=["q1", "q1", "q1", "q2", "g"],
    )
    logged = []
    rewards = reward(completions, log_metric=lambda name, value: logged.append((name, value)), **columns)
    assert rewards == [1.0, 1.0, 0.0, 0.0, None]
    (prompts,) = seen
    assert len(prompts) == 3  # (q1, [1, 6]), (q1, [0, 4]), (q2, [1, 6])
    # Each prompt holds the chosen candidates at the answer size (56x112 -> a 1x4x8 grid), earliest first: its first
    # patch row is the top-left 14x14 corner of candidates (first, second) resized to 56x112, normalised.
    vp = processor.video_processor
    for prompt, (first, second) in zip(prompts, [(1, 6), (0, 4), (1, 6)], strict=True):
        assert prompt.inputs["video_grid_thw"].tolist() == [[1, 4, 8]]
        frames = resize_frames(candidates.video.frames[[first, second]], (56, 112))
        corner = (frames[:, :14, :14].astype(np.float64) / 255.0 - np.array(vp.image_mean)) / np.array(vp.image_std)
        expected = torch.from_numpy(corner.transpose(3, 0, 1, 2).reshape(-1)).float()
        torch.testing.assert_close(prompt.inputs["pixel_values_videos"][0], expected, atol=1e-5, rtol=0)
        # 2 frames of a 40-frame, 10 fps clip: sampled at 2 / 40 * 10 = 0.5 fps, 2 frames per temporal patch -> 4 s.
        assert prompt.inputs["second_per_grid_ts"].tolist() == pytest.approx([4.0])
    texts = [processor.tokenizer.decode(p.inputs["input_ids"][0]) for p in prompts]
    assert all(word in texts[0] for word in ("Which shape?", "star", "ring"))
    assert "Which colour?" in texts[2] and "blue" in texts[2]
    metrics = {}
    for name, value in logged:
        metrics.setdefault(name, []).append(value)
    assert metrics["selector/fallback_rate"] == [0.0, 0.0, 1.0, 0.0]
    assert metrics["selector/answer_accuracy"] == [1.0, 1.0, 1.0, 0.0]
    assert metrics["selector/answer_generations"] == [3.0]


# ----------------------------------------------------------------------------------------------------------------
# The trainer

SHORT_FRAMES = 6  # fewer than T: this video's rows get 6 candidates


@pytest.fixture(scope="module")
def needle_jsonl(tmp_path_factory):
    """Two needle rows (56x56, 2 fps, ~48 s) and one row on a 6-frame clip (fewer frames than T = 8)."""
    from data_tools.synth import generate_dataset
    from temporal_rl.data import read_records, write_jsonl

    root = tmp_path_factory.mktemp("needle")
    generate_dataset("needle", "train", 2, "selector-test", root, workers=1, progress=False)
    records = read_records(root / "data.jsonl")
    frames = np.stack([np.full((56, 56, 3), 20 * i, dtype=np.uint8) for i in range(SHORT_FRAMES)])
    encode_mp4(frames, 2, root / "short.mp4")
    short = {**records[0], "id": "short", "video": str(root / "short.mp4"), "duration": 3.0}
    short["question"] = "Which number appeared in the short clip?"
    write_jsonl(root / "selector.jsonl", [*records, short])
    return root / "selector.jsonl"


def _config(tmp_path, answer_model, **overrides):
    from temporal_rl.viarl.config import ViaRLSelectorConfig

    settings = dict(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        per_device_train_batch_size=12,  # the 3 rows x G = 4 in one generation batch
        num_generations=4,
        max_completion_length=16,
        max_steps=1,
        logging_steps=1,
        learning_rate=0.0,
        answer_model_name_or_path=str(answer_model),
        answer_max_new_tokens=4,
        num_candidates=8,
        num_frames_to_select=2,
        selector_long_side=56,
        answer_long_side=56,
        length_min_tokens=10,  # some completions stop early: the length reward varies
        length_max_tokens=16,
        frame_cache_dir=str(tmp_path / "frames"),
        seed=0,
    )
    settings.update(overrides)
    return ViaRLSelectorConfig(**settings)


def distinct_tokens_reward(completions, completion_ids, **kwargs):
    """A reward that differs between the completions of a random model: the number of distinct tokens."""
    return [float(len(set(ids))) for ids in completion_ids]


def _reference_advantages(rewards, group_size, old, ref, mask, kl_coef, gamma, baseline):
    """REINFORCE++ advantages by hand, in float64 Python: token rewards, returns, whitening over all valid tokens."""
    rewards = [float(r) for r in rewards]
    if baseline:
        means = [sum(rewards[g : g + group_size]) / group_size for g in range(0, len(rewards), group_size)]
        rewards = [r - means[i // group_size] for i, r in enumerate(rewards)]
    returns = {}
    for i, row in enumerate(mask.tolist()):
        valid = [t for t, m in enumerate(row) if m]
        running = 0.0
        for t in reversed(valid):
            token_reward = -kl_coef * (float(old[i, t]) - float(ref[i, t])) + (rewards[i] if t == valid[-1] else 0.0)
            running = token_reward + gamma * running
            returns[i, t] = running
    values = list(returns.values())
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    expected = torch.zeros(mask.shape, dtype=torch.float64)
    for (i, t), value in returns.items():
        expected[i, t] = (value - mean) / (std + 1e-8)
    return expected


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["reinforce++", "reinforce++-baseline"])
def test_rollout_advantages_and_reference_log_probs(estimator, tiny_model_dir, processor, needle_jsonl, tmp_path):
    from peft import LoraConfig
    from transformers import AutoModelForImageTextToText

    from temporal_rl.data import load_dataset
    from temporal_rl.models.loading import LANGUAGE_MODEL_LORA_TARGETS, VISION_TOWER_PATTERN
    from temporal_rl.rewards.selector import selector_format_reward, selector_index_reward
    from temporal_rl.viarl.selector_trainer import AnswerModelReward, ViaRLSelectorTrainer

    class Capturing(ViaRLSelectorTrainer):
        def _calculate_rewards(self, inputs, *args):
            self.rows = inputs
            self.rewards_per_func = super()._calculate_rewards(inputs, *args)
            return self.rewards_per_func

        def _rollout_log_probs(self, output):
            self.old, self.ref = super()._rollout_log_probs(output)
            return self.old, self.ref

        def _generate_and_score_completions(self, inputs):
            self.output = super()._generate_and_score_completions(inputs)
            return self.output

    torch.manual_seed(0)
    config = _config(tmp_path, tiny_model_dir, advantage_estimator=estimator, kl_coef=0.5, gamma=0.9)
    answer_model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    # A randomly initialised adapter: the policy differs from the base model, so the reference is not the policy.
    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=LANGUAGE_MODEL_LORA_TARGETS,
        exclude_modules=VISION_TOWER_PATTERN,
        init_lora_weights=False,
    )
    # The random selector never writes the format, so the third reward (weight 0.2) varies instead: distinct tokens.
    answer = AnswerModelReward(answer_model, processor, max_new_tokens=4)
    reward_funcs = [selector_format_reward, selector_index_reward, distinct_tokens_reward, answer]
    trainer = Capturing(
        model=AutoModelForImageTextToText.from_pretrained(tiny_model_dir),
        args=config,
        train_dataset=load_dataset(needle_jsonl),
        processing_class=processor,
        reward_funcs=reward_funcs,
        peft_config=lora,
        answer_model=answer_model,
        answer_processor=processor,
    )
    assert not any(p.requires_grad for p in answer_model.parameters()) and not answer_model.training
    trainer.train()

    output, rows = trainer.output, trainer.rows
    mask = output["completion_mask"].bool()
    # The rows the rewards saw: the real T of each video, and a prompt that says it.
    short = [row for row in rows if row["id"] == "short"]
    assert len(short) == 4 and all(row["num_candidates"] == SHORT_FRAMES for row in short)
    assert all(row["num_candidates"] == 8 for row in rows if row["id"] != "short")
    assert all(row["num_frames_to_select"] == 2 for row in rows)
    assert f"The video has {SHORT_FRAMES} frames" in short[0]["prompt"][0]["content"][0]["text"]

    # Advantages: (B, L), equal to the hand computation from the rollout's rewards, log-probs and mask.
    weights = torch.tensor(config.reward_weights, dtype=torch.float64)
    assert config.reward_weights == [1.0, 1.0, 0.2, 2.0]
    rewards = (trainer.rewards_per_func.double().nan_to_num(0.0) * weights).sum(dim=1)
    assert len(set(rewards.tolist())) > 1, "the test needs rewards that differ"
    expected = _reference_advantages(
        rewards, 4, trainer.old.double(), trainer.ref.double(), mask, 0.5, 0.9, estimator == "reinforce++-baseline"
    )
    assert output["advantages"].shape == mask.shape
    torch.testing.assert_close(output["advantages"].double(), expected, atol=1e-5, rtol=0)

    # The reference log-probs: a fresh base model (no adapter), one row at a time, unpadded, with the row's labelled
    # candidates; the adapter changes them (old != ref).
    assert float((trainer.old - trainer.ref)[mask].abs().max()) > 1e-3
    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    pad = processor.tokenizer.pad_token_id
    for i, row in enumerate(rows):
        candidates = row["candidate_frames"]
        text = processor.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[text], return_tensors="pt", **processor_video_kwargs([candidates.selector_video()]))
        prompt_ids = output["prompt_ids"][i][output["prompt_mask"][i].bool()]
        assert inputs["input_ids"][0].tolist() == prompt_ids.tolist()
        completion = output["completion_ids"][i][mask[i]]
        assert pad not in completion[:-1].tolist() or pad == processor.tokenizer.eos_token_id
        ids = torch.cat([inputs["input_ids"], completion[None]], dim=1)
        types = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(completion)[None]], dim=1)
        with torch.no_grad():
            logits = base(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                mm_token_type_ids=types,
                pixel_values_videos=inputs["pixel_values_videos"],
                video_grid_thw=inputs["video_grid_thw"],
                second_per_grid_ts=inputs["second_per_grid_ts"],
            ).logits[0, -len(completion) - 1 : -1]
        reference = torch.log_softmax(logits.double(), dim=-1).gather(1, completion[:, None])[:, 0]
        torch.testing.assert_close(trainer.ref[i][mask[i]].double(), reference, atol=1e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_train_selector_writes_a_loadable_adapter(family, tiny_family_dir, needle_jsonl, tmp_path):
    """Selector and answer model of one family (Qwen3-VL and Qwen3.5: the 56 px candidates fitted to 64 px)."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from temporal_rl.configs import DataArguments
    from temporal_rl.models.loading import TemporalModelConfig
    from temporal_rl.viarl.selector_trainer import train_selector

    tiny_model_dir = tiny_family_dir(family)
    # gamma < 1 makes the returns differ along a completion even when all rewards are equal: the adapter moves.
    config = _config(tmp_path, tiny_model_dir, max_steps=2, learning_rate=1e-2, gamma=0.5, gradient_checkpointing=True)
    model_args = TemporalModelConfig(model_name_or_path=str(tiny_model_dir), use_peft=True, lora_r=4, lora_alpha=8)
    trainer = train_selector(DataArguments(train_file=str(needle_jsonl)), config, model_args)
    logged = trainer.state.log_history[0]
    for name in (
        "selector/answer_accuracy",
        "selector/fallback_rate",
        "reinforce_pp/kl",
        "rewards/selector_answer_reward/mean",
    ):
        assert name in logged
    assert logged["selector/fallback_rate"] == 1.0  # a random selector writes no valid list
    loaded = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(tiny_model_dir), config.output_dir)
    lora_b = [p for name, p in loaded.named_parameters() if "lora_B" in name]
    assert lora_b and any(float(p.abs().max()) > 0 for p in lora_b)  # trained away from PEFT's zero init
    assert not any("visual" in name for name, _ in loaded.named_parameters() if "lora_" in name)
    assert (tmp_path / "out" / "processor_config.json").exists()  # the processor is saved with the adapter


@pytest.mark.slow
def test_load_answer_model_merges_the_adapter_and_freezes(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from temporal_rl.viarl.selector_trainer import load_answer_model

    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    adapted = get_peft_model(AutoModelForImageTextToText.from_pretrained(tiny_model_dir), lora).eval()
    adapted.save_pretrained(tmp_path / "adapter")
    ids = torch.tensor([[5, 9, 14, 3, 7]])
    with torch.no_grad():
        expected = adapted(input_ids=ids).logits
        base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)(input_ids=ids).logits
    model, answer_processor = load_answer_model(str(tiny_model_dir), adapter=str(tmp_path / "adapter"))
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert not any("lora_" in name for name, _ in model.named_parameters())  # merged
    with torch.no_grad():
        got = model(input_ids=ids).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert float((expected - base).abs().max()) > 1e-3
    # The processor is the checkpoint's own: a video prompt becomes the model's video placeholders, one per merged
    # patch, and the frozen, merged model answers from it.
    video = SampledVideo(
        frames=np.zeros((4, 56, 56, 3), np.uint8), timestamps=np.arange(4) / 2.0, indices=np.arange(4) * 5,
        source_fps=10.0, total_frames=20, duration=2.0, path="clip.mp4",
    )  # fmt: skip
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Which shape?"}]}]
    inputs = model_inputs(answer_processor, messages, video)
    merged_patches = int(inputs["video_grid_thw"].prod()) // 4
    assert int((inputs["input_ids"] == model.config.video_token_id).sum()) == merged_patches == 2 * 2 * 2
    with torch.no_grad():
        assert model(**inputs).logits.shape[:2] == inputs["input_ids"].shape
    # 4-bit (bitsandbytes runs on the CPU): NF4 linear layers in the language model, frozen.
    quantized, _ = load_answer_model(str(tiny_model_dir), load_in_4bit=True, dtype="float32")
    layers = {type(module).__name__ for name, module in quantized.named_modules() if name.endswith("q_proj")}
    assert "Linear4bit" in layers and not any(p.requires_grad for p in quantized.parameters())


def test_kl_needs_adapters(tiny_model_dir, needle_jsonl, tmp_path):
    from temporal_rl.data import load_dataset
    from temporal_rl.viarl.selector_trainer import ViaRLSelectorTrainer

    with pytest.raises(ValueError, match="use_peft"):
        ViaRLSelectorTrainer(
            model=str(tiny_model_dir), args=_config(tmp_path, tiny_model_dir), train_dataset=load_dataset(needle_jsonl)
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"beta": 0.04}, "use kl_coef"),
        ({"answer_model_name_or_path": None}, "answer_model_name_or_path is required"),
        ({"num_candidates": 7}, "even"),
        ({"num_frames_to_select": 9}, "between 1 and num_candidates"),
        ({"advantage_estimator": "grpo"}, "unknown advantage_estimator"),
        ({"loss_type": "grpo"}, "use loss_type: dapo"),
        ({"kl_coef": -1.0}, "kl_coef"),
        ({"gamma": 1.5}, "gamma"),
        ({"length_min_tokens": 17, "length_max_tokens": 32}, "max_completion_length"),
        ({"length_min_tokens": 20, "length_max_tokens": 10}, "length_min_tokens <= length_max_tokens"),
        ({"reward_weights": [1.0, 1.0, 1.0, 1.0]}, "set those fields instead"),
        ({"reward_funcs": ["selector_format", "no_such_reward"]}, "no_such_reward"),
        ({"label_colour": [255, 128, 0]}, "set label_description"),
        ({"label_position": "middle"}, "unknown position"),
        ({"selector_long_side": 20}, "at least 28"),
        ({"answer_dtype": "int8"}, "answer_dtype"),
    ],
)
def test_config_errors(overrides, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        _config(tmp_path, "/answer-model", **overrides)


def test_config_defaults_and_derived_fields(tmp_path):
    from temporal_rl.viarl.config import ViaRLSelectorConfig

    config = ViaRLSelectorConfig(
        output_dir=str(tmp_path), answer_model_name_or_path="/m", report_to="none", use_cpu=True, bf16=False
    )
    assert (config.num_candidates, config.num_frames_to_select) == (128, 8)
    assert (config.selector_long_side, config.answer_long_side) == (112, 896)
    assert config.reward_funcs == ["selector_format", "selector_index", "selector_length", "selector_answer"]
    assert config.reward_weights == [1.0, 1.0, 0.2, 2.0]
    assert (config.beta, config.kl_coef, config.gamma, config.epsilon, config.loss_type) == (
        0.0,
        1e-3,
        1.0,
        0.2,
        "dapo",
    )
    assert config.selector_label() == "red number in the bottom-right corner"
    custom = _config(tmp_path, "/m", label_colour=[255, 255, 255], label_position="top-left")
    assert custom.selector_label() == "white number in the top-left corner"
    assert custom.label_style().colour == (255, 255, 255)
    # reward_weights equal to the derived ones are accepted (a config written back out and read again).
    assert _config(tmp_path, "/m", reward_weights=[1, 1, 0.2, 2]).reward_weights == [1.0, 1.0, 0.2, 2.0]


@pytest.mark.slow
def test_config_parses_from_yaml_in_a_fresh_interpreter(tmp_path, fresh_python):
    """A recipe's parse (YAML plus CLI overrides) in a fresh interpreter: the selector rewards the config checks are
    registered by `temporal_rl.rewards` itself, with no import of the selector trainer."""
    (tmp_path / "selector.yaml").write_text(
        f"model_name_or_path: /m\ntrain_file: /x.jsonl\noutput_dir: {tmp_path}\nanswer_model_name_or_path: /a\n"
        "num_candidates: 16\nlabel_colour: [255, 255, 255]\nlabel_position: top-left\nuse_cpu: true\n"
        "bf16: false\nreport_to: none\n"
    )
    script = f"""
import sys
from trl import TrlParser
from temporal_rl.configs import DataArguments
from temporal_rl.models.loading import TemporalModelConfig
from temporal_rl.viarl.config import ViaRLSelectorConfig
parser = TrlParser((DataArguments, ViaRLSelectorConfig, TemporalModelConfig))
recipe = {str(tmp_path / "selector.yaml")!r}
_, config, _ = parser.parse_args_and_config(args=["--config", recipe, "--kl_coef", "0.01"])
assert (config.num_candidates, config.kl_coef, config.reward_weights) == (16, 0.01, [1.0, 1.0, 0.2, 2.0])
assert config.selector_label() == "white number in the top-left corner"
assert "temporal_rl.viarl.selector_trainer" not in sys.modules
"""
    fresh_python(script)
